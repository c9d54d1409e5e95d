"""Predicted MOS of a clip: DNSMOS (offline, inside the ``speechmos`` wheel) and UTMOS (downloaded on request).

- DNSMOS (Microsoft, ITU-T P.835 SIG/BAK/OVRL + P.808): ONNX models run with onnxruntime. It hears 16 kHz mono
  in [-1, 1] through 9.01 s windows with a 1 s hop; shorter clips are tiled by doubling (the reference
  implementation's rule, kept so scores compare with published DNSMOS), so a 2 s TTS utterance is scored as
  16 s of itself repeated. BAK saturates near its top on clean speech and TTS output.
- UTMOS (UTMOS22 strong learner, the naturalness predictor most TTS papers report): the network is in
  ``engines.scoring.utmos22``; its weights (~380 MB) come from SpeechMOS's release on request (System panel). Without
  them ``utmos()`` raises MissingWeightsError and ``available()`` says why: never a made-up number.

Scores of different predictors are different scales: never pool them. Never imports gradio.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from config import Settings
from engines.core.audio import resample, sanitize
from engines.core.device import oom_guard, resolve_device
from engines.core.errors import AudioError, InputError, MissingWeightsError
from engines.core.holder import ModelHolder
from engines.core.progress import ProgressFn
from engines.core.provenance import installed_version
from engines.scoring.sim import weights_sha256

log = logging.getLogger(__name__)

SR = 16000
MOS_COLUMNS = ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808", "utmos")
DNSMOS = "dnsmos"
UTMOS = "utmos"
PREDICTOR_IDS = (DNSMOS, UTMOS)
LABELS = {
    DNSMOS: "DNSMOS P.835 (SIG/BAK/OVRL) + P.808",
    UTMOS: "UTMOS22 strong (naturalness)",
}
UTMOS_URL = "https://github.com/tarepan/SpeechMOS/releases/download/v1.0.0/utmos22_strong_step7459_v1.pt"
UTMOS_FILE = UTMOS_URL.rsplit("/", 1)[-1]
UTMOS_SIZE = "~380 MB"
MIN_SECONDS = 0.5  # below this, both predictors judge padding rather than speech
# threads scoring DNSMOS windows at once (each single-threaded): P.835 costs ~0.45 s of CPU per 9 s window
DNSMOS_WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class PredictorInfo:
    """Which model computed a MOS column, for results and reports."""

    id: str  # "dnsmos" | "utmos"
    name: str  # human label
    version: str  # package version / checkpoint name
    weights: str  # path of the weights file(s)
    sha256: str  # of the main weights file ("" if n/a)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_predictor(predictor: str) -> str:
    """The one guard for predictor ids.

    Raises:
        InputError: not one of ``PREDICTOR_IDS``.
    """
    name = (predictor or "").strip().lower()
    if name not in PREDICTOR_IDS:
        raise InputError(f"Unknown MOS predictor {predictor!r}; use one of: {', '.join(PREDICTOR_IDS)}.")
    return name


def dnsmos_models() -> tuple[Path, Path]:
    """(P.835 sig_bak_ovr.onnx, P.808 model_v8.onnx) inside the speechmos package."""
    import importlib.util

    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError("The speechmos package is not installed (pip install -r requirements.lock).")
    folder = Path(next(iter(spec.submodule_search_locations))) / "dnsmos_models"
    return folder / "sig_bak_ovr.onnx", folder / "model_v8.onnx"


def prepare(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mono float32 at 16 kHz in [-1, 1] for both predictors.

    Samples beyond full scale (float TTS output, resampling overshoot) are scaled down as a whole rather than
    clipped, so the predictor does not judge clipping distortion that is not in the signal.

    Raises:
        InputError: no sample rate. AudioError: empty or shorter than ``MIN_SECONDS``.
    """
    if not sr or sr <= 0:
        raise InputError("Predicted MOS: give the sample rate of the array (sr=...).")
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 2:  # (channels, n) or (n, channels): average the short axis
        samples = samples.mean(axis=int(np.argmin(samples.shape)))
    samples = sanitize(samples.reshape(-1), "The clip")
    seconds = samples.size / float(sr)
    if seconds < MIN_SECONDS:
        raise AudioError(f"Audio of {seconds:.2f} s is too short for a predicted MOS (at least {MIN_SECONDS:g} s).")
    samples = resample(samples, int(sr), SR)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 1.0:
        samples = samples / peak
    return samples.astype(np.float32, copy=False)


class MOSEngine:
    """DNSMOS and UTMOS scores of clips. Models load lazily, once; thread-safe."""

    def __init__(self, settings: Settings, gpu_lock: threading.RLock) -> None:
        self.settings = settings
        self.gpu_lock = gpu_lock
        self._dnsmos: Any = None
        self._dnsmos_lock = threading.Lock()
        self._utmos: ModelHolder[Any] = ModelHolder("mos-utmos")

    # ------------------------------------------------------------------ catalogue

    def predictors(self) -> list[tuple[str, str, bool]]:
        """(id, label, usable now) for each predictor, for dropdowns."""
        return [(p, LABELS[p], self.available(p) is None) for p in PREDICTOR_IDS]

    @property
    def utmos_dir(self) -> Path:
        """Where the UTMOS checkpoint is kept: ``metrics_cache_dir``/utmos, else torch hub's checkpoints folder."""
        root = self.settings.path("metrics_cache_dir")
        if root is not None:
            return root / "utmos"
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints"

    def utmos_path(self) -> Path:
        return self.utmos_dir / UTMOS_FILE

    def downloaded(self, predictor: str) -> bool:
        """Whether ``predictor``'s weights are on disk (DNSMOS's ship with speechmos)."""
        predictor = check_predictor(predictor)
        if predictor == UTMOS:
            return self.utmos_path().is_file()
        return all(p.is_file() for p in dnsmos_models())

    def available(self, predictor: str) -> str | None:
        """None when ``predictor`` can score now, else the reason (for the UI and the report)."""
        predictor = check_predictor(predictor)
        if self.downloaded(predictor):
            return None
        if predictor == UTMOS:
            return (
                f"UTMOS weights are not downloaded: {self.utmos_path()} is missing. To get them ({UTMOS_SIZE}): "
                "open the System panel, 'Get the real models', and press 'Download UTMOS' (needs the internet)."
            )
        return f"DNSMOS models are missing from the speechmos package ({dnsmos_models()[0].parent}): reinstall it."

    def info(self, predictor: str) -> PredictorInfo:
        """What computes ``predictor``'s columns.

        Raises:
            InputError: unknown predictor. MissingWeightsError: its weights are not on disk.
        """
        predictor = check_predictor(predictor)
        reason = self.available(predictor)
        if reason is not None:
            raise MissingWeightsError(reason)
        if predictor == DNSMOS:
            primary, p808 = dnsmos_models()
            return PredictorInfo(
                DNSMOS,
                LABELS[DNSMOS],
                f"speechmos {installed_version('speechmos') or '?'} "
                f"(onnxruntime {installed_version('onnxruntime') or '?'})",
                f"{primary}; {p808}",
                weights_sha256(primary),
            )
        path = self.utmos_path()
        return PredictorInfo(
            UTMOS, LABELS[UTMOS], f"SpeechMOS utmos22_strong ({UTMOS_FILE})", str(path), weights_sha256(path)
        )

    def download(self, predictor: str, progress: ProgressFn | None = None) -> Path:
        """Fetch the UTMOS checkpoint (torch.hub's downloader: temp file, renamed when complete).

        Returns:
            The checkpoint path (an existing one is kept).

        Raises:
            InputError: a predictor that needs no download. MissingWeightsError: offline, refused, or corrupt.
        """
        predictor = check_predictor(predictor)
        if predictor != UTMOS:
            raise InputError(f"{LABELS[predictor]} ships with the app and needs no download.")
        path = self.utmos_path()
        if path.is_file():
            return path
        import torch

        if progress is not None:
            progress(0.0, desc=f"Downloading UTMOS ({UTMOS_SIZE})")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(UTMOS_URL, str(path), progress=True)
            _load_utmos_state(path)  # a truncated or foreign file is refused now, not at scoring time
        except Exception as exc:  # noqa: BLE001 - offline, refused, corrupt: all mean "no weights"
            path.unlink(missing_ok=True)
            log.warning("UTMOS download failed: %s", exc)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MissingWeightsError(
                f"Could not download UTMOS from {UTMOS_URL} ({type(exc).__name__}: {first}). Connect to the internet "
                f"and press 'Download UTMOS' in the System panel again, or copy {UTMOS_FILE} to {path.parent}."
            ) from exc
        if progress is not None:
            progress(1.0, desc="UTMOS downloaded")
        return path

    # ------------------------------------------------------------------ scores

    def _dnsmos_model(self) -> Any:
        with self._dnsmos_lock:
            if self._dnsmos is None:
                self._dnsmos = _build_dnsmos(*dnsmos_models())
            return self._dnsmos

    def dnsmos(self, audio: np.ndarray, sr: int) -> dict[str, float]:
        """DNSMOS of one clip (any rate; resampled to 16 kHz; silence is scored, not refused).

        Returns:
            ``{"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}`` on the 1-5 MOS scale.

        Raises:
            InputError: no sample rate. AudioError: empty or shorter than ``MIN_SECONDS``.
        """
        samples = prepare(audio, sr)
        # onnxruntime sessions run concurrently from several threads; the model object holds no other state.
        scores = self._dnsmos_model()(samples, SR, False)
        return {
            "dnsmos_ovrl": float(scores["ovrl_mos"]),
            "dnsmos_sig": float(scores["sig_mos"]),
            "dnsmos_bak": float(scores["bak_mos"]),
            "dnsmos_p808": float(scores["p808_mos"]),
        }

    def dnsmos_p835(self, clips: list[np.ndarray], sr: int) -> list[dict[str, float] | AudioError]:
        """DNSMOS P.835 (OVRL, SIG, BAK) of many clips, without P.808: the dataset screening's scores.

        Each clip is windowed as speechmos's ``DNSMOS.__call__`` does it (tiled to 9.01 s, one window per second
        of hop) and scored with its polynomial fit; the windows of all the clips are spread over
        ``DNSMOS_WORKERS`` threads. The values are ``dnsmos``'s (P.808, which the screening never reads, is not
        computed: it costs a tenth of P.835).

        Returns:
            One entry per clip, in order: ``{"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}``, or the AudioError
            ``dnsmos`` would raise for it (empty, shorter than ``MIN_SECONDS``).

        Raises:
            InputError: no sample rate.
        """
        from speechmos.dnsmos import INPUT_LENGTH

        window = int(INPUT_LENGTH * SR)
        out: list[dict[str, float] | AudioError] = []
        segments: list[np.ndarray] = []
        counts: list[int] = []
        for clip in clips:
            try:
                samples = prepare(clip, sr)
            except AudioError as exc:
                out.append(exc)
                continue
            while len(samples) < window:  # speechmos tiles a short clip by doubling it
                samples = np.append(samples, samples)
            hops = int(np.floor(len(samples) / SR) - INPUT_LENGTH) + 1
            mine = [samples[int(i * SR) : int((i + INPUT_LENGTH) * SR)] for i in range(hops)]  # speechmos's bounds
            mine = [m for m in mine if len(m) == window]
            segments += mine
            counts.append(len(mine))
            out.append({})
        model = self._dnsmos_model()

        def one(segment: np.ndarray) -> np.ndarray:
            return model.onnx_sess.run(None, {"input_1": segment.astype(np.float32)[np.newaxis, :]})[0][0]

        # one window per call, as speechmos runs it (batching windows gains nothing on a CPU and moves the last
        # digits); the calls share the cores: each session run is single-threaded and releases the GIL
        with ThreadPoolExecutor(max_workers=DNSMOS_WORKERS) as pool:
            rows = list(pool.map(one, segments))
        start = 0
        it = iter(counts)
        for entry in out:
            if isinstance(entry, AudioError):
                continue
            n = next(it)
            fitted = [model.get_polyfit_val(*row, False) for row in rows[start : start + n]]
            start += n
            entry.update(
                {
                    "dnsmos_ovrl": float(np.mean([f[2] for f in fitted])),
                    "dnsmos_sig": float(np.mean([f[0] for f in fitted])),
                    "dnsmos_bak": float(np.mean([f[1] for f in fitted])),
                }
            )
        return out

    def utmos(self, audio: np.ndarray, sr: int) -> float:
        """UTMOS of one clip (whole clip, resampled to 16 kHz).

        Raises:
            MissingWeightsError: the weights are not downloaded. InputError / AudioError: as ``dnsmos``.
        """
        reason = self.available(UTMOS)
        if reason is not None:
            raise MissingWeightsError(reason)
        samples = prepare(audio, sr)
        import torch

        device = resolve_device(self.settings.device)
        with self.gpu_lock:
            model = self._utmos.get(str(self.utmos_path()), device, _load_utmos)
            with oom_guard("the UTMOS score", "Free GPU memory (System panel)."), torch.inference_mode():
                score = model(torch.from_numpy(samples).unsqueeze(0).to(device))
        return float(score.reshape(-1)[0].item())

    def unload(self) -> bool:
        """Drop the resident UTMOS network (DNSMOS's sessions are small and stay)."""
        return self._utmos.unload()

    def status(self) -> dict[str, Any]:
        loaded = self._utmos.loaded
        return {
            "loaded_model": "utmos" if loaded else None,
            "device": loaded.device if loaded else resolve_device(self.settings.device),
            "load_seconds": round(loaded.load_seconds, 2) if loaded else None,
            "utmos": self.available(UTMOS) or "ready",
        }


def _build_dnsmos(primary: Path, p808: Path) -> Any:
    """speechmos's DNSMOS scorer with our own sessions: CPU provider named (newer onnxruntime insists)."""
    import onnxruntime as ort
    from speechmos.dnsmos import DNSMOS as Scorer

    scorer = Scorer.__new__(Scorer)  # its __init__ builds sessions without naming a provider
    scorer.primary_model_path = str(primary)
    # One thread per session: the scores do not depend on the machine's core count (ONNX sums in a thread-count
    # dependent order: 2 threads vs 1 moved OVRL by 2e-6), so the same audio always gives the same results.csv.
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    scorer.onnx_sess = ort.InferenceSession(str(primary), opts, providers=["CPUExecutionProvider"])
    scorer.p808_onnx_sess = ort.InferenceSession(str(p808), opts, providers=["CPUExecutionProvider"])
    return scorer


def _load_utmos_state(path: Path) -> dict[str, Any]:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "blstm.weight_ih_l0" not in state:
        raise MissingWeightsError(f"{path} is not a UTMOS22 strong checkpoint: delete it and download again.")
    return state


def _load_utmos(key: str, device: str) -> Any:
    from engines.scoring.utmos22 import UTMOS22Strong

    model = UTMOS22Strong()
    model.load_state_dict(_load_utmos_state(Path(key)), strict=True)
    return model.to(device).eval()


__all__ = [
    "LABELS",
    "MOS_COLUMNS",
    "PREDICTOR_IDS",
    "UTMOS_URL",
    "MOSEngine",
    "PredictorInfo",
    "check_predictor",
    "prepare",
]
