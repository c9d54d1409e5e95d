"""Benchmark 3: the whole eval loop (TTS -> batched ASR -> SIM/MOS -> report), utterances per minute.

Runs engines.eval.EvalEngine end to end with the tiny models on this machine over a dataset
with real recordings (8 transcribed LJSpeech clips, or espeak-ng renders without ../shared), with
ASR decoded in batches of 16 (the default) and one clip at a time, so the ratio shows what batching
buys inside the loop, and the batched loop pipelined (synthesis of the next batch overlapping ASR, SIM and
DNSMOS of the last; ``EvalConfig.pipeline``), so the ratio shows what the overlap buys. Model calls hold
the one model lock, so on one device what overlaps is the work outside it (DNSMOS's ONNX sessions, audio
writes, resampling, scoring). Token counts are fixed (max_audio_tokens), so the random weights cost what
real ones would for the same audio length; the WER numbers are meaningless.

The tiny XTTS's output is steady noise, which the ASR's no-speech check skips before decoding (as
it should); so inside this loop only the "ground truth" rows (the real recordings) reach Whisper.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import FALLBACK_SENTENCES, SHARED_LJ, Row, clips
from config import load_settings
from engines.core.options import TTSOptions

TOKENS = 60  # about 2.8 s of audio per utterance


def _dataset(folder: Path, tmp: Path) -> None:
    """A coqui-format dataset whose eval split holds 8 recordings with their transcripts."""
    import csv

    from engines.core.audio import load_audio, save_wav
    from engines.datasets.manifest import ClipEntry, write_dataset

    if SHARED_LJ.is_dir():
        with open(SHARED_LJ / "metadata.csv", encoding="utf-8") as fh:
            pairs = [(SHARED_LJ / r["audio_file"], r["text"]) for r in csv.DictReader(fh, delimiter="|")][:8]
    else:
        paths, _ = clips(8, tmp)
        pairs = list(zip(paths, FALLBACK_SENTENCES))
    entries = []
    for i, (src, text) in enumerate(pairs):
        audio, sr = load_audio(src, sr=22050)
        save_wav(folder / "wavs" / f"clip{i:02d}.wav", audio, sr)
        entries.append(ClipEntry(f"wavs/clip{i:02d}.wav", text, "speaker"))
    write_dataset(folder, "en", [], entries)


def run() -> list[Row]:
    from engines import Engines
    from engines.eval import EvalConfig

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"workspace": Path(tmp) / "ws", "device": "auto", "tiny_models": True}, env={})
        engines = Engines.create(settings)
        speaker = engines.tts.speakers("tiny")[0]
        _dataset(settings.path("datasets_dir") / "bench", Path(tmp))
        base = EvalConfig(
            sentences="dataset:bench",
            models=("tiny",),
            voices=(f"speaker:{speaker}",),
            repeats=2,
            generation=TTSOptions(max_audio_tokens=TOKENS),
            asr_model="tiny-random",
            beam_size=None,
            bootstrap=200,
            name="bench",
        )
        engines.eval.run(dataclasses.replace(base, max_sentences=2, name="warm-up"))  # loads both models
        # A B A B: the machine's speed drifts, so each variant runs twice, interleaved; medians reported.
        variants = (
            ("batched ASR (16)", 16, False),
            ("ASR one clip at a time", 1, False),
            ("batched ASR (16), pipelined", 16, True),
        )
        walls: dict[str, list[float]] = {label: [] for label, _, _ in variants}
        asr: dict[str, list[float]] = {label: [] for label, _, _ in variants}
        done = 0
        for _ in range(2):
            for label, batch, pipeline in variants:
                start = time.perf_counter()
                result = engines.eval.run(
                    dataclasses.replace(base, asr_batch_size=batch, pipeline=pipeline, name=label)
                )
                walls[label].append(time.perf_counter() - start)
                _, results, _ = engines.eval.load_run(result.run_id)
                asr[label].append(sum(r["asr_seconds"] or 0.0 for r in results))
                done = result.done
        for label, _, _ in variants:
            wall = statistics.median(walls[label])
            rows.append(
                Row(
                    "loop",
                    f"tiny models, {label}: {done} utterances",
                    done / wall * 60,
                    "utt/min",
                    f"median of 2; {wall:.1f} s wall incl. TTS and report; CPU; plumbing only",
                )
            )
            rows.append(
                Row(
                    "loop",
                    f"tiny models, {label}: ASR time inside the loop",
                    statistics.median(asr[label]),
                    "s",
                    "sum of per-utterance ASR seconds (real recordings reach the decoder)",
                )
            )
        one, batched = variants[1][0], variants[0][0]
        rows.append(
            Row(
                "loop",
                "ASR speed-up from batching, inside the loop",
                statistics.median(asr[one]) / statistics.median(asr[batched]),
                "x",
                "same sentences, same run",
            )
        )
        rows.append(
            Row(
                "loop",
                "whole-loop speed-up from batched ASR",
                statistics.median(walls[one]) / statistics.median(walls[batched]),
                "x",
                "same sentences, same run",
            )
        )
        rows.append(
            Row(
                "loop",
                "whole-loop speed-up from pipelining (batched ASR both)",
                statistics.median(walls[batched]) / statistics.median(walls[variants[2][0]]),
                "x",
                "same sentences, same run; identical results.csv (tests/test_eval_scale.py)",
            )
        )
    rows.append(
        Row(
            "loop",
            "full-size XTTS + Whisper large-v3 loop",
            None,
            "utt/min",
            "not measured: needs a GPU (none lent this session); on 2 CPU cores one utterance takes minutes",
        )
    )
    return rows
