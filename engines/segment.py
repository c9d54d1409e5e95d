"""Where to cut long recordings into training clips, and text checks on the clips.

Pure functions over Whisper's segments/words and plain sample arrays, so they are testable
without a model. ``engines.datasets`` uses them; nothing here touches files.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

MAX_MERGE_GAP = 1.0  # seconds: never merge two segments across a longer pause (silence inside a clip)
PUNCT_BONUS = 0.15  # seconds added to a pause after a comma etc. when choosing where to split
SENTENCE_BONUS = 0.3  # ... and after a full stop, question or exclamation mark
COMPRESSION_LIMIT = 2.4  # whisper's compression_ratio_threshold: above it the text is a loop
MIN_LOOP_CHARS = 40  # the compression check means nothing on short texts

_SENTENCE_END = re.compile(r"[.!?。！？…]['\"”’)\]]*$")
_CLAUSE_END = re.compile(r"[,;:、，；：—-]['\"”’)\]]*$")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


@dataclass
class TimedWord:
    """A word with its time span in the recording (seconds)."""

    start: float
    end: float
    text: str  # with Whisper's leading space


@dataclass
class Piece:
    """A planned clip: [start, end) in the recording, with the words it holds."""

    start: float  # seconds, padding included
    end: float
    text: str
    speech_start: float  # first word (or segment) start, before padding
    speech_end: float
    words: list[TimedWord] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class _Unit:
    start: float
    end: float
    text: str
    words: list[TimedWord]


def clean_text(text: str) -> str:
    """One line of text safe for a pipe-separated metadata file: whitespace collapsed, no ``|``."""
    text = unicodedata.normalize("NFC", str(text)).replace("|", " ")
    return re.sub(r"\s+", " ", text).strip()


def join_texts(parts: Sequence[str], language: str | None = None) -> str:
    """Join segment texts: no space between Chinese/Japanese segments, one space elsewhere."""
    sep = "" if language in ("zh-cn", "zh", "ja") else " "
    return clean_text(sep.join(p.strip() for p in parts if p.strip()))


def _sanitize(segments: Sequence, audio_seconds: float) -> list[_Unit]:
    """Whisper segments (engines.asr.Segment-like) as units with clamped, ordered times."""
    units: list[_Unit] = []
    last = 0.0
    for seg in segments:
        text = clean_text(getattr(seg, "text", "") or "")
        if not text:
            continue
        start = min(max(float(seg.start), last), audio_seconds)
        end = min(max(float(seg.end), start), audio_seconds)
        words: list[TimedWord] = []
        w_last = start
        for w in getattr(seg, "words", None) or []:
            word = str(getattr(w, "word", "") or "")
            if not word.strip():
                continue
            ws = min(max(float(w.start), w_last), end)
            we = min(max(float(w.end), ws), end)
            words.append(TimedWord(ws, we, word))
            w_last = we
        if words:  # word times are tighter than segment times
            start, end = words[0].start, max(words[-1].end, words[0].start)
        units.append(_Unit(start, end, text, words))
        last = end
    return units


def _words_text(words: Sequence[TimedWord]) -> str:
    return clean_text("".join(w.text for w in words))


def _split_words(words: list[TimedWord], max_span: float, min_clip: float) -> list[list[TimedWord]]:
    """Split a word run at its biggest pauses (a bonus after punctuation) until each part fits."""
    if len(words) < 2 or words[-1].end - words[0].start <= max_span:
        return [words]
    best_k, best_score, best_both = None, -1.0, False
    for k in range(1, len(words)):
        gap = words[k].start - words[k - 1].end
        prev = words[k - 1].text.strip()
        score = gap + (SENTENCE_BONUS if _SENTENCE_END.search(prev) else PUNCT_BONUS if _CLAUSE_END.search(prev) else 0)
        both = (words[k - 1].end - words[0].start >= min_clip) and (words[-1].end - words[k].start >= min_clip)
        # a cut that leaves both sides long enough beats a bigger pause that leaves a crumb
        if (both, score) > (best_both, best_score):
            best_k, best_score, best_both = k, score, both
    assert best_k is not None
    return _split_words(words[:best_k], max_span, min_clip) + _split_words(words[best_k:], max_span, min_clip)


def plan_clips(
    segments: Sequence,
    audio_seconds: float,
    *,
    min_clip: float = 1.0,
    max_clip: float = 11.0,
    pad: float = 0.15,
    language: str | None = None,
) -> list[Piece]:
    """Plan clips from a Whisper transcript: merge adjacent segments, split long ones at pauses, pad.

    Segments longer than ``max_clip`` are split between words at the biggest pause (a full stop or
    comma makes a pause count more). Adjacent segments are merged while the clip stays within
    ``max_clip`` and the pause between them is under ``MAX_MERGE_GAP``. Each clip gets ``pad``
    seconds of context on both sides, never reaching into the neighbouring clip's speech.
    Clips are not filtered here: the caller drops the too short/long ones with a reason.

    Args:
        segments: objects with ``start``, ``end``, ``text`` and optional ``words`` (``start``, ``end``, ``word``).
        audio_seconds: length of the recording.
        min_clip: shortest clip wanted (a split prefers cuts that keep both sides at least this long).
        max_clip: longest clip allowed, padding included.
        pad: seconds of context added before and after the speech.
        language: XTTS language code (Chinese/Japanese texts are joined without spaces).

    Returns:
        The planned pieces, in time order.
    """
    pad = max(0.0, min(pad, max_clip / 4))
    max_span = max_clip - 2 * pad  # room for speech once both pads are added
    units: list[_Unit] = []
    for unit in _sanitize(segments, audio_seconds):
        if unit.end - unit.start > max_span and len(unit.words) >= 2:
            for part in _split_words(unit.words, max_span, min_clip):
                units.append(_Unit(part[0].start, part[-1].end, _words_text(part), part))
        else:
            units.append(unit)

    merged: list[_Unit] = []
    for unit in units:
        if merged:
            cur = merged[-1]
            if unit.end - cur.start <= max_span and unit.start - cur.end <= MAX_MERGE_GAP:
                merged[-1] = _Unit(
                    cur.start, unit.end, join_texts([cur.text, unit.text], language), cur.words + unit.words
                )
                continue
        merged.append(unit)

    pieces: list[Piece] = []
    for i, unit in enumerate(merged):
        lo = 0.0 if i == 0 else (merged[i - 1].end + unit.start) / 2
        hi = audio_seconds if i == len(merged) - 1 else (unit.end + merged[i + 1].start) / 2
        start = max(lo, unit.start - pad, 0.0)
        end = min(hi, unit.end + pad, audio_seconds)
        pieces.append(Piece(start, end, unit.text, unit.start, unit.end, unit.words))
    return pieces


# ----- pauses in plain audio (re-cutting a clip without word timings) -----


def frame_levels(audio: np.ndarray, sr: int, frame_ms: float = 20.0) -> tuple[np.ndarray, float]:
    """Level in dBFS of consecutive frames, and the frame length in seconds."""
    hop = max(1, int(sr * frame_ms / 1000))
    n = len(audio) // hop
    if n == 0:
        return np.array([]), hop / sr
    frames = audio[: n * hop].astype(np.float64).reshape(n, hop)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12), hop / sr


def find_pauses(
    audio: np.ndarray, sr: int, *, silence_db: float = -50.0, below_peak_db: float = 30.0, min_pause: float = 0.12
) -> list[tuple[float, float]]:
    """Quiet stretches: frames more than ``below_peak_db`` under the loud frames (or under ``silence_db``).

    Returns:
        (start, end) seconds of each pause at least ``min_pause`` long.
    """
    levels, step = frame_levels(audio, sr)
    if levels.size == 0:
        return []
    threshold = max(silence_db, float(np.percentile(levels, 95)) - below_peak_db)
    quiet = levels < threshold
    pauses, start = [], None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if (i - start) * step >= min_pause:
                pauses.append((start * step, i * step))
            start = None
    return pauses


def plan_recut(duration: float, pauses: Sequence[tuple[float, float]], max_clip: float, min_clip: float) -> list[float]:
    """Cut times (seconds) that split [0, duration] into parts of at most ``max_clip`` at pauses.

    The longest pause that leaves both sides at least ``min_clip`` long wins (ties: nearest the middle).

    Returns:
        Sorted cut times; empty when no split is needed.

    Raises:
        ValueError: a part is too long and holds no usable pause.
    """

    def split(a: float, b: float) -> list[float]:
        if b - a <= max_clip:
            return []
        inside = [(s, e) for s, e in pauses if s > a and e < b]
        usable = [(s, e) for s, e in inside if (s + e) / 2 - a >= min_clip and b - (s + e) / 2 >= min_clip]
        candidates = usable or inside
        if not candidates:
            raise ValueError(f"no pause between {a:.1f} s and {b:.1f} s to cut at")
        mid = (a + b) / 2
        s, e = max(candidates, key=lambda p: (round(p[1] - p[0], 2), -abs((p[0] + p[1]) / 2 - mid)))
        cut = (s + e) / 2
        return split(a, cut) + [cut] + split(cut, b)

    return split(0.0, duration)


def split_text(text: str, fractions: Sequence[float]) -> list[str]:
    """Split text at word boundaries near the given fractions of its length (punctuation preferred).

    Args:
        text: the clip's text.
        fractions: increasing positions in (0, 1), one per cut.

    Returns:
        len(fractions) + 1 non-empty parts whose words, joined, are the original words.

    Raises:
        ValueError: fewer words than parts.
    """
    words = text.split()
    if len(words) < len(fractions) + 1:
        raise ValueError(f"the text has {len(words)} word(s); it cannot be split into {len(fractions) + 1} parts")
    # character offset at the end of each word (boundary k = after word k-1)
    ends = np.cumsum([len(w) + 1 for w in words]) - 1
    total = float(ends[-1])
    cuts: list[int] = []
    lo = 1
    for j, frac in enumerate(fractions):
        hi = len(words) - (len(fractions) - j)  # leave at least one word per remaining part
        target = frac * total
        window = 0.1 * total

        def cost(k: int, target: float = target, window: float = window) -> float:
            prev = words[k - 1]
            bonus = window if _SENTENCE_END.search(prev) else window / 2 if _CLAUSE_END.search(prev) else 0.0
            return abs(ends[k - 1] - target) - bonus

        k = min(range(lo, hi + 1), key=cost)
        cuts.append(k)
        lo = k + 1
    bounds = [0, *cuts, len(words)]
    return [" ".join(words[a:b]) for a, b in zip(bounds, bounds[1:])]


# ----- text checks -----


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


def normalize_for_cer(text: str) -> str:
    """Lowercase, punctuation removed, whitespace collapsed: what a transcript comparison should ignore."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(c).startswith(("P", "S")) else c for c in text)
    return re.sub(r"\s+", " ", text).strip()


def text_cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference`` after normalization (1.0 for an empty hypothesis)."""
    ref, hyp = normalize_for_cer(reference), normalize_for_cer(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    if not hyp:
        return 1.0
    import jiwer

    return float(jiwer.cer(ref, hyp))


__all__ = [
    "Piece",
    "TimedWord",
    "clean_text",
    "compression_ratio",
    "find_pauses",
    "frame_levels",
    "join_texts",
    "normalize_for_cer",
    "plan_clips",
    "plan_recut",
    "repetition_loop",
    "split_text",
    "text_cer",
]
