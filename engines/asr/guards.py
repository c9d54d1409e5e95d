"""Why ASR output is trusted: the rules every backend's output goes through, in one copy.

Whisper's own thresholds and fallback rule (``needs_fallback``, ``window_is_silent``), the temperature ladder
(``temperatures``), the repetition-loop guard (``loop_reason``, ``drop_loops``) and how a transcription's raw
segments become a ``Transcript`` with a notice that says what was dropped and why. The voice-activity gate
before decoding is ``engines.asr.vad.check_speech``; the engine applies it and these rules to both backends.
"""

from __future__ import annotations

import logging

import numpy as np

from engines.asr.backends.base import RawSegment, RawTranscription
from engines.asr.checks import COMPRESSION_LIMIT, repetition_loop
from engines.asr.options import ASROptions
from engines.asr.transcript import Segment, Transcript, Word
from engines.core.errors import AudioError

log = logging.getLogger(__name__)

# Whisper's own defaults (transcribe(no_speech_threshold=0.6, logprob_threshold=-1.0,
# compression_ratio_threshold=2.4) and the CLI's --temperature_increment_on_fallback 0.2). The sequential
# path hands them to the backend's transcribe, the batched path applies the same rules to each decode result, so
# both drop the same windows and redo the same ones.
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
COMPRESSION_RATIO_THRESHOLD = COMPRESSION_LIMIT  # 2.4: above it a window's text is a repetition loop
THRESHOLDS = {  # whisper.transcribe's names; faster-whisper gets the same values
    "compression_ratio_threshold": COMPRESSION_RATIO_THRESHOLD,
    "logprob_threshold": LOGPROB_THRESHOLD,
    "no_speech_threshold": NO_SPEECH_THRESHOLD,
}

# A window whose text still repeats an n-gram this often in a row after the fallback is a loop. Higher than
# checks.repetition_loop's 3 (a dataset flag): real speech says "no, no, no", and here the window is dropped.
LOOP_REPEATS = 4


def temperatures(options: ASROptions) -> tuple[float, ...]:
    """The fallback ladder: ``temperature``, then ``+ temperature_increment`` ... up to 1.0 (whisper's CLI rule)."""
    if options.temperature_increment is None:
        return (float(options.temperature),)
    ladder = np.arange(options.temperature, 1.0 + 1e-6, options.temperature_increment)
    return tuple(round(float(t), 6) for t in ladder)


def needs_fallback(compression_ratio: float, avg_logprob: float, no_speech_prob: float) -> bool:
    """Whisper's rule (transcribe.decode_with_fallback) for decoding a window again at the next temperature:
    its text loops or is improbable, unless the window is judged speechless."""
    failed = compression_ratio > COMPRESSION_RATIO_THRESHOLD or avg_logprob < LOGPROB_THRESHOLD
    return failed and not (no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD)


def window_is_silent(no_speech_prob: float, avg_logprob: float) -> bool:
    """Whisper's rule for a window without speech: no-speech likely and the decoded text improbable."""
    return no_speech_prob > NO_SPEECH_THRESHOLD and not avg_logprob > LOGPROB_THRESHOLD


def loop_reason(text: str, compression_ratio: float | None = None) -> str | None:
    """Why a window's decoded text is a repetition loop (the fallback could not fix it), or None.

    Args:
        text: all the text Whisper decoded from one 30 s window.
        compression_ratio: Whisper's gzip ratio of that text, when known (else computed from ``text``).

    Returns:
        A short description ('"the next one" repeated 15 times in a row', ...) or None.
    """
    if compression_ratio is not None and compression_ratio > COMPRESSION_RATIO_THRESHOLD:
        return f"its text compresses {compression_ratio:.1f}x (over {COMPRESSION_RATIO_THRESHOLD}), a repetition loop"
    return repetition_loop(text, min_repeats=LOOP_REPEATS)


def as_mono(audio: np.ndarray, source: str | None) -> np.ndarray:
    """Samples as one contiguous float32 channel (NaN/inf zeroed).

    Raises:
        AudioError: not 1-D or 2-D, or no samples.
    """
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 2:  # (samples, channels) or (channels, samples): average the short axis
        array = array.mean(axis=int(np.argmin(array.shape)))
    if array.ndim != 1:
        raise AudioError(f"{source or 'Audio'}: expected mono samples, got an array of shape {array.shape}.")
    if array.size == 0:
        raise AudioError(f"{source or 'Audio'} holds no samples.")
    if not np.isfinite(array).all():
        array = np.nan_to_num(array)
    return np.ascontiguousarray(array)


def empty(audio_seconds: float, seconds: float, language: str | None, notice: str, source: str | None) -> Transcript:
    """A transcript with no text, and the notice that says why."""
    return Transcript(
        text="",
        language=language,
        segments=[],
        audio_seconds=audio_seconds,
        seconds=seconds,
        rtf=seconds / audio_seconds if audio_seconds else 0.0,
        notice=notice,
        source=source,
    )


def label(source: str | None) -> str:
    """What notices call the audio."""
    return source or "the audio"


def clock(seconds: float) -> str:
    """m:ss.s, for notices."""
    minutes, secs = divmod(max(0.0, seconds), 60.0)
    return f"{int(minutes)}:{secs:04.1f}"


def segment(raw: RawSegment) -> Segment:
    """A raw segment as a ``Segment``."""
    words = None
    if "words" in raw:
        words = [Word(float(w["start"]), float(w["end"]), w["word"], float(w["probability"])) for w in raw["words"]]
    return Segment(
        float(raw["start"]),
        float(raw["end"]),
        raw["text"],
        words,
        avg_logprob=float(raw["avg_logprob"]),
        no_speech_prob=float(raw["no_speech_prob"]),
        temperature=float(raw["temperature"]),
        compression_ratio=float(raw["compression_ratio"]),
        seek=int(raw["seek"]) if "seek" in raw else None,
        tokens=[int(t) for t in raw["tokens"]] if "tokens" in raw else None,
    )


def drop_loops(raw_segments: list[RawSegment]) -> tuple[list[Segment], str]:
    """A transcription's segments without the windows whose text is still a repetition loop.

    Returns:
        The kept (non-empty) segments, and a description of each dropped window ("" when none was).
    """
    windows: dict[int, list[RawSegment]] = {}
    for raw in raw_segments:  # segments of one 30 s window share its seek (and its compression ratio)
        windows.setdefault(int(raw["seek"]), []).append(raw)
    kept: list[Segment] = []
    dropped: list[str] = []
    for raws in windows.values():
        reason = loop_reason("".join(r["text"] for r in raws), max(float(r["compression_ratio"]) for r in raws))
        if reason:
            dropped.append(f"{clock(raws[0]['start'])}-{clock(raws[-1]['end'])}: {reason}")
            log.info("Dropped a repetition loop: %s", dropped[-1])
            continue
        kept.extend(segment(r) for r in raws if r["text"].strip())
    return kept, "; ".join(dropped)


def transcript(
    result: RawTranscription, loop_guard: bool, audio_seconds: float, seconds: float, source: str | None
) -> Transcript:
    """A transcription as a ``Transcript``: loops dropped (``loop_guard``), empty segments left out, and a
    notice when a loop was dropped or no words were found."""
    if loop_guard:
        segments, loops = drop_loops(result["segments"])
    else:
        segments, loops = [segment(r) for r in result["segments"] if r["text"].strip()], ""
    text = "".join(s.text for s in segments).strip()
    notice = None
    if loops and not text:
        notice = (
            f"No speech transcribed in {label(source)}: what Whisper decoded was a repetition loop "
            f"({loops}) and was dropped."
        )
    elif loops:
        notice = f"Dropped a repetition loop Whisper decoded in {label(source)} ({loops})."
    elif not text:
        notice = (
            f"No speech detected in {label(source)}: Whisper found no words in any 30 s window. "
            "Nothing was transcribed."
        )
    return Transcript(
        text=text,
        language=result.get("language"),
        segments=segments,
        audio_seconds=audio_seconds,
        seconds=seconds,
        rtf=seconds / audio_seconds,
        notice=notice,
        source=source,
    )


__all__ = [
    "COMPRESSION_RATIO_THRESHOLD",
    "LOGPROB_THRESHOLD",
    "LOOP_REPEATS",
    "NO_SPEECH_THRESHOLD",
    "THRESHOLDS",
    "as_mono",
    "clock",
    "drop_loops",
    "empty",
    "label",
    "loop_reason",
    "needs_fallback",
    "segment",
    "temperatures",
    "transcript",
    "window_is_silent",
]
