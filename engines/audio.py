"""Audio in and out: decode anything FFmpeg can, check it, write WAV atomically."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from engines.errors import AudioError

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".wma")
ALLOWED_TEXT = "WAV, MP3, FLAC, OGG, M4A"


def _ffmpeg_decode(path: Path, sr: int | None) -> tuple[np.ndarray, int]:
    """Decode with the ffmpeg binary (for what libsndfile cannot read, e.g. M4A/AAC)."""
    if shutil.which("ffmpeg") is None:
        raise AudioError(f"{path.name}: this format needs FFmpeg, which is not installed (apt-get install ffmpeg).")
    if sr is None:
        probe = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-select_streams",
                "a:0",
                "-show_entries",
                "stream=sample_rate",
                "-of",
                "default=nw=1:nk=1",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            sr = int(probe.stdout.strip().splitlines()[0])
        except (ValueError, IndexError):
            raise AudioError(f"{path.name} is not a readable audio file (allowed: {ALLOWED_TEXT}).") from None
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(sr), "-"]
    out = subprocess.run(cmd, capture_output=True, check=False)
    if out.returncode != 0:
        raise AudioError(f"{path.name} is not a readable audio file (allowed: {ALLOWED_TEXT}).")
    return np.frombuffer(out.stdout, np.float32).copy(), sr


def load_audio(path: str | Path, sr: int | None = None, max_mb: float | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file to mono float32.

    Args:
        path: any file FFmpeg or libsndfile reads; any sample rate, any channel count.
        sr: resample to this rate (None keeps the file's rate).
        max_mb: refuse files larger than this.

    Returns:
        (samples in [-1, 1], sample rate).

    Raises:
        AudioError: missing, empty, too large, not audio, or no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"Audio file not found: {path.name}")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"{path.name} is empty (0 bytes).")
    if max_mb is not None and size > max_mb * 1024 * 1024:
        raise AudioError(f"{path.name} is {size / 2**20:.0f} MB; the limit is {max_mb:.0f} MB (max_upload_mb).")
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
        audio = data.mean(axis=1)
    except Exception:  # libsndfile cannot read it: let FFmpeg try (m4a, aac, webm, odd wavs)
        audio, file_sr = _ffmpeg_decode(path, sr)
    if audio.size == 0:
        raise AudioError(f"{path.name} holds no audio samples.")
    if sr is not None and file_sr != sr:
        audio = resample(audio, file_sr, sr)
        file_sr = sr
    if not np.isfinite(audio).all():
        audio = np.nan_to_num(audio)
    return audio.astype(np.float32, copy=False), int(file_sr)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    if orig_sr == target_sr:
        return audio
    import librosa

    return librosa.resample(audio, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(np.float32)


def duration(audio: np.ndarray, sr: int) -> float:
    return float(len(audio)) / float(sr)


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level in dBFS (-inf for digital silence)."""
    if audio.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def is_silent(audio: np.ndarray, threshold_db: float = -50.0) -> bool:
    """True when the whole signal stays below the threshold (digital silence, room tone)."""
    return rms_dbfs(audio) < threshold_db


def clipped_fraction(audio: np.ndarray, level: float = 0.999) -> float:
    """Share of samples at full scale: a few in a row means clipping."""
    if audio.size == 0:
        return 0.0
    return float(np.mean(np.abs(audio) >= level))


def normalize_loudness(audio: np.ndarray, target_dbfs: float = -20.0, peak: float = 0.95) -> np.ndarray:
    """Scale to a target RMS level, limited so the peak stays under ``peak``."""
    level = rms_dbfs(audio)
    if not np.isfinite(level):
        return audio
    gain = 10 ** ((target_dbfs - level) / 20.0)
    top = float(np.max(np.abs(audio))) * gain
    if top > peak:
        gain *= peak / top
    return (audio * gain).astype(np.float32)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def save_wav(path: str | Path, audio: np.ndarray, sr: int) -> Path:
    """Write 16-bit PCM WAV via a temp file and rename, so readers never see half a file."""
    path = Path(path)
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Atomic text write (temp file + rename)."""
    path = Path(path)
    fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
