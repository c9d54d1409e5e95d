"""Dataset screening: what speaker and quality scoring add to a build, next to the Whisper pass.

One recording of ``seconds`` of speech (the LJSpeech clips joined with pauses, or espeak-ng renders) is built
twice into a dataset: without screening (decode, VAD, cuts, one Whisper pass per clip) and with it (plus the
speaker-change embeddings, each clip's Resemblyzer embedding and halves, DNSMOS). The screening's own calls are
timed apart (embeddings / DNSMOS), and the encoder is timed with torch's default thread count against
``screening.ENCODER_THREADS``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, Row, clips
from config import load_settings

REAL_WHISPER = ROOT.parent / "shared" / "models" / "whisper-tiny.en.pt"


def _recording(seconds: float, folder: Path) -> tuple[Path, float]:
    """The bench clips joined with 0.6 s pauses up to ``seconds`` of audio; (path, its length)."""
    import soundfile as sf

    from engines.core.audio import load_audio, resample

    rate = 22050
    parts: list[np.ndarray] = []
    total = 0.0
    wavs, _ = clips(32, folder)
    while total < seconds:
        for wav in wavs:
            audio, sr = load_audio(wav)
            parts += [resample(audio, sr, rate), np.zeros(int(0.6 * rate), np.float32)]
            total += len(parts[-2]) / rate + 0.6
            if total >= seconds:
                break
    path = folder / "recording.wav"
    sf.write(path, np.concatenate(parts), rate, subtype="PCM_16")
    return path, total


class _Timed:
    """A ``screening.Scorer`` whose embedding and DNSMOS calls add up their seconds."""

    def __init__(self, scorer: Any) -> None:
        self.inner = scorer
        self.encoder = scorer.encoder
        self.seconds = {"embed": 0.0, "dnsmos": 0.0}
        self.calls = {"embed": 0, "dnsmos": 0}

    def _timed(self, what: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds[what] += time.perf_counter() - start
            self.calls[what] += 1

    def embed(self, audio: np.ndarray, sr: int) -> Any:
        return self._timed("embed", self.inner.embed, audio, sr)

    def embed_file(self, path: Any) -> Any:
        return self._timed("embed", self.inner.embed_file, path)

    def embed_batch(self, clips: Any, sr: int) -> Any:
        return self._timed("embed", self.inner.embed_batch, clips, sr)

    def dnsmos(self, audio: np.ndarray, sr: int) -> Any:
        return self._timed("dnsmos", self.inner.dnsmos, audio, sr)

    def dnsmos_batch(self, clips: Any, sr: int) -> Any:
        return self._timed("dnsmos", self.inner.dnsmos_batch, clips, sr)


def run(seconds: float = 60.0) -> list[Row]:
    """Time one build without and one with screening on ``seconds`` of speech (60 s: a short run)."""
    import torch

    from engines import Engines
    from engines.datasets import DatasetOptions, screening

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="xtts-bench-screen-") as tmp:
        folder = Path(tmp)
        settings = load_settings(
            {"workspace": folder / "workspace", "datasets_dir": folder / "datasets", "device": "cpu"}, env={}
        )
        engines = Engines.create(settings)
        ds = engines.datasets
        path, length = _recording(seconds, folder)
        model_id = str(REAL_WHISPER) if REAL_WHISPER.is_file() else None
        whisper = "real Whisper tiny.en" if model_id else "the default Whisper model"
        note = f"{length:.0f} s of speech, {whisper}, CPU"
        quiet = {"progress": lambda *a, **k: None, "log_fn": lambda m: None}

        # models load before the clock starts: a build's first call would otherwise time the loading
        warm = np.zeros(22050, np.float32)
        warm[::50] = 0.1
        ds.scorer.dnsmos(warm, 22050)
        ds.scorer.embed(np.sin(np.arange(2 * 22050) / 9.0).astype(np.float32) * 0.1, 22050)

        start = time.perf_counter()
        ds.build("plain", [path], "en", options=DatasetOptions(model_id=model_id, screen=False), **quiet)
        plain = time.perf_counter() - start
        timed = _Timed(ds.scorer)
        ds.scorer = timed  # type: ignore[assignment]
        start = time.perf_counter()
        report = ds.build("screened", [path], "en", options=DatasetOptions(model_id=model_id), **quiet)
        screened = time.perf_counter() - start
        rows += [
            Row("screen", "build without screening (decode, VAD, cut, Whisper per clip)", plain, "s", note),
            Row("screen", "build with screening", screened, "s", f"{report.clips} clips kept; {note}"),
            Row(
                "screen",
                "screening share of the screened build",
                (timed.seconds["embed"] + timed.seconds["dnsmos"]) / screened,
                "fraction",
                note,
            ),
            Row("screen", f"Resemblyzer embeddings ({timed.calls['embed']} calls)", timed.seconds["embed"], "s", note),
            Row("screen", f"DNSMOS ({timed.calls['dnsmos']} calls)", timed.seconds["dnsmos"], "s", note),
        ]

        # the encoder alone on the kept clips, torch's default thread count vs ENCODER_THREADS
        info = ds.info("screened")
        wavs = [ds.clip_path("screened", c) for c in list(info["clips"])[:8]]
        audio = [_read(w) for w in wavs]
        default = torch.get_num_threads()
        for threads in sorted({default, screening.ENCODER_THREADS}, reverse=True):
            start = time.perf_counter()
            with screening.encoder_threads(threads):
                for a, sr in audio:
                    engines.sim.embed(screening.Scorer.encoder, a, sr)
            rows.append(
                Row(
                    "screen",
                    f"Resemblyzer on {len(audio)} clips with {threads} torch thread(s)",
                    time.perf_counter() - start,
                    "s",
                    f"default threads {default}; ENCODER_THREADS {screening.ENCODER_THREADS}",
                )
            )
    return rows


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32")
    return audio, int(sr)


if __name__ == "__main__":
    for row in run():
        print(row)
