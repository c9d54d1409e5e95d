"""Vocal separation with Hybrid Demucs (torchaudio's ``hdemucs_high``, weights of ``HDEMUCS_HIGH_MUSDB_PLUS``).

The network separates 44.1 kHz stereo into drums, bass, other and vocals; we keep the vocals. Its weights
(~335 MB, MUSDB-HQ plus 150 songs) come from PyTorch's download site on request (System panel) into
``cleanup_cache_dir`` (default ``<workspace>/cache/cleanup``); without them ``unavailable_reason`` says why.

Long audio is separated in overlapping segments of ``SEGMENT_S`` seconds, cross-faded, so the network's memory
does not grow with the length of the input (torchaudio's tutorial does the same with 10 s segments). Torch is
imported inside the functions: importing this module is cheap. Never imports gradio.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from config import Settings
from engines.core.errors import MissingWeightsError
from engines.core.progress import ProgressFn

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SR = 44100  # the rate HDEMUCS_HIGH_MUSDB_PLUS was trained at
SOURCES = ("drums", "bass", "other", "vocals")  # the bundle's order; state dicts depend on it
VOCALS = SOURCES.index("vocals")
URL = "https://download.pytorch.org/torchaudio/models/hdemucs_high_trained.pt"  # torchaudio's bundle asset
FILE = URL.rsplit("/", 1)[-1]
SIZE = "335 MB"  # 83.6 M float32 parameters
LABEL = "Hybrid Demucs (HDEMUCS_HIGH_MUSDB_PLUS)"
SEGMENT_S = 10.0  # seconds per network call
OVERLAP_S = 1.0  # cross-fade between segments
MIN_SAMPLES = 4410  # the network's spectrogram refuses very short inputs (100 samples fail): pad to 0.1 s


def cache_dir(settings: Settings) -> Path:
    """Where the Demucs weights are kept: ``cleanup_cache_dir``, else ``<workspace>/cache/cleanup``."""
    root = settings.path("cleanup_cache_dir")
    return root if root is not None else settings.workspace_dir / "cache" / "cleanup"


def weights_path(settings: Settings) -> Path:
    """The Demucs checkpoint file (present or not)."""
    return cache_dir(settings) / FILE


def unavailable_reason(settings: Settings) -> str | None:
    """None when the Demucs weights are on disk, else what to do (for ``available()`` and the UI)."""
    path = weights_path(settings)
    if path.is_file():
        return None
    return (
        f"Vocal separation (Hybrid Demucs) needs its weights ({SIZE}), and {path} is missing: open the System "
        "panel, 'Get the real models', and press 'Download Demucs' (needs the internet), or copy "
        f"{FILE} from {URL} there."
    )


def build_model() -> torch.nn.Module:
    """The bundle's architecture with random weights (``hdemucs_high`` over ``SOURCES``)."""
    from torchaudio.models import hdemucs_high

    return hdemucs_high(sources=list(SOURCES))


@functools.lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of the architecture (built on the meta device: no memory, once)."""
    import torch

    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in build_model().state_dict().items()}


def load_state(path: Path) -> dict[str, Any]:
    """The checkpoint's state dict, checked against the architecture (names and shapes) without building it.

    Raises:
        MissingWeightsError: not a torch file, or not an ``hdemucs_high`` state dict of ``SOURCES``.
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, foreign, not a zip: all mean "no weights"
        raise MissingWeightsError(
            f"{path} is not a readable Demucs checkpoint ({type(exc).__name__}): delete it and download again."
        ) from exc
    found = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    if found != expected_shapes():
        raise MissingWeightsError(
            f"{path} is not a {LABEL} checkpoint (its tensors do not match the architecture): "
            "delete it and download again."
        )
    return state


def load_model(path: Path, device: str) -> torch.nn.Module:
    """The network with the weights of ``path``, on ``device``, in eval mode."""
    model = build_model()
    model.load_state_dict(load_state(path), strict=True)
    return model.to(device).eval()


def download(settings: Settings, progress: ProgressFn | None = None, url: str = URL) -> Path:
    """Fetch the checkpoint (torch.hub's downloader: a temp file renamed when complete), then check it.

    Returns:
        The checkpoint path (an existing one is kept).

    Raises:
        MissingWeightsError: offline, refused, or not a Demucs checkpoint (the file is removed).
    """
    path = weights_path(settings)
    if path.is_file():
        return path
    import torch

    if progress is not None:
        progress(0.0, desc=f"Downloading Hybrid Demucs ({SIZE})")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), progress=True)
        load_state(path)  # a truncated or foreign file is refused now, not at clean-up time
    except Exception as exc:  # noqa: BLE001 - offline, refused, corrupt: all mean "no weights"
        path.unlink(missing_ok=True)
        log.warning("Demucs download failed: %s", exc)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingWeightsError(
            f"Could not download Hybrid Demucs from {url} ({type(exc).__name__}: {first}). Connect to the "
            f"internet and press 'Download Demucs' in the System panel again, or copy {FILE} to {path.parent}."
        ) from exc
    if progress is not None:
        progress(1.0, desc="Hybrid Demucs downloaded")
    return path


def _windows(n: int, segment: int, overlap: int) -> list[int]:
    """Start of each segment: a hop of ``segment - overlap``, the last one ending at ``n``."""
    if n <= segment:
        return [0]
    hop = segment - overlap
    starts = list(range(0, n - segment, hop))
    starts.append(n - segment)
    return starts


def _weight(length: int, overlap: int, fade_in: bool, fade_out: bool) -> np.ndarray:
    """Linear ramps at the segment's shared edges; strictly positive so the normalising sum never divides by 0."""
    w = np.ones(length, dtype=np.float32)
    ramp = np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1)
    k = min(overlap, length)
    if fade_in:
        w[:k] = ramp[:k]
    if fade_out:
        w[length - k :] = np.minimum(w[length - k :], ramp[:k][::-1])
    return w


def separate_vocals(
    model: Any,
    audio: np.ndarray,
    device: str,
    segment_s: float = SEGMENT_S,
    overlap_s: float = OVERLAP_S,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """The vocals of a 44.1 kHz recording, mono, same length.

    Args:
        model: a network taking ``(1, 2, n)`` and giving ``(1, len(SOURCES), 2, n)`` (``load_model``'s).
        audio: ``(n,)`` mono or ``(2, n)`` stereo float samples at ``SR``.
        device: where the model lives.
        segment_s, overlap_s: the segment of one network call and the cross-fade between two.
        progress: ``progress(fraction, desc=...)`` once per segment.

    Returns:
        ``(n,)`` float32.
    """
    import torch

    mix = np.asarray(audio, dtype=np.float32)
    if mix.ndim == 1:
        mix = np.stack([mix, mix])
    n = mix.shape[-1]
    # The bundle's recipe: normalise by the mono mix's statistics, separate, undo.
    ref = mix.mean(axis=0)
    mean, std = float(ref.mean()), float(ref.std())
    if std < 1e-8:  # digital silence: its vocals are itself
        return ref.astype(np.float32)
    segment = max(int(segment_s * SR), MIN_SAMPLES)
    overlap = min(int(overlap_s * SR), segment // 2)
    starts = _windows(n, segment, overlap)
    acc = np.zeros(n, dtype=np.float32)
    total = np.zeros(n, dtype=np.float32)
    for i, start in enumerate(starts):
        stop = min(start + segment, n)
        chunk = (mix[:, start:stop] - mean) / std
        length = chunk.shape[-1]
        if length < MIN_SAMPLES:
            chunk = np.pad(chunk, ((0, 0), (0, MIN_SAMPLES - length)))
        with torch.inference_mode():
            out = model(torch.from_numpy(np.ascontiguousarray(chunk))[None].to(device))
        vocals = out[0, VOCALS].mean(dim=0)[:length].float().cpu().numpy()
        w = _weight(length, overlap, fade_in=i > 0, fade_out=i < len(starts) - 1)
        acc[start:stop] += w * vocals
        total[start:stop] += w
        if progress is not None:
            progress((i + 1) / len(starts), desc="Separating vocals (Hybrid Demucs)")
    return (acc / total * std + mean).astype(np.float32)


__all__ = [
    "FILE",
    "LABEL",
    "SIZE",
    "SOURCES",
    "SR",
    "URL",
    "build_model",
    "cache_dir",
    "download",
    "load_model",
    "load_state",
    "separate_vocals",
    "unavailable_reason",
    "weights_path",
]
