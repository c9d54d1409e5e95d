"""Transcripts and their files: the ``Transcript`` an ASR run returns and the TXT/SRT/VTT/JSON writers.

No model here: the ASR engine makes transcripts, pages and scripts save them. SRT and VTT come from
whisper.utils' own writers, so cues match what ``whisper --output_format`` writes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.core.audio import write_text


@dataclass
class Word:
    start: float  # seconds from the start of the audio
    end: float
    word: str  # with its leading space, as Whisper returns it
    probability: float


@dataclass
class Segment:
    start: float  # seconds from the start of the audio (skipped stretches included)
    end: float
    text: str
    words: list[Word] | None = None  # only with word_timestamps
    avg_logprob: float | None = None  # mean token log-probability of the window it came from (confidence)
    no_speech_prob: float | None = None  # Whisper's probability that its window holds no speech
    temperature: float | None = None  # the fallback temperature its window was decoded at (0 = first try)
    compression_ratio: float | None = None  # of its window's text (over 2.4 = a loop)
    seek: int | None = None  # start of its 30 s window in 10 ms frames (whisper's seek; OpenAI's verbose_json)
    tokens: list[int] | None = None  # its token ids as Whisper decoded them (OpenAI's verbose_json)


@dataclass
class Transcript:
    text: str  # all segments joined, stripped
    language: str | None  # Whisper code, detected or forced (None when nothing was decoded)
    segments: list[Segment]
    audio_seconds: float
    seconds: float  # processing time, model loading excluded
    rtf: float  # seconds / audio_seconds (below 1 = faster than real time)
    notice: str | None = None  # e.g. why the text is empty, or what was dropped as a repetition loop
    source: str | None = None  # file name or caller's label


def _whisper_result(t: Transcript) -> dict[str, Any]:
    """The transcript in whisper.transcribe's result shape, for whisper.utils' writers.

    Words are left out on purpose: given them, the writers switch to word mode, which drops a segment
    without words and does not escape "-->" in the text. Cues are the segments either way (whisper sets a
    segment's times to its first and last word's).
    """
    segments = [{"id": i, "start": s.start, "end": s.end, "text": s.text} for i, s in enumerate(t.segments)]
    return {"text": t.text, "segments": segments, "language": t.language}


def _write_with(writer_cls: type, t: Transcript) -> str:
    buffer = io.StringIO()
    writer_cls(".").write_result(_whisper_result(t), file=buffer)
    return buffer.getvalue()


def to_txt(t: Transcript) -> str:
    """Plain text, one line per segment (whisper's TXT writer)."""
    from whisper.utils import WriteTXT

    return _write_with(WriteTXT, t)


def to_srt(t: Transcript) -> str:
    """SubRip subtitles: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` (whisper's SRT writer)."""
    from whisper.utils import WriteSRT

    return _write_with(WriteSRT, t)


def to_vtt(t: Transcript) -> str:
    """WebVTT subtitles: ``WEBVTT`` header, ``MM:SS.mmm`` cues (whisper's VTT writer)."""
    from whisper.utils import WriteVTT

    return _write_with(WriteVTT, t)


def _finite(value: Any) -> Any:
    """NaN/inf (whisper's "not measured") become null, so the file stays valid JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def to_json(t: Transcript) -> str:
    """Everything in the transcript (segments, words, timing, notice) as pretty JSON."""
    return json.dumps(_finite(dataclasses.asdict(t)), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def safe_stem(name: str) -> str:
    """A file-name-safe stem (letters, digits, ._-), never empty."""
    stem = re.sub(r"[^\w.-]+", "_", Path(name).stem, flags=re.UNICODE).strip("._")
    return stem[:80] or "audio"


def save_outputs(transcript: Transcript, folder: Path, stem: str) -> dict[str, Path]:
    """Write the TXT, SRT, VTT and JSON files, each atomically.

    Args:
        transcript: what to write.
        folder: target folder (the app uses workspace/outputs/asr/); created when missing.
        stem: file name without extension (made safe).

    Returns:
        {"txt": path, "srt": path, "vtt": path, "json": path}.
    """
    folder = Path(folder)
    stem = safe_stem(stem)
    writers = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "json": to_json}
    return {ext: write_text(folder / f"{stem}.{ext}", fn(transcript)) for ext, fn in writers.items()}
