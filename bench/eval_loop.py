"""Benchmark 3: the whole eval loop (TTS -> batched ASR -> metrics -> report), utterances per minute.

Runs engines.evaluation.EvalEngine end to end with the tiny models on this machine, twice over the
same sentences: ASR decoded in batches of 16 (the default) and one clip at a time, so the ratio
shows what batching buys inside the loop. Token counts are fixed (max_audio_tokens), so the random
weights cost what real ones would for the same audio length; the WER numbers are meaningless.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from bench.common import Row
from config import load_settings

N_SENTENCES = 20
TOKENS = 60  # about 2.8 s of audio per utterance


def run() -> list[Row]:
    from engines import Engines
    from engines.evaluation import EvalConfig

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"workspace": Path(tmp) / "ws", "device": "auto", "tiny_models": True}, env={})
        engines = Engines.create(settings)
        speaker = engines.tts.speakers("tiny")[0]
        base = EvalConfig(sentences="builtin:en", models=("tiny",), voices=(f"speaker:{speaker}",),
                          max_sentences=N_SENTENCES, max_audio_tokens=TOKENS, asr_model="tiny-random", beam_size=None,
                          bootstrap=200, name="bench")
        engines.evaluation.run(dataclasses.replace(base, max_sentences=2, name="warm-up"))  # loads both models
        timings = {}
        for label, batch in (("batched ASR (16)", 16), ("ASR one clip at a time", 1)):
            start = time.perf_counter()
            result = engines.evaluation.run(dataclasses.replace(base, asr_batch_size=batch, name=label))
            seconds = time.perf_counter() - start
            timings[label] = seconds
            rows.append(Row("loop", f"tiny models, {label}: {result.done} utterances", result.done / seconds * 60,
                            "utt/min", f"{seconds:.1f} s wall incl. report; CPU; plumbing only"))
        rows.append(Row("loop", "eval loop speed-up from batched ASR",
                        timings["ASR one clip at a time"] / timings["batched ASR (16)"], "x", "same sentences, same run"))
    rows.append(Row("loop", "full-size XTTS + Whisper large-v3 loop", None, "utt/min",
                    "not measured: needs a GPU (none lent this session); on 2 CPU cores one utterance takes minutes"))
    return rows
