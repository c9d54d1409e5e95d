"""Where speech is in a recording: Silero VAD (the ONNX model bundled with faster-whisper).

Deciding "is there speech?" from the whole file's level statistics fails both ways: a short answer
inside a long quiet room recording looks like steady noise, and quiet speech falls under any fixed
dBFS floor. A voice-activity detector judges each 32 ms window by what it sounds like, not how loud
it is; the signal is peak-normalized first so the level of the recording does not matter.

``check_speech`` turns the regions into what Whisper should decode (``SpeechCheck``): padded, merged spans
and clip timestamps, or the reason nothing should be decoded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from engines.core.audio import frame_levels, rms_dbfs

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # Silero VAD's rate (and Whisper's)
DIGITAL_SILENCE_DBFS = -90.0  # a peak under this is zeros or dither: no detector needed
_PEAK_TARGET = 0.5  # peak-normalize to -6 dBFS before detection

# Where speech is decides what Whisper hears (engines.asr.vad). Each detected region gets this much context on
# both sides (Silero trims soft onsets, more so under noise); regions closer than MIN_SKIP_SECONDS are decoded
# together (Whisper copes with pauses inside a window); longer stretches without speech are never decoded.
SPEECH_PAD_SECONDS = 1.0
MIN_SKIP_SECONDS = 4.0
# Only describes what the detector rejected (the detector decides): steady noise keeps the levels of its 30 ms
# frames within a few dB (white ~1 dB, pink ~6 dB, hum 0 dB); speech swings 20-40 dB.
STEADY_SPREAD_DB = 10.0


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


@dataclass(frozen=True)
class SpeechCheck:
    """What the voice-activity check before decoding found, and what Whisper will hear."""

    audio_seconds: float
    regions: tuple[SpeechRegion, ...]  # where the detector heard speech (empty with vad=False)
    spans: tuple[tuple[float, float], ...]  # (start, end) seconds to decode: regions padded and merged
    reason: str | None = None  # why nothing is decoded (then spans is empty); None = there is speech

    @property
    def whole(self) -> bool:
        """True when the whole audio is decoded (nothing worth skipping)."""
        return self.spans == ((0.0, self.audio_seconds),)

    @property
    def clip_timestamps(self) -> list[float] | None:
        """The spans as whisper.transcribe's ``clip_timestamps`` (start, end, ...), or None for the whole audio."""
        if self.whole or not self.spans:
            return None
        return [t for span in self.spans for t in span]


def _describe_non_speech(audio: np.ndarray) -> str:
    """What the detector rejected, in words: steady noise keeps its 30 ms frame levels within a few dB."""
    levels, _ = frame_levels(audio, SAMPLE_RATE, frame_ms=30.0)
    level = f"{rms_dbfs(audio):.0f} dBFS"
    if levels.size < 4:
        return f"a sound too short to judge ({level})"
    low, high = (float(v) for v in np.percentile(levels, [10, 90]))
    if high - low < STEADY_SPREAD_DB and low > DIGITAL_SILENCE_DBFS:
        return f"steady noise or hum ({level}, level spread {high - low:.1f} dB)"
    return f"noise, clicks or other sounds ({level})"


def _spans(regions: list[SpeechRegion], audio_seconds: float) -> tuple[tuple[float, float], ...]:
    """Regions padded by SPEECH_PAD_SECONDS, merged across gaps under MIN_SKIP_SECONDS, snapped to the ends."""
    spans: list[list[float]] = []
    for region in regions:
        start = max(0.0, region.start - SPEECH_PAD_SECONDS)
        end = min(audio_seconds, region.end + SPEECH_PAD_SECONDS)
        if spans and start - spans[-1][1] < MIN_SKIP_SECONDS:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    if spans and spans[0][0] < MIN_SKIP_SECONDS:
        spans[0][0] = 0.0
    if spans and audio_seconds - spans[-1][1] < MIN_SKIP_SECONDS:
        spans[-1][1] = audio_seconds
    return tuple((a, b) for a, b in spans)


def check_speech(audio_16k: np.ndarray, vad: bool = True) -> SpeechCheck:
    """Find where the audio holds speech (Silero VAD, level-independent) and what Whisper should decode.

    Args:
        audio_16k: mono float samples at 16 kHz.
        vad: False = decode everything that is not digital silence (no detector).

    Returns:
        The check: detected regions, the spans to decode, or the reason nothing should be.
    """
    audio = np.asarray(audio_16k, dtype=np.float32)
    audio_seconds = len(audio) / SAMPLE_RATE
    peak = peak_dbfs(audio)
    if peak < DIGITAL_SILENCE_DBFS:
        return SpeechCheck(audio_seconds, (), (), f"it is silent (peak {peak:.0f} dBFS)")
    if not vad:
        return SpeechCheck(audio_seconds, (), ((0.0, audio_seconds),))
    regions = speech_regions(audio)
    if not regions:
        if audio_seconds < 0.1:
            return SpeechCheck(audio_seconds, (), (), f"it is too short to hold speech ({audio_seconds:.2f} s)")
        reason = f"the voice-activity detector heard no voice in it, only {_describe_non_speech(audio)}"
        return SpeechCheck(audio_seconds, (), (), reason)
    return SpeechCheck(audio_seconds, tuple(regions), _spans(regions, audio_seconds))


def check_piece(check: SpeechCheck, start: float, end: float) -> SpeechCheck:
    """``check``'s verdict for the piece ``start``-``end`` (seconds) of its audio, without running the detector
    again: the regions inside it, moved to the piece's time."""
    seconds = end - start
    regions = [
        SpeechRegion(max(r.start, start) - start, min(r.end, end) - start)
        for r in check.regions
        if r.end > start and r.start < end
    ]
    if not regions:
        return SpeechCheck(seconds, (), (), "the voice-activity detector heard no voice in it")
    return SpeechCheck(seconds, tuple(regions), _spans(regions, seconds))


def no_speech_reason(audio: np.ndarray) -> str | None:
    """Why this audio holds no speech (voice-activity check before decoding), or None when it does.

    Args:
        audio: mono samples at 16 kHz, any level.

    Returns:
        A short reason ("it is silent (peak -inf dBFS)", "the voice-activity detector heard no voice ...") or None.
    """
    return check_speech(audio).reason
