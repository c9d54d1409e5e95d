"""Text checks on a transcript: Whisper's repetition-loop detectors (an n-gram repeated in a row, a text that
compresses too well). The ASR engine's loop guard and the dataset builder's clip checks both use them."""

from __future__ import annotations

import re
import zlib

COMPRESSION_LIMIT = 2.4  # whisper's compression_ratio_threshold: above it the text is a loop
MIN_LOOP_CHARS = 40  # the compression check means nothing on short texts

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def compression_ratio(text: str) -> float:
    """Whisper's loop detector: bytes / zlib-compressed bytes (above ~2.4 = repetitive)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def repetition_loop(text: str, min_repeats: int = 3, max_n: int = 8) -> str | None:
    """Detect a Whisper repetition loop: an n-gram repeated ``min_repeats`` times in a row, or a text
    that compresses too well.

    Args:
        text: the transcript.
        min_repeats: repeats in a row that count as a loop.
        max_n: longest n-gram checked (words; characters for Chinese/Japanese text).

    Returns:
        A short description of the loop, or None.
    """
    tokens = re.findall(r"\w+", text.lower())
    units, joiner, min_n = tokens, " ", 1
    if _CJK.search(text) and len(tokens) < 4:  # no spaces to split on: look at characters
        units, joiner, min_n = [c for c in text if c.isalnum()], "", 2
    for n in range(min_n, max_n + 1):
        for i in range(0, len(units) - n * min_repeats + 1):
            gram = units[i : i + n]
            count, j = 1, i + n
            while units[j : j + n] == gram:
                count += 1
                j += n
            if count >= min_repeats:
                return f'"{joiner.join(gram)}" repeated {count} times in a row'
    if len(text) >= MIN_LOOP_CHARS:
        ratio = compression_ratio(text)
        if ratio > COMPRESSION_LIMIT:
            return f"text compresses {ratio:.1f}x (over {COMPRESSION_LIMIT}): likely a repetition loop"
    return None
