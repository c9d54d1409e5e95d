"""Evaluation metrics as pure functions: text normalization, WER/CER with S/D/I, corpus and mean
aggregates, bootstrap confidence intervals, paired differences and the failure flags users hit
after fine-tuning (cut-off ending, hallucinated tail, long trailing silence, clipping).

No model and no file I/O here, so every number in a report can be recomputed from results.csv.

Conventions (the ones seed-tts-eval and F5-TTS's eval scripts use):

- English is normalized with Whisper's ``EnglishTextNormalizer`` (numbers, abbreviations,
  British/American spellings); every other language with Whisper's ``BasicTextNormalizer``
  (lower case, punctuation and symbols removed). NFKC is applied first, so full-width letters,
  digits and punctuation (``ＡＢＣ１２３，``) become their half-width forms.
- Chinese, Japanese and Korean are scored on characters: whitespace is dropped and every
  character is one unit, so WER equals CER there and CER is the headline metric.
- Elsewhere CER is computed on the normalized text with single spaces between words (the
  spaces count as characters, as in ``jiwer.cer``).
- Corpus rate = total errors / total reference units; mean rate = average of per-utterance
  rates. They differ whenever sentences differ in length; both are reported.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

log = logging.getLogger(__name__)

# Languages scored on characters: scripts without spaces between words (Chinese, Japanese, Thai, Lao, Khmer,
# Burmese, Tibetan), and Korean, where CER is the convention. A language XTTS learns here is scored the same way.
CHAR_LANGUAGES = frozenset({"zh", "zh-cn", "zh-tw", "ja", "ko", "yue", "th", "lo", "km", "my", "bo"})

# Sentence-length buckets, in scoring units (words, or characters for CHAR_LANGUAGES).
WORD_BUCKETS = ((1, 8, "short (1-8 words)"), (9, 20, "medium (9-20 words)"), (21, 10**9, "long (21+ words)"))
CHAR_BUCKETS = ((1, 15, "short (1-15 chars)"), (16, 40, "medium (16-40 chars)"), (41, 10**9, "long (41+ chars)"))


# --------------------------------------------------------------------------- normalization


def base_language(language: str | None) -> str:
    """``"zh-cn"`` -> ``"zh"``, ``"en-US"`` -> ``"en"``; None/empty -> ``""``."""
    return (language or "").strip().lower().split("-")[0].split("_")[0]


def is_char_language(language: str | None) -> bool:
    """True for languages scored on characters (``CHAR_LANGUAGES``: zh, ja, ko, th ...)."""
    lang = (language or "").strip().lower()
    return lang in CHAR_LANGUAGES or base_language(lang) in CHAR_LANGUAGES


def headline_metric(language: str | None) -> str:
    """``"cer"`` for ``CHAR_LANGUAGES``, ``"wer"`` otherwise."""
    return "cer" if is_char_language(language) else "wer"


@functools.lru_cache(maxsize=1)
def _english_normalizer() -> Callable[[str], str]:
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


@functools.lru_cache(maxsize=1)
def _basic_normalizer() -> Callable[[str], str]:
    from whisper.normalizers import BasicTextNormalizer

    return BasicTextNormalizer()


def normalizer_name(language: str | None) -> str:
    """The name of the normalizer :func:`normalize` uses for ``language`` (recorded in reports)."""
    if base_language(language) == "en":
        return "whisper.EnglishTextNormalizer"
    if is_char_language(language):
        return "whisper.BasicTextNormalizer+characters"
    return "whisper.BasicTextNormalizer"


def normalize(text: str, language: str | None) -> str:
    """Normalize a reference or hypothesis for scoring.

    Args:
        text: raw text (any width, any punctuation).
        language: the sentence's language code (``"en"``, ``"zh-cn"``, ...).

    Returns:
        Lower-cased text without punctuation, words separated by single spaces; for zh/ja/ko
        the characters with no whitespace at all.
    """
    text = unicodedata.normalize("NFKC", text or "")
    if base_language(language) == "en":
        out = _english_normalizer()(text)
    else:
        out = _basic_normalizer()(text)
    if is_char_language(language):
        return re.sub(r"\s+", "", out)
    return re.sub(r"\s+", " ", out).strip()


def tokens(normalized: str, language: str | None) -> list[str]:
    """Scoring units of a normalized text: words, or characters for zh/ja/ko."""
    if is_char_language(language):
        return [c for c in normalized if not c.isspace()]
    return normalized.split()


# --------------------------------------------------------------------------- error rates


@dataclass(frozen=True)
class Chunk:
    """One piece of an alignment (jiwer's AlignmentChunk, made serialisable)."""

    type: str  # "equal" | "substitute" | "delete" | "insert"
    ref_start: int
    ref_end: int
    hyp_start: int
    hyp_end: int


@dataclass(frozen=True)
class ErrorCounts:
    """Edit-distance counts of a hypothesis against a reference, in one unit (words or chars)."""

    ref_len: int  # reference units (N)
    hits: int
    substitutions: int
    deletions: int
    insertions: int
    alignment: tuple[Chunk, ...] = field(default=(), compare=False)

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """(S + D + I) / N. An empty reference scores 0 against an empty hypothesis, else 1."""
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.ref_len


def _from_jiwer(out, ref_len: int) -> ErrorCounts:
    chunks = tuple(
        Chunk(c.type, c.ref_start_idx, c.ref_end_idx, c.hyp_start_idx, c.hyp_end_idx) for c in out.alignments[0]
    )
    return ErrorCounts(ref_len, out.hits, out.substitutions, out.deletions, out.insertions, chunks)


def error_counts(ref_tokens: Sequence[str], hyp_tokens: Sequence[str]) -> ErrorCounts:
    """Levenshtein alignment of two token lists via jiwer.

    Args:
        ref_tokens: reference units (words or characters).
        hyp_tokens: hypothesis units.

    Returns:
        Counts and the alignment.
    """
    import jiwer

    # jiwer splits on whitespace; tokens never contain whitespace (see tokens()).
    out = jiwer.process_words(" ".join(ref_tokens), " ".join(hyp_tokens))
    return _from_jiwer(out, len(ref_tokens))


def char_counts(ref_normalized: str, hyp_normalized: str) -> ErrorCounts:
    """Character-level counts on normalized text (spaces count as characters when present)."""
    import jiwer

    out = jiwer.process_characters(ref_normalized, hyp_normalized)
    return _from_jiwer(out, len(ref_normalized))


@dataclass(frozen=True)
class UtteranceScore:
    """Everything scored for one (reference, hypothesis) pair."""

    language: str
    normalizer: str
    ref_norm: str
    hyp_norm: str
    words: ErrorCounts  # word level (characters for zh/ja/ko)
    chars: ErrorCounts  # character level

    @property
    def wer(self) -> float:
        return self.words.rate

    @property
    def cer(self) -> float:
        return self.chars.rate

    @property
    def headline(self) -> str:
        return headline_metric(self.language)


def score(reference: str, hypothesis: str, language: str | None) -> UtteranceScore:
    """Normalize both texts and compute WER and CER with S/D/I counts.

    Args:
        reference: the sentence the TTS was asked to say.
        hypothesis: what the ASR heard (empty text scores WER 1.0: every word deleted).
        language: the sentence's language code.

    Returns:
        The scores, the normalized forms and the word-level alignment.
    """
    ref_norm = normalize(reference, language)
    hyp_norm = normalize(hypothesis, language)
    words = error_counts(tokens(ref_norm, language), tokens(hyp_norm, language))
    chars = char_counts(ref_norm, hyp_norm)
    return UtteranceScore(language or "", normalizer_name(language), ref_norm, hyp_norm, words, chars)


def corpus_rate(errors: Sequence[float], ref_lens: Sequence[float]) -> float:
    """Total errors / total reference units (NaN when there is nothing to score)."""
    total = float(np.sum(ref_lens))
    return float(np.sum(errors)) / total if total > 0 else float("nan")


def mean_rate(rates: Sequence[float]) -> float:
    """Average of per-utterance rates (NaN for none)."""
    return float(np.mean(rates)) if len(rates) else float("nan")


def length_bucket(ref_len: int, language: str | None) -> str:
    """The sentence-length bucket label for a reference of ``ref_len`` units."""
    buckets = CHAR_BUCKETS if is_char_language(language) else WORD_BUCKETS
    for low, high, label in buckets:
        if low <= ref_len <= high:
            return label
    return buckets[0][2] if ref_len < 1 else buckets[-1][2]


def alignment_html(ref_tokens: Sequence[str], hyp_tokens: Sequence[str], alignment: Sequence[Chunk]) -> str:
    """An HTML view of an alignment: REF and HYP rows, substitutions/deletions/insertions marked.

    Args:
        ref_tokens: reference units.
        hyp_tokens: hypothesis units.
        alignment: chunks from :func:`error_counts`.

    Returns:
        A ``<table class="align">`` fragment (styles: ``.eq .sub .del .ins``).
    """
    import html

    cells_ref: list[str] = []
    cells_hyp: list[str] = []
    for c in alignment:
        ref = list(ref_tokens[c.ref_start : c.ref_end])
        hyp = list(hyp_tokens[c.hyp_start : c.hyp_end])
        cls = {"equal": "eq", "substitute": "sub", "delete": "del", "insert": "ins"}[c.type]
        width = max(len(ref), len(hyp))
        ref += [""] * (width - len(ref))
        hyp += [""] * (width - len(hyp))
        for r, h in zip(ref, hyp):
            cells_ref.append(f'<td class="{cls}">{html.escape(r) or "&#8203;*"}</td>')
            cells_hyp.append(f'<td class="{cls}">{html.escape(h) or "&#8203;*"}</td>')
    if not cells_ref:
        return '<table class="align"><tr><th>REF</th><td>(empty)</td></tr></table>'
    return (
        '<table class="align"><tr><th>REF</th>'
        + "".join(cells_ref)
        + "</tr><tr><th>HYP</th>"
        + "".join(cells_hyp)
        + "</tr></table>"
    )


# --------------------------------------------------------------------------- failure flags


@dataclass(frozen=True)
class FlagThresholds:
    """When a failure flag is raised. Defaults are deliberately conservative."""

    cutoff_units: int = 2  # trailing deleted words (chars x2 for zh/ja/ko) = cut-off ending
    tail_units: int = 2  # trailing inserted words (chars x2 for zh/ja/ko) = hallucinated tail
    repeat_times: int = 3  # an n-gram said this many times in a row (more than the reference) = looping
    repeat_max_n: int = 5  # longest n-gram checked for repetition
    silence_seconds: float = 1.0  # trailing silence longer than this is flagged
    silence_db: float = -45.0  # frames quieter than this (dBFS) count as silence
    clip_fraction: float = 0.001  # share of samples at full scale above which audio is clipped


def trailing_run(alignment: Sequence[Chunk], kind: str) -> int:
    """Units in the alignment's last chunk when it is of ``kind`` (``"delete"``/``"insert"``), else 0."""
    if not alignment or alignment[-1].type != kind:
        return 0
    last = alignment[-1]
    return (last.ref_end - last.ref_start) if kind == "delete" else (last.hyp_end - last.hyp_start)


def max_consecutive_repeat(units: Sequence[str], max_n: int = 5) -> tuple[int, int]:
    """The n-gram repeated most times back to back (``a b a b a b`` -> (2, 3)).

    Args:
        units: tokens.
        max_n: longest n-gram considered.

    Returns:
        (n, repeats) of the worst repetition; (0, 1) when nothing repeats.
    """
    best = (0, 1)
    length = len(units)
    for n in range(1, max_n + 1):
        for start in range(0, length - 2 * n + 1):
            gram = units[start : start + n]
            count = 1
            pos = start + n
            while pos + n <= length and units[pos : pos + n] == gram:
                count += 1
                pos += n
            if count > best[1]:
                best = (n, count)
    return best


def trailing_silence_seconds(audio: np.ndarray, sr: int, threshold_db: float = -45.0, frame_s: float = 0.02) -> float:
    """Seconds of near-silence at the end of a clip.

    A frame is silent when its RMS is below ``threshold_db`` dBFS or 40 dB under the loudest frame
    (so quiet recordings are judged against themselves).
    """
    frame = max(1, int(sr * frame_s))
    n = len(audio) // frame
    if n == 0:
        return float(len(audio)) / sr
    frames = audio[: n * frame].astype(np.float64).reshape(n, frame)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    limit = max(threshold_db, float(db.max()) - 40.0)
    loud = np.nonzero(db >= limit)[0]
    if loud.size == 0:
        return float(len(audio)) / sr
    return float(len(audio) - (loud[-1] + 1) * frame) / sr


def clipped_fraction(audio: np.ndarray, level: float = 0.999) -> float:
    """Share of samples at (or beyond) full scale."""
    if audio.size == 0:
        return 0.0
    return float(np.mean(np.abs(audio) >= level))


@dataclass(frozen=True)
class Flags:
    """Failure flags for one utterance (each a bool, plus the measurement behind it)."""

    cut_off: bool
    hallucinated_tail: bool
    long_silence: bool
    clipping: bool
    trailing_deleted: int
    trailing_inserted: int
    repeat_ngram: int
    repeat_times: int
    trailing_silence_s: float
    clipped_fraction: float

    def names(self) -> list[str]:
        """The raised flags as short names (``cut_off``, ``hallucinated_tail``, ...)."""
        return [k for k in ("cut_off", "hallucinated_tail", "long_silence", "clipping") if getattr(self, k)]

    def as_dict(self) -> dict:
        return asdict(self)


def failure_flags(
    utt: UtteranceScore,
    audio: np.ndarray | None = None,
    sr: int | None = None,
    thresholds: FlagThresholds = FlagThresholds(),
) -> Flags:
    """Flag the failures users hit most after fine-tuning.

    Args:
        utt: the scored utterance (its word-level alignment is used).
        audio: the generated audio (None: audio flags are False).
        sr: its sample rate.
        thresholds: when each flag is raised.

    Returns:
        The flags and their measurements.
    """
    scale = 2 if is_char_language(utt.language) else 1
    deleted = trailing_run(utt.words.alignment, "delete")
    inserted = trailing_run(utt.words.alignment, "insert")
    hyp_units = tokens(utt.hyp_norm, utt.language)
    ref_units = tokens(utt.ref_norm, utt.language)
    rep_n, rep_times = max_consecutive_repeat(hyp_units, thresholds.repeat_max_n)
    _, ref_times = max_consecutive_repeat(ref_units, thresholds.repeat_max_n)
    looping = rep_times >= thresholds.repeat_times and rep_times > ref_times
    silence = 0.0
    clipped = 0.0
    if audio is not None and sr:
        silence = trailing_silence_seconds(audio, sr, thresholds.silence_db)
        clipped = clipped_fraction(audio)
    return Flags(
        cut_off=deleted >= thresholds.cutoff_units * scale,
        hallucinated_tail=inserted >= thresholds.tail_units * scale or looping,
        long_silence=silence > thresholds.silence_seconds,
        clipping=clipped > thresholds.clip_fraction,
        trailing_deleted=deleted,
        trailing_inserted=inserted,
        repeat_ngram=rep_n if looping else 0,
        repeat_times=rep_times if looping else 1,
        trailing_silence_s=round(silence, 3),
        clipped_fraction=clipped,
    )


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a bootstrap confidence interval."""

    value: float
    low: float
    high: float
    n: int  # sample size (utterances, sentences, ratings)

    def as_dict(self) -> dict:
        return {"value": _clean(self.value), "low": _clean(self.low), "high": _clean(self.high), "n": self.n}

    def fmt(self, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
        """``"12.34 [10.00, 14.50]"``-style text (``scale=100`` for percentages)."""
        if not math.isfinite(self.value):
            return "n/a"
        v, lo, hi = (x * scale for x in (self.value, self.low, self.high))
        return f"{v:.{digits}f}{unit} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _clean(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap(
    values: Sequence[float],
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Estimate:
    """Percentile bootstrap CI of a statistic over utterances.

    Args:
        values: one value per utterance (NaNs are dropped first).
        stat: the statistic, applied to an array (mean, median, a percentile, ...).
        n_boot: resamples.
        seed: makes the interval reproducible.
        confidence: coverage of the interval.

    Returns:
        The statistic on all values and its interval (NaN when there are no values).
    """
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    point = float(stat(arr))
    if arr.size == 1:
        return Estimate(point, point, point, 1)
    idx = _resample_indices(arr.size, n_boot, seed)
    stats = np.array([stat(arr[row]) for row in idx])
    alpha = (1.0 - confidence) / 2.0
    return Estimate(point, float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha)), int(arr.size))


def bootstrap_ratio(
    numerators: Sequence[float],
    denominators: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Estimate:
    """Bootstrap CI of a corpus-level ratio sum(num) / sum(den), resampling utterances as pairs."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.size == 0 or den.sum() <= 0:
        return Estimate(float("nan"), float("nan"), float("nan"), int(num.size))
    point = float(num.sum() / den.sum())
    if num.size == 1:
        return Estimate(point, point, point, 1)
    idx = _resample_indices(num.size, n_boot, seed)
    d = den[idx].sum(axis=1)
    stats = np.where(d > 0, num[idx].sum(axis=1) / np.where(d > 0, d, 1), np.nan)
    stats = stats[np.isfinite(stats)]
    alpha = (1.0 - confidence) / 2.0
    return Estimate(point, float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha)), int(num.size))


@dataclass(frozen=True)
class PairedDifference:
    """System A minus system B on the same sentences, with a bootstrap CI."""

    metric: str
    a: float
    b: float
    diff: Estimate  # a - b
    p_a_better: float  # share of resamples where A's error is lower (or SIM higher)
    n: int

    def as_dict(self) -> dict:
        return {
            "metric": self.metric,
            "a": _clean(self.a),
            "b": _clean(self.b),
            "diff": self.diff.as_dict(),
            "p_a_better": _clean(self.p_a_better),
            "n": self.n,
        }

    @property
    def significant(self) -> bool:
        """True when the 95% interval of the difference excludes zero."""
        return math.isfinite(self.diff.low) and (self.diff.low > 0 or self.diff.high < 0)


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    ref_lens: Sequence[float] | None = None,
    metric: str = "wer",
    higher_is_better: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedDifference:
    """Paired bootstrap of A - B over sentences both systems have.

    Args:
        a: per-sentence values of system A (errors when ``ref_lens`` is given, else rates/scores).
        b: the same sentences' values for system B, in the same order.
        ref_lens: per-sentence reference lengths: when given, the difference of corpus rates
            sum(a)/sum(len) - sum(b)/sum(len) is bootstrapped; otherwise the difference of means.
        metric: name recorded in the result.
        higher_is_better: True for SIM (then "A better" means A - B > 0).
        n_boot: resamples.
        seed: reproducibility.
        confidence: coverage of the interval.

    Returns:
        The difference with its CI and the share of resamples in which A is better.

    Raises:
        ValueError: ``a`` and ``b`` have different lengths.
    """
    av = np.asarray(a, dtype=np.float64)
    bv = np.asarray(b, dtype=np.float64)
    if av.shape != bv.shape:
        raise ValueError(f"paired_difference needs the same sentences for both systems ({av.size} vs {bv.size})")
    lens = None if ref_lens is None else np.asarray(ref_lens, dtype=np.float64)
    keep = np.isfinite(av) & np.isfinite(bv)
    av, bv = av[keep], bv[keep]
    if lens is not None:
        lens = lens[keep]
    n = int(av.size)
    nan = float("nan")
    if n == 0 or (lens is not None and lens.sum() <= 0):
        return PairedDifference(metric, nan, nan, Estimate(nan, nan, nan, 0), nan, 0)

    def stats(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if lens is None:
            return av[idx].mean(axis=-1), bv[idx].mean(axis=-1)
        total = lens[idx].sum(axis=-1)
        total = np.where(total > 0, total, np.nan)
        return av[idx].sum(axis=-1) / total, bv[idx].sum(axis=-1) / total

    point_a, point_b = (float(x) for x in stats(np.arange(n)))
    idx = _resample_indices(n, n_boot, seed)
    sa, sb = stats(idx)
    diffs = sa - sb
    diffs = diffs[np.isfinite(diffs)]
    alpha = (1.0 - confidence) / 2.0
    diff = Estimate(point_a - point_b, float(np.quantile(diffs, alpha)), float(np.quantile(diffs, 1 - alpha)), n)
    better = float(np.mean(diffs > 0)) if higher_is_better else float(np.mean(diffs < 0))
    return PairedDifference(metric, point_a, point_b, diff, better, n)


def percentile(q: float) -> Callable[[np.ndarray], float]:
    """A statistic for :func:`bootstrap`: the q-th percentile (0-100)."""

    def _stat(x: np.ndarray) -> float:
        return float(np.percentile(x, q))

    _stat.__name__ = f"p{q:g}"
    return _stat


def share_nonzero(x: np.ndarray) -> float:
    """A statistic for :func:`bootstrap`: share of values above zero (utterances with any error)."""
    return float(np.mean(x > 0))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (NaN when either is all zeros)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.dot(a, b) / (na * nb))


def text_cer(reference: str, hypothesis: str, language: str | None) -> float:
    """Character error rate of ``hypothesis`` against ``reference``, scored as the evaluation scores it.

    Both texts go through ``engines.scoring.metrics.normalize`` (Whisper's English normalizer for English, so
    "1455" and "fourteen fifty-five" are the same text; the basic normalizer elsewhere; characters
    for zh/ja/ko): one normalizer for datasets and evaluation.

    Returns:
        The CER (0.0 when both are empty after normalization, 1.0 for an empty hypothesis).
    """
    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    if not ref:
        return 0.0 if not hyp else 1.0
    if not hyp:
        return 1.0
    return float(char_counts(ref, hyp).rate)


__all__ = [
    "text_cer",
    "CHAR_LANGUAGES",
    "Chunk",
    "ErrorCounts",
    "Estimate",
    "FlagThresholds",
    "Flags",
    "PairedDifference",
    "UtteranceScore",
    "alignment_html",
    "base_language",
    "bootstrap",
    "bootstrap_ratio",
    "char_counts",
    "clipped_fraction",
    "corpus_rate",
    "cosine",
    "error_counts",
    "failure_flags",
    "headline_metric",
    "is_char_language",
    "length_bucket",
    "max_consecutive_repeat",
    "mean_rate",
    "normalize",
    "normalizer_name",
    "paired_difference",
    "percentile",
    "score",
    "share_nonzero",
    "tokens",
    "trailing_run",
    "trailing_silence_seconds",
]
