"""Reading a reference clip: decode at the conditioning rate, refuse unusable clips, trim long ones.

Torch-free: the eval planner checks clips with ``check_reference_audio`` before any model is loaded, and
saving a voice refuses bad clips with ``decode_reference`` before they reach synthesis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from config import Settings
from engines.core.audio import clipped_fraction, collect_notices, is_silent, load_audio, rms_dbfs
from engines.core.errors import AudioError

COND_SR = 22050  # XTTS computes conditioning at 22.05 kHz
CLIP_LEVEL = 0.99  # a sample at or above this magnitude sits at full scale
CLIPPED_SHARE = 0.01  # a reference with more of its samples at full scale is called clipped (speech: ~0)


def check_reference_audio(audio: np.ndarray, sr: int, name: str, min_seconds: float) -> None:
    """The one rule for unusable reference clips, used by synthesis and by the eval planner (torch-free).

    Raises:
        AudioError: shorter than ``min_seconds``, silent, or loud only because of a constant (DC) offset.
    """
    seconds = len(audio) / sr
    if seconds < min_seconds:
        raise AudioError(
            f"{name} is {seconds:.2f} s long; reference clips must be at least {min_seconds:g} s "
            "(3-10 s of clean speech works best)."
        )
    if is_silent(audio):
        raise AudioError(
            f"{name} is silent (level {rms_dbfs(audio):.0f} dBFS); record or upload 3-10 s of clean speech "
            "from one speaker."
        )
    offset = float(np.mean(audio, dtype=np.float64))
    if is_silent(audio - offset):  # loud only because of a constant: a broken recording, no sound
        raise AudioError(
            f"{name} holds no sound, only a constant offset (DC {offset:+.2f}; what varies is at "
            f"{rms_dbfs(audio - offset):.0f} dBFS). Check the microphone and record or upload 3-10 s of clean "
            "speech from one speaker."
        )


def decode_reference(path: Path, settings: Settings) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Decode one clip at 22.05 kHz, refuse unusable ones (too short, silent, only a DC offset), trim long
    ones and flag clipped or repaired ones.

    Args:
        path: the clip, any format, rate or channel count.
        settings: its ``max_upload_mb``, ``min_audio_seconds`` and ``max_ref_seconds`` apply.

    Returns:
        (float32 mono audio at ``COND_SR``, notices for the user, {"name", "seconds", "trimmed"} for the sidecar).

    Raises:
        AudioError: not audio, too large, too short, silent or only a constant offset.
    """
    with collect_notices() as notices:
        audio, sr = load_audio(path, sr=COND_SR, max_mb=settings.max_upload_mb)
    check_reference_audio(audio, sr, path.name, settings.min_audio_seconds)
    seconds = len(audio) / sr
    clipped = clipped_fraction(audio, CLIP_LEVEL)
    if clipped >= CLIPPED_SHARE:
        notices.append(
            f"{path.name} is heavily clipped: {100 * clipped:.0f}% of its samples sit at full scale, so the "
            "cloned voice will sound distorted. Record it again at a lower input level."
        )
    limit = settings.max_ref_seconds
    trimmed = seconds > limit
    if trimmed:
        audio = audio[: int(limit * sr)]
        notices.append(f"{path.name} is {seconds:.1f} s long; only its first {limit:g} s were used (max_ref_seconds).")
    info: dict[str, Any] = {"name": path.name, "seconds": round(seconds, 3), "trimmed": trimmed}
    return audio, notices, info
