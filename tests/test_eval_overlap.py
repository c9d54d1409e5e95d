"""TTS and ASR model calls overlap on one device (the CPU): each engine has its own lock lane, and the ASR's random
draws (Whisper's seeded fallback, a model built on first use) come from the thread's own generators. A pipelined
eval run still writes the sequential run's results.csv byte for byte, and a seeded synthesis gives the same audio
while Whisper samples beside it.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
import torch
from test_evaluation import FAST, make_dataset

from engines.asr.options import ASROptions
from engines.core.audio import load_audio
from engines.core.locks import DeviceLock, model_locks
from engines.core.options import TTSOptions
from engines.core.rng import private_rng
from engines.eval import EvalConfig
from tests.conftest import transcribed_clips
from tests.eval_helpers import tiny_engines


@pytest.fixture(scope="module")
def eng(tmp_path_factory, tiny_models):
    return tiny_engines(tmp_path_factory.mktemp("eval-overlap"), tiny_models)


@pytest.fixture(scope="module")
def recordings(request) -> list:
    return transcribed_clips(request, n=4, prefix="overlap")


@pytest.fixture(scope="module")
def dataset(eng, recordings):
    make_dataset(eng.settings.path("datasets_dir"), "overlap", recordings)
    return "dataset:overlap"


def _hold(lock) -> tuple[threading.Event, threading.Event, threading.Thread]:
    """Hold ``lock`` in another thread until the returned ``release`` event is set."""
    held, release = threading.Event(), threading.Event()

    def run() -> None:
        with lock:
            held.set()
            release.wait(60)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert held.wait(10)
    return held, release, thread


# ----- locks and random streams -----


def test_lanes_split_on_the_cpu_and_join_on_cuda():
    cpu = model_locks("cpu")
    assert cpu.split and isinstance(cpu.device, DeviceLock)
    for device in ("cuda", "cuda:1", "mps"):
        joined = model_locks(device)
        assert not joined.split and joined.device is joined.tts is joined.asr
    assert not model_locks("cpu", split=False).split and model_locks("cuda", split=True).split


def test_the_device_lock_waits_for_every_lane_and_gives_back_what_it_took():
    locks = model_locks("cpu")
    _, release, thread = _hold(locks.asr)
    try:
        start = time.monotonic()
        assert not locks.device.acquire(timeout=0.3)  # the ASR lane is busy
        assert time.monotonic() - start < 5
        assert not locks.device.acquire(blocking=False)
        assert locks.tts.acquire(blocking=False)  # the TTS lane it took first was given back
        locks.tts.release()
    finally:
        release.set()
        thread.join()
    with locks.device:
        with locks.tts, locks.asr, locks.device:  # re-entrant, like the one RLock it replaces
            pass
    assert locks.asr.acquire(blocking=False)
    locks.asr.release()


def test_private_rng_draws_the_seeded_numbers_and_leaves_the_shared_stream_alone():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    with private_rng(11):
        torch.nn.Linear(8, 8)  # random initialisation
        probs = torch.softmax(torch.randn(2, 5), -1)
        drawn = torch.distributions.Categorical(probs=probs).sample((50,))
    assert torch.equal(torch.rand(4), expected)
    torch.manual_seed(11)
    torch.nn.Linear(8, 8)
    probs = torch.softmax(torch.randn(2, 5), -1)
    assert torch.equal(torch.distributions.Categorical(probs=probs).sample((50,)), drawn)


# ----- the engines -----


def _clip(recordings) -> np.ndarray:
    audio, _ = load_audio(recordings[0][0], sr=16000)
    return audio


def test_asr_transcribes_while_synthesis_holds_its_lane(eng, recordings):
    clip = _clip(recordings)
    _, release, thread = _hold(eng.tts.gpu_lock)
    try:
        text = eng.asr.transcribe_array(clip, ASROptions(language="en"), "tiny-random").text
        assert isinstance(text, str)
        assert not eng.gpu_lock.acquire(timeout=0.2)  # the whole device waits for the synthesis
    finally:
        release.set()
        thread.join()
    assert eng.gpu_lock.acquire(timeout=5)
    eng.gpu_lock.release()


def _synthesize(eng, seed: int) -> np.ndarray:
    speaker = eng.tts.speakers("tiny")[0]
    options = TTSOptions(language="en", seed=seed, max_audio_tokens=60, temperature=0.9)
    result = eng.tts.synthesize(
        "The sun was shining on the sea.", model_id="tiny", speaker=speaker, save=False, options=options
    )
    return np.asarray(result.audio)


def test_a_seeded_synthesis_sounds_the_same_while_whisper_samples_beside_it(eng, recordings):
    clip = _clip(recordings)
    alone = _synthesize(eng, seed=7)
    stop = threading.Event()
    rounds = {"n": 0}
    errors: list[BaseException] = []

    def whisper_beside() -> None:
        # the random Whisper fails every threshold: each round climbs the sampled fallback ladder, and every
        # other round builds the model again (random initialisation)
        try:
            while not stop.is_set():
                if rounds["n"] % 2:
                    eng.asr.unload()
                eng.asr.transcribe_array(clip, ASROptions(language="en", seed=rounds["n"]), "tiny-random")
                rounds["n"] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=whisper_beside, daemon=True)
    thread.start()
    try:
        beside = [_synthesize(eng, seed=7) for _ in range(3)]
    finally:
        stop.set()
        thread.join(120)
    assert not errors, errors
    assert rounds["n"] >= 1, "Whisper never ran beside the synthesis"
    for audio in beside:
        assert np.array_equal(audio, alone)


# ----- the eval loop -----


def _config(dataset: str, **kw) -> EvalConfig:
    base = {
        "sentences": dataset,
        "models": ("tiny",),
        "voices": ("speaker:Tiny Alice",),
        "seed": 9,
        "repeats": 2,
        "asr_batch_size": 4,
        "sim_encoder": "xtts",
        "mos": ("dnsmos",),
        "asr_model": "tiny-random",
        **FAST,
    }
    return EvalConfig(**{**base, **kw})


def _timed(monkeypatch, obj, name: str, spans: list[tuple[float, float]]) -> None:
    real = getattr(obj, name)

    def timed(*args, **kwargs):
        start = time.monotonic()
        try:
            return real(*args, **kwargs)
        finally:
            spans.append((start, time.monotonic()))

    monkeypatch.setattr(obj, name, timed)


def test_the_overlapped_run_equals_the_sequential_one(eng, dataset, monkeypatch):
    sequential = eng.eval.run(_config(dataset), run_id="overlap-seq")
    tts_spans: list[tuple[float, float]] = []
    asr_spans: list[tuple[float, float]] = []
    _timed(monkeypatch, eng.tts, "synthesize", tts_spans)
    _timed(monkeypatch, eng.asr, "transcribe_batch", asr_spans)
    overlapped = eng.eval.run(_config(dataset, pipeline=True), run_id="overlap-pipe")
    assert overlapped.state == sequential.state == "done"
    assert (overlapped.folder / "results.csv").read_bytes() == (sequential.folder / "results.csv").read_bytes()
    # the ground truth's ASR ran while the first system's batch was synthesized: model calls overlapped
    assert any(a0 < t1 and t0 < a1 for a0, a1 in asr_spans for t0, t1 in tts_spans), (asr_spans, tts_spans)


@pytest.mark.real
@pytest.mark.slow
def test_the_overlapped_run_equals_the_sequential_one_with_real_whisper(eng, dataset, real_whisper):
    config = _config(dataset, asr_model=real_whisper)
    sequential = eng.eval.run(config, run_id="overlap-real-seq")
    overlapped = eng.eval.run(dataclasses.replace(config, pipeline=True), run_id="overlap-real-pipe")
    assert overlapped.state == sequential.state == "done"
    assert (overlapped.folder / "results.csv").read_bytes() == (sequential.folder / "results.csv").read_bytes()
