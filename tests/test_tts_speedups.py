"""Synthesis speedups keep every sample (issue 23): the folded decoder vs coqui's parametrized one, and our
synthesize vs coqui's own ``Xtts.inference`` called per sentence with the same options and seed."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch.nn.utils.parametrize import is_parametrized

from config import load_settings
from engines.core.options import TTSOptions
from engines.tts.engine import TTSEngine
from engines.tts.speedups import fold_weight_norm
from engines.tts.synthesis import PAUSE_SECONDS

SENTENCES = ["The first sentence is spoken here.", "A second one follows it closely."]
OPTIONS = TTSOptions(seed=11, max_audio_tokens=10)


@pytest.fixture(scope="module")
def tts_settings(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("tts-speedups")
    return load_settings({"workspace": root / "ws", "tiny_models": True, "device": "cpu"}, env={})


def _engine(settings, tiny_models, *, fold: bool) -> TTSEngine:
    engine = TTSEngine(settings, threading.RLock(), tiny=tiny_models)
    engine.models.fold_weight_norm = fold
    engine.load("tiny")
    return engine


def _parametrized(engine: TTSEngine) -> int:
    model = engine.models.holder.model
    assert model is not None
    return sum(1 for m in model.hifigan_decoder.waveform_decoder.modules() if is_parametrized(m))


def test_folded_decoder_gives_sample_identical_audio(tts_settings, tiny_models):
    plain = _engine(tts_settings, tiny_models, fold=False)
    fast = _engine(tts_settings, tiny_models, fold=True)
    assert _parametrized(plain) > 0 and _parametrized(fast) == 0  # the toggle really changes the model
    text = " ".join(SENTENCES)
    a = plain.synthesize(text, speaker="Tiny Alice", options=OPTIONS, save=False)
    b = fast.synthesize(text, speaker="Tiny Alice", options=OPTIONS, save=False)
    assert len(a.chunks) == 2 and a.audio.size > 0 and np.abs(a.audio).max() > 0
    assert a.audio.dtype == b.audio.dtype and np.array_equal(a.audio, b.audio)


def test_fold_weight_norm_counts_and_is_idempotent(tts_settings, tiny_models):
    model = _engine(tts_settings, tiny_models, fold=False).models.holder.model
    assert model is not None
    assert fold_weight_norm(model.hifigan_decoder.waveform_decoder) == 76  # XTTS v2's HiFi-GAN
    assert fold_weight_norm(model.hifigan_decoder.waveform_decoder) == 0


def test_synthesize_matches_coqui_inference_per_sentence(tts_settings, tiny_models):
    engine = _engine(tts_settings, tiny_models, fold=True)
    model = engine.models.holder.model
    assert model is not None
    ours = engine.synthesize(" ".join(SENTENCES), speaker="Tiny Alice", options=OPTIONS, save=False)
    assert ours.chunks == SENTENCES

    voice = model.speaker_manager.speakers["Tiny Alice"]
    torch.manual_seed(OPTIONS.seed or 0)
    pieces = []
    for i, sentence in enumerate(SENTENCES):
        if i:
            pieces.append(np.zeros(int(PAUSE_SECONDS * ours.sample_rate), dtype=np.float32))
        out = model.inference(
            sentence,
            "en",
            voice["gpt_cond_latent"],
            voice["speaker_embedding"],
            temperature=OPTIONS.temperature,
            length_penalty=OPTIONS.length_penalty,
            repetition_penalty=OPTIONS.repetition_penalty,
            top_k=OPTIONS.top_k,
            top_p=OPTIONS.top_p,
            speed=OPTIONS.speed,
            enable_text_splitting=False,
            max_new_tokens=OPTIONS.max_audio_tokens,
        )
        pieces.append(np.asarray(out["wav"], dtype=np.float32))
    assert np.array_equal(ours.audio, np.concatenate(pieces))
