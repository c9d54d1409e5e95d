"""The clean-up engine: optional vocal separation, then denoising, of one recording; see the package docstring."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from config import Settings
from engines.cleanup import denoise as dfn
from engines.cleanup import separate as demucs
from engines.core.audio import resample, sanitize
from engines.core.device import oom_guard, resolve_device
from engines.core.errors import AudioError, InputError, MissingWeightsError
from engines.core.holder import ModelHolder
from engines.core.progress import ProgressFn
from engines.core.provenance import installed_version, weights_sha256

log = logging.getLogger(__name__)

SEPARATE = "separate"
DENOISE = "denoise"
STEPS = (SEPARATE, DENOISE)  # the order they run in: music out first, so the denoiser hears speech + noise only


@dataclass(frozen=True)
class CleanupOptions:
    """Which clean-up steps to run (all off by default: clean-up is opt-in)."""

    denoise: bool = False  # DeepFilterNet3: remove background noise from speech
    separate: bool = False  # Hybrid Demucs: keep the vocals (removes music and backing tracks)
    denoise_limit_db: float = 100.0  # most noise attenuation in dB; 100 = no limit, lower keeps some ambience

    @property
    def steps(self) -> tuple[str, ...]:
        """The requested steps, in the order they run."""
        wanted = {SEPARATE: self.separate, DENOISE: self.denoise}
        return tuple(s for s in STEPS if wanted[s])


@dataclass(frozen=True)
class StepRecord:
    """What one step did, for provenance (manifests, reports)."""

    name: str  # "separate" | "denoise"
    model: str  # the model and the package that ran it, with versions
    weights_sha256: str  # of the weights file that ran
    seconds: float  # wall time of the step, resampling included

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CleanResult:
    """The cleaned recording: mono float32 at the input's rate and length (not loudness-normalised)."""

    audio: np.ndarray
    sr: int
    steps: list[StepRecord] = field(default_factory=list)  # in the order they ran; empty when none was asked


def _mono(audio: np.ndarray, sr: int) -> np.ndarray:
    """The one input guard: a sample rate, at least one sample, mono float32, finite."""
    if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or sr <= 0:
        raise InputError(f"Clean-up: give the sample rate of the array as a positive integer (got {sr!r}).")
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 2:  # (channels, n) or (n, channels): average the short axis
        samples = samples.mean(axis=int(np.argmin(samples.shape)))
    elif samples.ndim != 1:
        raise InputError(f"Clean-up takes mono (n,) or (channels, n) audio, not an array of shape {samples.shape}.")
    if samples.size == 0:
        raise AudioError("Clean-up: the audio is empty.")
    return sanitize(samples, "The audio to clean")


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    """Exactly ``n`` samples (resampling there and back can be one off)."""
    if audio.size >= n:
        return audio[:n]
    return np.pad(audio, (0, n - audio.size))


class CleanupEngine:
    """Separation and denoising with lazily loaded models, one holder per kind; thread-safe.

    Args:
        settings: the app's settings (``device``, ``cleanup_cache_dir``, ``workspace``).
        gpu_lock: the app's GPU lock; Demucs runs under it (DeepFilterNet runs on the CPU, without it).
    """

    def __init__(self, settings: Settings, gpu_lock: threading.RLock) -> None:
        self.settings = settings
        self.gpu_lock = gpu_lock
        self._denoiser: ModelHolder[dfn.DeepFilter] = ModelHolder("cleanup-denoise")
        self._separator: ModelHolder[Any] = ModelHolder("cleanup-separate")

    # ------------------------------------------------------------------ catalogue

    def available(self) -> dict[str, str | None]:
        """``{step: None}`` when the step can run now, else ``{step: reason}`` (for the UI and reports)."""
        return {SEPARATE: demucs.unavailable_reason(self.settings), DENOISE: dfn.unavailable_reason()}

    def check(self, options: CleanupOptions) -> None:
        """Refuse, before any work, options asking for a step that cannot run.

        Raises:
            MissingWeightsError: naming every requested step that is unavailable, and why.
        """
        reasons = self.available()
        missing = [reasons[s] for s in options.steps if reasons[s] is not None]
        if missing:
            raise MissingWeightsError(" ".join(str(m) for m in missing))

    def demucs_path(self) -> Path:
        """Where the Demucs weights are (or go)."""
        return demucs.weights_path(self.settings)

    def download_demucs(self, progress: ProgressFn | None = None) -> Path:
        """Fetch the Demucs weights (see ``separate.download``)."""
        return demucs.download(self.settings, progress=progress)

    # ------------------------------------------------------------------ work

    def clean(
        self, audio: np.ndarray, sr: int, options: CleanupOptions, progress: ProgressFn | None = None
    ) -> CleanResult:
        """Run the requested steps on one recording.

        Args:
            audio: ``(n,)`` mono or ``(channels, n)`` float samples, any rate.
            sr: its sample rate.
            options: which steps.
            progress: ``progress(fraction, desc=...)`` over all steps.

        Returns:
            The cleaned audio at ``sr`` and ``n`` samples, and one ``StepRecord`` per step run.

        Raises:
            InputError / AudioError: no rate, empty, wrong shape. MissingWeightsError: a requested step is
            unavailable (nothing is run). GPUOutOfMemoryError: Demucs ran out of GPU memory.
        """
        samples = _mono(audio, sr)
        self.check(options)
        steps = options.steps
        current, rate = samples, int(sr)
        records: list[StepRecord] = []
        for index, step in enumerate(steps):
            sub = _sub_progress(progress, index, len(steps))
            start = time.perf_counter()
            if step == SEPARATE:
                current, rate, model, sha = self._separate(current, rate, sub)
            else:
                current, rate, model, sha = self._denoise(current, rate, options.denoise_limit_db, sub)
            records.append(StepRecord(step, model, sha, round(time.perf_counter() - start, 3)))
            log.info("Clean-up %s: %.1f s of audio in %.1f s", step, samples.size / sr, records[-1].seconds)
        out = _fit(resample(current, rate, int(sr)), samples.size) if steps else samples.copy()
        if progress is not None:
            progress(1.0, desc="Clean-up done")
        return CleanResult(out.astype(np.float32, copy=False), int(sr), records)

    def _separate(self, audio: np.ndarray, sr: int, progress: ProgressFn | None) -> tuple[np.ndarray, int, str, str]:
        path = demucs.weights_path(self.settings)
        x = resample(audio, sr, demucs.SR)
        device = resolve_device(self.settings.device)
        with self.gpu_lock:
            model = self._separator.get(str(path), device, lambda key, dev: demucs.load_model(Path(key), dev))
            with oom_guard("vocal separation", "Free GPU memory (System panel) or set device to cpu."):
                vocals = demucs.separate_vocals(model, x, device, progress=progress)
        label = f"{demucs.LABEL} {path.name} (torchaudio {installed_version('torchaudio') or '?'})"
        return vocals, demucs.SR, label, weights_sha256(path)

    def _denoise(
        self, audio: np.ndarray, sr: int, limit_db: float, progress: ProgressFn | None
    ) -> tuple[np.ndarray, int, str, str]:
        runtime = self._denoiser.get(str(dfn.assets().model), "cpu", lambda key, dev: dfn.load())
        x = resample(audio, sr, dfn.SR)
        return runtime.denoise(x, limit_db=limit_db, progress=progress), dfn.SR, runtime.label, runtime.sha256

    # ------------------------------------------------------------------ residency

    def unload(self) -> bool:
        """Drop the resident models. Returns True when something was unloaded."""
        separated = self._separator.unload()
        denoised = self._denoiser.unload()
        return separated or denoised

    def status(self) -> dict[str, Any]:
        """For the System panel: what is resident, and each step's availability."""
        loaded = self._separator.loaded
        reasons = self.available()
        return {
            "loaded_model": demucs.LABEL if loaded else ("DeepFilterNet3" if self._denoiser.loaded else None),
            "device": loaded.device if loaded else "cpu",
            "load_seconds": round(loaded.load_seconds, 2) if loaded else None,
            **{step: reason or "ready" for step, reason in reasons.items()},
        }


class SourceCleaner:
    """The dataset builder's clean-up hook (``engines.datasets.screening.Cleanup``): the chosen steps on each
    source recording, with the last run's step records (model, weights SHA-256, seconds) for dataset.json."""

    def __init__(self, engine: CleanupEngine, options: CleanupOptions) -> None:
        """
        Raises:
            MissingWeightsError: a chosen step cannot run here (before any work).
        """
        engine.check(options)
        self.engine, self.options = engine, options
        self.name = "+".join(options.steps)  # the settings key: another choice of steps re-does a file
        self.records: list[dict[str, Any]] = []

    def __call__(self, audio: np.ndarray, sr: int) -> np.ndarray:
        result = self.engine.clean(audio, sr, self.options)
        self.records = [step.as_dict() for step in result.steps]
        return result.audio


def _sub_progress(progress: ProgressFn | None, index: int, count: int) -> ProgressFn | None:
    """Map one step's 0..1 onto its share of the whole."""
    if progress is None:
        return None
    outer = progress

    def sub(fraction: float, desc: str = "") -> None:
        outer((index + min(max(fraction, 0.0), 1.0)) / count, desc=desc)

    return sub


__all__ = ["DENOISE", "SEPARATE", "STEPS", "CleanResult", "CleanupEngine", "CleanupOptions", "StepRecord"]
