"""Transcripts in OpenAI's response formats: json, text, srt, vtt, verbose_json.

verbose_json carries openai-whisper's segment fields (id, seek, start, end, text, tokens, temperature,
avg_logprob, compression_ratio, no_speech_prob) and, with the ``word`` granularity, ``words`` [{word, start,
end}]. ``language`` is Whisper's language name in lower case ("english"), as OpenAI answers. SRT and VTT come
from ``engines.asr.engine.transcript`` (whisper's own writers), so they match the ASR tab's files.
"""

from __future__ import annotations

import json
import math
from typing import Any

from rest.errors import bad_request

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("segment", "word")
MEDIA_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",  # as OpenAI serves them
    "vtt": "text/plain; charset=utf-8",
}
STREAM_FORMATS = ("json", "text")  # OpenAI streams only these (the events carry plain text)


def check_format(
    response_format: str | None, granularities: list[str], *, stream: bool = False
) -> tuple[str, frozenset[str]]:
    """The response format and timestamp granularities, checked as OpenAI does.

    Returns:
        (format, granularities); no granularity given = {"segment"}.

    Raises:
        APIError: 400 for an unknown format or granularity, ``word`` without verbose_json (``segment`` alone is
            accepted with any format, as OpenAI does), or a stream in a format other than json and text.
    """
    fmt = (response_format or "json").strip()
    if fmt not in RESPONSE_FORMATS:
        raise bad_request(
            f"response_format {fmt!r} is not supported; use one of {', '.join(RESPONSE_FORMATS)}.", "response_format"
        )
    unknown = [g for g in granularities if g not in GRANULARITIES]
    if unknown:
        raise bad_request(
            f"timestamp_granularities[] {unknown[0]!r} is not supported; use 'word' and/or 'segment'.",
            "timestamp_granularities",
        )
    if "word" in granularities and fmt != "verbose_json":
        raise bad_request(
            "timestamp_granularities[] 'word' needs response_format 'verbose_json'.", "timestamp_granularities"
        )
    if stream and fmt not in STREAM_FORMATS:
        raise bad_request(
            f"stream=true answers transcript events; use response_format 'json' or 'text', not {fmt!r}.", "stream"
        )
    return fmt, frozenset(granularities or ["segment"])


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def language_name(code: str | None) -> str | None:
    """Whisper's name of a language code ("en" -> "english"), as OpenAI's verbose_json says it."""
    if not code:
        return None
    from whisper.tokenizer import LANGUAGES

    return LANGUAGES.get(code, code)


def verbose(transcript: Any, task: str, granularities: frozenset[str]) -> dict[str, Any]:
    """The verbose_json object of a transcript."""
    body: dict[str, Any] = {
        "task": task,
        "language": language_name(transcript.language),
        "duration": round(float(transcript.audio_seconds), 3),
        "text": transcript.text,
    }
    if "segment" in granularities:
        body["segments"] = [
            {
                "id": i,
                "seek": getattr(s, "seek", None),
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text,
                "tokens": list(getattr(s, "tokens", None) or []),
                "temperature": _number(s.temperature),
                "avg_logprob": _number(s.avg_logprob),
                "compression_ratio": _number(s.compression_ratio),
                "no_speech_prob": _number(s.no_speech_prob),
            }
            for i, s in enumerate(transcript.segments)
        ]
    if "word" in granularities:
        body["words"] = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
            for s in transcript.segments
            for w in (s.words or [])
        ]
    return body


def render(transcript: Any, fmt: str, task: str, granularities: frozenset[str]) -> tuple[bytes, str]:
    """(body, media type) of a transcript in one response format."""
    from engines.asr.transcript import to_srt, to_vtt

    if fmt == "json":
        text = json.dumps({"text": transcript.text}, ensure_ascii=False)
    elif fmt == "verbose_json":
        text = json.dumps(verbose(transcript, task, granularities), ensure_ascii=False)
    elif fmt == "text":
        text = transcript.text + "\n"
    elif fmt == "srt":
        text = to_srt(transcript)
    else:
        text = to_vtt(transcript)
    return text.encode("utf-8"), MEDIA_TYPES[fmt]


__all__ = ["GRANULARITIES", "RESPONSE_FORMATS", "check_format", "language_name", "render", "verbose"]
