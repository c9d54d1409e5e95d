"""Audio in and out: decode anything FFmpeg can, check it, write WAV atomically."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from engines.core.errors import AudioError, AudioTooLargeError, LabError

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".wma")
ALLOWED_TEXT = "WAV, MP3, FLAC, OGG, M4A"
# Below this much free space an opaque write failure (libsndfile's "System error.", torch's "file write
# failed") is taken to be a full disk.
LOW_DISK_BYTES = 16 * 2**20

# The notices of the collect_notices() block in progress (None outside one).
_NOTICES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("audio_notices", default=None)


@contextlib.contextmanager
def collect_notices() -> Iterator[list[str]]:
    """Gather what ``load_audio``/``resample`` repaired inside this block (e.g. NaN samples set to 0).

    The engines and pages that decode on the user's behalf wrap the call and show the notices; the same
    lines are always logged as warnings. Nested blocks each get their own list.

    Yields:
        The list the notices are appended to (one sentence each, naming the file).
    """
    notices: list[str] = []
    token = _NOTICES.set(notices)
    try:
        yield notices
    finally:
        _NOTICES.reset(token)


def _notice(message: str) -> None:
    log.warning("%s", message)
    active = _NOTICES.get()
    if active is not None:
        active.append(message)


def sanitize(audio: np.ndarray, label: str = "The audio") -> np.ndarray:
    """Replace NaN and infinite samples by 0 (librosa/soxr refuse them: "Audio buffer is not finite").

    Args:
        audio: samples (any shape).
        label: what to call the audio in the notice, e.g. the file name.

    Returns:
        ``audio`` itself when every sample is finite, else a repaired copy (with a notice).

    Raises:
        AudioError: no sample at all is a number.
    """
    finite = np.isfinite(audio)
    if finite.all():
        return audio
    bad = int(audio.size - np.count_nonzero(finite))
    if bad == audio.size:
        raise AudioError(
            f"{label} holds no usable audio: every one of its {bad} samples is NaN or infinite "
            "(a broken export or a failed recording). Export or record it again."
        )
    _notice(
        f"{label}: {bad} of {audio.size} samples ({100.0 * bad / audio.size:.2g}%) were not numbers "
        "(NaN or infinite) and were set to silence. Re-export the file if it sounds wrong."
    )
    return np.where(finite, audio, 0.0).astype(audio.dtype, copy=False)


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

    NaN or infinite samples are set to 0 before resampling, with a notice (see ``collect_notices``).

    Args:
        path: any file FFmpeg or libsndfile reads; any sample rate, any channel count.
        sr: resample to this rate (None keeps the file's rate).
        max_mb: refuse files larger than this.

    Returns:
        (finite samples, sample rate).

    Raises:
        AudioError: missing, empty, too large, not audio, no samples, or no finite sample.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"Audio file not found: {path.name}")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"{path.name} is empty (0 bytes).")
    if max_mb is not None and size > max_mb * 1024 * 1024:
        raise AudioTooLargeError(
            f"{path.name} is too large ({size / 2**20:.0f} MB, limit {max_mb:g} MB). Split or shorten it, "
            "or raise the max_upload_mb setting."
        )
    try:
        try:
            data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
            audio = data.mean(axis=1)
        except MemoryError:
            raise
        except Exception:  # libsndfile cannot read it: let FFmpeg try (m4a, aac, webm, odd wavs)
            audio, file_sr = _ffmpeg_decode(path, sr)
    except MemoryError:
        raise AudioTooLargeError(
            f"{path.name} is too large ({size / 2**20:.0f} MB) to decode in this machine's memory. Split or shorten it."
        ) from None
    if audio.size == 0:
        raise AudioError(f"{path.name} holds no audio samples.")
    audio = sanitize(audio, path.name)
    if sr is not None and file_sr != sr:
        audio = resample(audio, file_sr, sr, label=path.name)
        file_sr = sr
    return audio.astype(np.float32, copy=False), int(file_sr)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int, label: str = "The audio") -> np.ndarray:
    """Resample with soxr (HQ); NaN/infinite samples are set to 0 first (see ``sanitize``)."""
    if orig_sr == target_sr:
        return audio
    import librosa

    audio = sanitize(audio, label)
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


def frame_levels(audio: np.ndarray, sr: int, frame_ms: float = 20.0) -> tuple[np.ndarray, float]:
    """Level in dBFS of consecutive frames, and the frame length in seconds."""
    hop = max(1, int(sr * frame_ms / 1000))
    n = len(audio) // hop
    if n == 0:
        return np.array([]), hop / sr
    frames = audio[: n * hop].astype(np.float64).reshape(n, hop)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12), hop / sr


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether a write failure means the disk holding ``folder`` is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, RuntimeError):  # libsndfile, torch: errno lost, only "System error." is left
        try:
            return shutil.disk_usage(folder).free < LOW_DISK_BYTES
        except OSError:
            return False
    return False


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[str]:
    """A temp file beside ``path`` to write into; renamed over ``path`` when the block ends without error,
    removed otherwise, so readers never see half a file.

    Raises:
        LabError: the disk is full (the message names the file and its folder).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        yield tmp
        os.replace(tmp, path)
    except Exception as exc:
        if _disk_full(exc, path.parent):  # the partial temp file goes in `finally`
            raise LabError(
                f"The disk is full: could not write {path.name} to {path.parent}. "
                "Free some space there (or move the workspace to a bigger disk) and try again."
            ) from exc
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples -> the 16-bit samples ``save_wav`` writes: floor(x * 32768), clipped (libsndfile's own
    rule, so files are bit-identical to those written before this function existed)."""
    scaled = np.floor(np.asarray(audio, dtype=np.float64) * 32768.0)
    return np.clip(np.nan_to_num(scaled), -32768, 32767).astype(np.int16)


def save_wav(path: str | Path, audio: np.ndarray, sr: int) -> Path:
    """Write 16-bit PCM WAV atomically (samples converted by ``pcm16``)."""
    with atomic_file(path) as tmp:
        sf.write(tmp, pcm16(audio), sr, subtype="PCM_16", format="WAV")
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Atomic text write (temp file + rename)."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
