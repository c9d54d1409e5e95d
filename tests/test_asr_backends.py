"""The ASR backend seam: the registry's rule, and what each backend reports about its weights."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

from engines.asr.backends.faster_whisper import FasterWhisperBackend
from engines.asr.backends.openai_whisper import OpenAIWhisperBackend
from engines.asr.engine import ASREngine


@pytest.fixture()
def asr(settings, tiny_models) -> ASREngine:
    return ASREngine(settings, threading.RLock(), tiny=tiny_models)


def _fake_ct2(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"not really weights")
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder


def test_registry_picks_by_id_and_by_loaded_model(asr, tmp_path):
    backends = asr.backends
    assert [b.name for b in backends] == ["openai-whisper", "faster-whisper"]
    folder = _fake_ct2(tmp_path / "ct2")
    for model_id in ("faster-whisper:tiny.en", "faster-whisper:my-folder", str(folder)):
        assert isinstance(backends.for_id(model_id), FasterWhisperBackend), model_id
    for model_id in ("tiny.en", "large-v3", "tiny-random", str(tmp_path / "model.pt"), str(tmp_path)):
        assert isinstance(backends.for_id(model_id), OpenAIWhisperBackend), model_id
    model = asr.load("tiny-random")
    assert backends.for_model(model) is asr.openai and asr.openai.owns(model) and not asr.faster.owns(model)
    assert backends["faster-whisper"] is asr.faster
    with pytest.raises(KeyError, match="openai-whisper, faster-whisper"):
        backends["whisper.cpp"]


def test_provenance_names_backend_file_and_hash(asr, tiny_models, tmp_path):
    expected = hashlib.sha256(Path(tiny_models.whisper_path).read_bytes()).hexdigest()
    record = asr.provenance()  # the default model, not loaded: no compute type yet
    assert record["model"] == "tiny-random" and record["backend"] == "openai-whisper"
    assert record["file"] == str(tiny_models.whisper_path) and record["sha256"] == expected
    assert record["versions"]["openai-whisper"] and "compute_type" not in record
    assert asr.holder.loaded is None
    asr.transcribe_array(np.zeros(16000, np.float32))
    assert asr.provenance()["compute_type"] == "float32" and asr.provenance()["device"] == "cpu"

    folder = _fake_ct2(tmp_path / "ct2")
    faster = asr.provenance("faster-whisper:" + str(folder))
    assert faster["backend"] == "faster-whisper" and faster["file"] == str(folder)
    assert faster["sha256"] == hashlib.sha256(b"not really weights").hexdigest()
    assert set(faster["versions"]) == {"faster-whisper", "ctranslate2"}
    missing = asr.provenance("faster-whisper:" + str(tmp_path / "nowhere"))
    assert "file" not in missing and missing["backend"] == "faster-whisper"
