"""Where to cut long recordings into training clips, and text checks on the clips.

Cuts go only where the audio pauses: ``speech_spans`` asks the voice-activity detector
(``engines.asr.engine.vad``, level-independent) where the speech is, and ``plan_clips`` groups those spans
into clips, cutting only in the gaps between them. Whisper's segment edges are contiguous and its
word times can be zero-length or seconds long, so neither decides a cut here; each planned clip is
transcribed on its own afterwards (``engines.datasets``), so its text is what its audio says.

Apart from ``speech_spans`` (which runs the VAD) these are pure functions over time spans, texts and
sample arrays, testable without a model. Nothing here touches files.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engines.core.audio import frame_levels

log = logging.getLogger(__name__)

MAX_MERGE_GAP = 1.0  # seconds: never merge two segments across a longer pause (silence inside a clip)
SHORT_PAUSE = 0.3  # seconds: a gap shorter than this is a pause inside a sentence (commas, breaths)
SHORT_PAUSE_COST = 1.5  # cutting at a short pause costs more than one extra clip: only when nothing else fits
SENTENCE_PAUSE = 0.6  # seconds: a gap this long almost always ends a sentence; shorter ones cost a little
TOO_SHORT_COST = 3.0  # a planned clip under min_clip is dropped later: merge it with a neighbour when possible
WORD_SPAN = (0.02, 2.0)  # seconds: Whisper word times outside this are alignment failures, never cut beside them
PUNCT_BONUS = 0.15  # seconds added to a pause after a comma etc. when choosing where to split
SENTENCE_BONUS = 0.3  # ... and after a full stop, question or exclamation mark

_SENTENCE_END = re.compile(r"[.!?。！？…]['\"”’)\]]*$")
_CLAUSE_END = re.compile(r"[,;:、，；：—-]['\"”’)\]]*$")


@dataclass
class TimedWord:
    """A word with its time span in the recording (seconds)."""

    start: float
    end: float
    text: str  # with Whisper's leading space

    @property
    def plausible(self) -> bool:
        """Whisper's alignment gives zero-length and multi-second "words" when it fails: not evidence."""
        return WORD_SPAN[0] <= self.end - self.start <= WORD_SPAN[1]


@dataclass(frozen=True)
class Span:
    """A stretch of speech in a recording (seconds), e.g. a VAD region."""

    start: float
    end: float


@dataclass
class Piece:
    """A planned clip: [start, end) in the recording, with the words it holds."""

    start: float  # seconds, padding included
    end: float
    text: str  # "" for spans without text (VAD regions): the caller transcribes the clip
    speech_start: float  # first span (or word) start, before padding
    speech_end: float
    words: list[TimedWord] = field(default_factory=list)
    fits: bool = True  # False: speech longer than max_clip with no pause to cut at (drop it, never ship it)

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
        raw = getattr(seg, "text", None)
        text = clean_text(raw or "")
        if raw is not None and not text:  # a Whisper segment without words; spans have no text attribute
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
    """Split a word run at its biggest pauses (a bonus after punctuation) until each part fits.

    Only a gap between two plausibly timed words (``WORD_SPAN``) is a candidate: next to a zero-length
    or multi-second "word" nobody knows where the audio of either word is. No candidate: the run stays
    whole (too long; the caller drops it).
    """
    if len(words) < 2 or words[-1].end - words[0].start <= max_span:
        return [words]
    best_k, best_score, best_both = None, -1.0, False
    for k in range(1, len(words)):
        if not (words[k - 1].plausible and words[k].plausible):
            continue
        gap = words[k].start - words[k - 1].end
        prev = words[k - 1].text.strip()
        score = gap + (SENTENCE_BONUS if _SENTENCE_END.search(prev) else PUNCT_BONUS if _CLAUSE_END.search(prev) else 0)
        both = (words[k - 1].end - words[0].start >= min_clip) and (words[-1].end - words[k].start >= min_clip)
        # a cut that leaves both sides long enough beats a bigger pause that leaves a crumb
        if best_k is None or (both, score) > (best_both, best_score):
            best_k, best_score, best_both = k, score, both
    if best_k is None:
        return [words]
    return _split_words(words[:best_k], max_span, min_clip) + _split_words(words[best_k:], max_span, min_clip)


def _cut_cost(gap: float) -> float:
    """What a cut at a pause of ``gap`` seconds costs, in clips: long pauses (sentence ends) are free."""
    if gap < SHORT_PAUSE:
        return SHORT_PAUSE_COST
    # falls from SHORT_PAUSE_COST at 0.3 s to nothing at 0.6 s: a 0.45 s pause is cut when that saves
    # a clip, a 0.35 s one hardly ever; the last term breaks ties toward longer pauses
    slope = SHORT_PAUSE_COST / (SENTENCE_PAUSE - SHORT_PAUSE)
    return slope * max(0.0, SENTENCE_PAUSE - gap) - 0.05 * min(gap, 1.0)


def plan_clips(
    segments: Sequence,
    audio_seconds: float,
    *,
    min_clip: float = 1.0,
    max_clip: float = 11.0,
    pad: float = 0.15,
    language: str | None = None,
    breaks: Sequence[float] = (),
) -> list[Piece]:
    """Plan clips from stretches of speech: group adjacent ones into clips, cutting only in the gaps.

    The input spans are the speech (VAD regions from ``speech_spans``, or Whisper segments); every cut
    falls in a gap between two of them, never inside one. Groups are chosen for the fewest clips, each
    within ``max_clip`` with its padding, never across a pause over ``MAX_MERGE_GAP``, preferring cuts at
    long pauses: one under ``SHORT_PAUSE`` (inside a sentence) is taken only when no cut at a longer
    pause fits, one under ``SENTENCE_PAUSE`` at a cost that falls with its length (``_cut_cost``), and a
    clip under ``min_clip`` only when it cannot join a neighbour. A span with words (Whisper) longer
    than ``max_clip`` is split between plausibly timed words at the biggest pause; any other span that
    long stays whole with ``fits=False``. Each clip gets ``pad`` seconds of context on both sides (less
    when that is what keeps it within ``max_clip``), never past the middle of the gap to its neighbour.
    Clips are not filtered here: the caller drops the too short / too long ones with a reason.

    Args:
        segments: objects with ``start`` and ``end`` (seconds), optional ``text`` and optional ``words``
            (``start``, ``end``, ``word``). A segment whose ``text`` is empty is ignored.
        audio_seconds: length of the recording.
        min_clip: shortest clip wanted.
        max_clip: longest clip allowed, padding included.
        pad: seconds of context added before and after the speech.
        language: XTTS language code (Chinese/Japanese texts are joined without spaces).
        breaks: times (seconds, in gaps) where the speaker changes: no clip holds one (a clip ends there).

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
    if not units:
        return []

    n = len(units)
    gaps = [units[i + 1].start - units[i].end for i in range(n - 1)]
    # a gap holding a speaker change must be cut: as binding as a pause over MAX_MERGE_GAP
    forced = [any(units[i].end - 1e-6 <= t <= units[i + 1].start + 1e-6 for t in breaks) for i in range(n - 1)]

    def cost(i: int, j: int) -> float | None:
        """Cost of one clip holding units i..j (None: not allowed)."""
        span = units[j].end - units[i].start
        if i < j and (span > max_span or any(g > MAX_MERGE_GAP for g in gaps[i:j]) or any(forced[i:j])):
            return None
        value = 1.0
        if j < n - 1 and not forced[j]:  # the cut after this clip (free at a speaker change)
            value += _cut_cost(gaps[j])
        if span + 2 * pad < min_clip:
            value += TOO_SHORT_COST
        return value

    # best[j]: cheapest plan for units[:j]; a clip ends at every j, so every unit is in exactly one clip
    best = [0.0] + [float("inf")] * n
    back = [0] * (n + 1)
    for j in range(n):
        for i in range(j, -1, -1):
            c = cost(i, j)
            if c is None:
                if units[j].end - units[i].start > max_span:
                    break  # longer groups only get longer
                continue
            if best[i] + c < best[j + 1] - 1e-9:
                best[j + 1], back[j + 1] = best[i] + c, i
    groups: list[tuple[int, int]] = []
    j = n
    while j > 0:
        groups.append((back[j], j - 1))
        j = back[j]
    groups.reverse()

    pieces: list[Piece] = []
    for k, (i, j) in enumerate(groups):
        first, last = units[i], units[j]
        span = last.end - first.start
        words = [w for u in units[i : j + 1] for w in u.words]
        text = join_texts([u.text for u in units[i : j + 1]], language)
        room = max(0.0, min(pad, (max_clip - span) / 2))  # a span that barely fits gets less padding
        lo = 0.0 if k == 0 else (units[groups[k - 1][1]].end + first.start) / 2
        hi = audio_seconds if k == len(groups) - 1 else (last.end + units[groups[k + 1][0]].start) / 2
        start = max(lo, first.start - room, 0.0)
        end = min(hi, last.end + room, audio_seconds)
        pieces.append(Piece(start, end, text, first.start, last.end, words, fits=span <= max_clip))
    return pieces


# ----- where the speech is (voice-activity detection) -----

CUT_VAD_SILENCE_MS = 150  # a VAD gap this long is a pause a clip may end in
CUT_VAD_PAD_MS = 30  # Silero trims word edges tightly: keep a little around each region
FINE_VAD_SILENCE_MS = 60  # second look inside a stretch too long for one clip: shorter pauses count


def speech_spans(audio_16k: np.ndarray, max_span: float, sr: int = 16000) -> list[Span]:
    """Where the speech is, as spans whose gaps are real pauses (voice-activity detection).

    Silero VAD (``engines.asr.engine.vad``) judges each window by what it sounds like, whatever the level, so a
    quiet recording is not "silence" and a noisy pause is not "speech". A span longer than
    ``max_span`` gets a second, finer look for the shorter pauses inside it (a breath, a comma); what
    is still too long has no pause to cut at.

    Args:
        audio_16k: mono samples at 16 kHz (any level).
        max_span: the longest speech a clip can hold (seconds).
        sr: the sample rate of ``audio_16k`` (the VAD's 16 kHz).

    Returns:
        The spans in time order (empty when there is no speech).
    """
    from engines.asr.vad import VadOptions, speech_regions

    coarse = speech_regions(audio_16k, VadOptions(min_silence_ms=CUT_VAD_SILENCE_MS, pad_ms=CUT_VAD_PAD_MS))
    spans: list[Span] = []
    for region in coarse:
        if region.duration <= max_span:
            spans.append(Span(region.start, region.end))
            continue
        a, b = int(region.start * sr), int(region.end * sr)
        fine = speech_regions(audio_16k[a:b], VadOptions(min_silence_ms=FINE_VAD_SILENCE_MS, pad_ms=10))
        parts = [Span(region.start + r.start, region.start + r.end) for r in fine]
        spans.extend(parts if len(parts) > 1 else [Span(region.start, region.end)])
    return spans


# ----- pauses in plain audio (re-cutting a clip without word timings) -----


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


__all__ = [
    "Piece",
    "Span",
    "TimedWord",
    "clean_text",
    "find_pauses",
    "join_texts",
    "plan_clips",
    "plan_recut",
    "speech_spans",
    "split_text",
]
