"""Where speech is in a recording: Silero VAD (the ONNX model bundled with faster-whisper).

Deciding "is there speech?" from the whole file's level statistics fails both ways: a short answer
inside a long quiet room recording looks like steady noise, and quiet speech falls under any fixed
dBFS floor. A voice-activity detector judges each 32 ms window by what it sounds like, not how loud
it is; the signal is peak-normalized first so the level of the recording does not matter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # Silero VAD's rate (and Whisper's)
DIGITAL_SILENCE_DBFS = -90.0  # a peak under this is zeros or dither: no detector needed
_PEAK_TARGET = 0.5  # peak-normalize to -6 dBFS before detection


@dataclass(frozen=True)
class VadOptions:
    """Silero VAD settings (faster-whisper's names; its defaults are tuned for long-form ASR)."""

    threshold: float = 0.5  # speech probability above which a window is speech
    min_speech_ms: int = 120  # shorter bursts (clicks, bumps) are not speech
    min_silence_ms: int = 300  # a region ends after this much non-speech
    pad_ms: int = 60  # added to both sides of each region (Silero trims word edges tightly)


@dataclass(frozen=True)
class SpeechRegion:
    """A stretch of speech, seconds from the start of the audio."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def peak_dbfs(audio: np.ndarray) -> float:
    """Peak level in dBFS (-inf for an all-zero signal)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def speech_regions(audio_16k: np.ndarray, options: VadOptions = VadOptions()) -> list[SpeechRegion]:
    """Speech regions of mono 16 kHz audio, in time order, whatever the recording's level.

    Args:
        audio_16k: float samples at 16 kHz (any scale; NaN/inf count as 0).
        options: detector settings.

    Returns:
        The regions (empty when there is no speech).
    """
    from faster_whisper.vad import VadOptions as SileroOptions
    from faster_whisper.vad import get_speech_timestamps

    audio = np.nan_to_num(np.asarray(audio_16k, dtype=np.float32))
    if audio.ndim != 1 or audio.size < SAMPLE_RATE // 10:
        return []
    if peak_dbfs(audio) < DIGITAL_SILENCE_DBFS:
        return []
    audio = audio - float(np.mean(audio))  # a DC offset would eat the normalization headroom
    audio = audio * (_PEAK_TARGET / max(float(np.max(np.abs(audio))), 1e-12))
    stamps = get_speech_timestamps(
        audio,
        SileroOptions(
            threshold=options.threshold,
            min_speech_duration_ms=options.min_speech_ms,
            min_silence_duration_ms=options.min_silence_ms,
            speech_pad_ms=options.pad_ms,
        ),
        sampling_rate=SAMPLE_RATE,
    )
    return [SpeechRegion(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def speech_seconds(regions: list[SpeechRegion]) -> float:
    """Total duration of the regions."""
    return float(sum(r.duration for r in regions))


__all__ = ["SpeechRegion", "VadOptions", "peak_dbfs", "speech_regions", "speech_seconds"]
