"""Benchmark 3: the whole eval loop (TTS -> batched ASR -> SIM/MOS -> report), utterances per minute.

Runs engines.eval.EvalEngine end to end with the tiny models on this machine over a dataset
with real recordings (8 transcribed LJSpeech clips, or espeak-ng renders without ../shared), with
ASR decoded in batches of 16 (the default) and one clip at a time, so the ratio shows what batching
buys inside the loop, and the batched loop pipelined (synthesis of the next batch overlapping ASR, SIM and
DNSMOS of the last; ``EvalConfig.pipeline``) two ways: with TTS and ASR sharing one model lock (what overlaps
is the work outside it: DNSMOS's ONNX sessions, audio writes, resampling, scoring), and with the ASR on its
own lock lane and random stream (engines.core.locks; the default on the CPU), so Whisper's calls overlap
XTTS's. Both sides keep torch's default intra-op thread count (results.csv stays byte-identical to the
sequential run's; a different thread count per side could change float sums). Token counts are fixed (max_audio_tokens), so the random weights cost what
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


def run(rounds: int = 2, tokens: int = TOKENS, max_sentences: int | None = None) -> list[Row]:
    """Every variant ``rounds`` times, interleaved; ``tokens`` per utterance; ``max_sentences`` of the dataset's 8
    (None = all). The smaller values are for dry runs (bench/gpu.py), which prove the plumbing only."""
    from engines import Engines
    from engines.core.device import resolve_device
    from engines.eval import EvalConfig

    device = resolve_device("auto")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"workspace": Path(tmp) / "ws", "device": "auto", "tiny_models": True}, env={})
        # TTS and ASR on their own lanes on any device: the app splits them on the CPU only, so this measures
        # what splitting would buy on a GPU too
        engines = Engines.create(settings, split_lanes=True)
        one_lock = Engines.create(settings, tiny=engines.tiny, split_lanes=False)  # the loop before lanes
        speaker = engines.tts.speakers("tiny")[0]
        _dataset(settings.path("datasets_dir") / "bench", Path(tmp))
        base = EvalConfig(
            sentences="dataset:bench",
            models=("tiny",),
            voices=(f"speaker:{speaker}",),
            repeats=2,
            generation=TTSOptions(max_audio_tokens=tokens),
            asr_model="tiny-random",
            beam_size=None,
            bootstrap=200,
            name="bench",
            max_sentences=max_sentences,
        )
        for engine_set in (engines, one_lock):  # loads both models in each set
            engine_set.eval.run(dataclasses.replace(base, max_sentences=2, name="warm-up"))
        # A B A B: the machine's speed drifts, so each variant runs twice, interleaved; medians reported.
        variants = (
            ("batched ASR (16)", 16, False, engines),
            ("ASR one clip at a time", 1, False, engines),
            ("batched ASR (16), pipelined, one model lock", 16, True, one_lock),
            ("batched ASR (16), pipelined, ASR on its own lane", 16, True, engines),
        )
        walls: dict[str, list[float]] = {v[0]: [] for v in variants}
        asr: dict[str, list[float]] = {v[0]: [] for v in variants}
        files: dict[str, bytes] = {}
        done = 0
        for _ in range(rounds):
            for label, batch, pipeline, engine_set in variants:
                start = time.perf_counter()
                result = engine_set.eval.run(
                    dataclasses.replace(base, asr_batch_size=batch, pipeline=pipeline, name=label)
                )
                walls[label].append(time.perf_counter() - start)
                _, results, _ = engine_set.eval.load_run(result.run_id)
                asr[label].append(sum(r["asr_seconds"] or 0.0 for r in results))
                files[label] = (result.folder / "results.csv").read_bytes()
                done = result.done
        identical = files[variants[0][0]] == files[variants[2][0]] == files[variants[3][0]]
        for label, _, _, _ in variants:
            wall = statistics.median(walls[label])
            rows.append(
                Row(
                    "loop",
                    f"tiny models, {label}: {done} utterances",
                    done / wall * 60,
                    "utt/min",
                    f"median of {rounds}; {wall:.1f} s wall incl. TTS and report; {device}; tiny models, plumbing only",
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
        same = "identical results.csv" if identical else "results.csv DIFFERS from the sequential run's"
        for label, what in ((variants[2][0], "one model lock"), (variants[3][0], "ASR on its own lane")):
            rows.append(
                Row(
                    "loop",
                    f"whole-loop speed-up from pipelining, {what} (batched ASR both)",
                    statistics.median(walls[batched]) / statistics.median(walls[label]),
                    "x",
                    f"vs sequential, same sentences, same run; {same}",
                )
            )
        rows.append(
            Row(
                "loop",
                "overlapped model calls vs the one-lock pipeline",
                statistics.median(walls[variants[2][0]]) / statistics.median(walls[variants[3][0]]),
                "x",
                "same run; torch's default intra-op threads on both sides",
            )
        )
    rows.append(
        Row(
            "loop",
            "full-size XTTS + Whisper large-v3 loop",
            None,
            "utt/min",
            "not measured: this bench runs the tiny models only"
            if device.startswith("cuda")
            else "not measured: needs a GPU (none lent this session); on 2 CPU cores one utterance takes minutes",
        )
    )
    return rows
