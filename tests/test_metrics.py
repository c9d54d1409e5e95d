"""Metric functions against hand-computed cases and against jiwer called independently."""

from __future__ import annotations

import jiwer
import numpy as np
import pytest

from engines.scoring import metrics
from engines.scoring.metrics import (
    bootstrap,
    bootstrap_ratio,
    corpus_rate,
    failure_flags,
    length_bucket,
    max_consecutive_repeat,
    mean_rate,
    normalize,
    normalizer_name,
    paired_difference,
    score,
    trailing_silence_seconds,
)

# ---------------------------------------------------------------- WER / CER


def test_wer_hand_computed_counts():
    # "bravo" -> "brave" is a substitution, "echo" is deleted, "india" is inserted: (1 + 1 + 1) / 8.
    s = score(
        "Alpha, bravo, Charlie, delta, echo, foxtrot, golf, hotel.",
        "alpha brave charlie delta foxtrot golf hotel india",
        "en",
    )
    assert (s.words.substitutions, s.words.deletions, s.words.insertions) == (1, 1, 1)
    assert s.words.ref_len == 8 and s.words.hits == 6
    assert s.wer == pytest.approx(3 / 8)
    assert s.wer == pytest.approx(
        jiwer.wer(
            "alpha bravo charlie delta echo foxtrot golf hotel", "alpha brave charlie delta foxtrot golf hotel india"
        )
    )


def test_empty_hypothesis_is_wer_one_with_all_deletions():
    s = score("Printing differs from most arts.", "", "en")
    assert s.wer == 1.0 and s.cer == 1.0
    assert s.words.deletions == 5 and s.words.substitutions == 0 and s.words.insertions == 0
    assert s.hyp_norm == ""


def test_corpus_and_mean_differ_on_a_crafted_case():
    refs = ["hello", "the quick brown fox jumps over a lazy dog"]
    hyps = ["goodbye", "the quick brown fox jumps over a lazy dog"]
    scores = [score(r, h, "en") for r, h in zip(refs, hyps)]
    corpus = corpus_rate([s.words.errors for s in scores], [s.words.ref_len for s in scores])
    mean = mean_rate([s.wer for s in scores])
    assert corpus == pytest.approx(1 / 10)  # 1 error in 10 reference words
    assert mean == pytest.approx((1.0 + 0.0) / 2)  # a 1-word sentence weighs as much as a 9-word one
    assert corpus == pytest.approx(jiwer.wer(refs, hyps))  # jiwer on lists is corpus-level
    assert mean == pytest.approx(np.mean([jiwer.wer(r, h) for r, h in zip(refs, hyps)]))


@pytest.mark.parametrize(
    ("ref", "hyp"),
    [
        ("the quick brown fox", "the quack brown fox jumps"),
        ("a b c d e f", "a c d x f"),
        ("printing in the only sense", "printing only the sense"),
        ("red green", "blue yellow pink black"),
    ],
)
def test_word_and_char_counts_match_jiwer(ref, hyp):
    s = score(ref, hyp, "en")
    out = jiwer.process_words(ref, hyp)
    assert (s.words.hits, s.words.substitutions, s.words.deletions, s.words.insertions) == (
        out.hits,
        out.substitutions,
        out.deletions,
        out.insertions,
    )
    assert s.wer == pytest.approx(out.wer)
    assert s.cer == pytest.approx(jiwer.cer(ref, hyp))


def test_zh_is_scored_on_characters():
    ref = "今天天气很好，我们去公园散步吧。"
    hyp = "今天天气好，我们去公园散步。"
    s = score(ref, hyp, "zh-cn")
    assert s.ref_norm == "今天天气很好我们去公园散步吧"  # punctuation and spaces gone
    assert s.words.ref_len == len(s.ref_norm) == 14
    assert s.chars.deletions == 2 and s.cer == pytest.approx(2 / 14)
    assert s.wer == s.cer  # the unit is the character
    assert s.cer == pytest.approx(jiwer.cer("今天天气很好我们去公园散步吧", "今天天气好我们去公园散步"))
    assert metrics.headline_metric("zh-cn") == "cer" and metrics.headline_metric("en") == "wer"
    assert normalizer_name("zh-cn").endswith("characters") and normalizer_name("ja").endswith("characters")


def test_full_width_and_punctuation_are_normalized():
    assert normalize("ＡＢＣ，１２３！", "ru") == "abc 123"
    assert normalize("你好ＡＢＣ！", "zh-cn") == "你好abc"
    assert score("你好ＡＢＣ！", "你好abc", "zh-cn").cer == 0.0
    assert score("Ｈｅｌｌｏ，ｗｏｒｌｄ！", "hello world", "en").wer == 0.0
    assert score("Привет, мир! Как дела?", "привет мир как дела", "ru").wer == 0.0
    assert score("«Bonjour», dit-il.", "bonjour dit il", "fr").wer == 0.0


def test_english_normalizer_handles_numbers_and_abbreviations():
    # Whisper's English normalizer writes spoken numbers as digits (and joins runs of them).
    assert normalize("one, two, three", "en") == normalize("123", "en") == "123"
    s = score("Mr. Smith paid $20 on Jan. 5th.", "mister smith paid twenty dollars on jan fifth", "en")
    assert s.wer == 0.0, (s.ref_norm, s.hyp_norm)
    assert normalizer_name("en") == "whisper.EnglishTextNormalizer"
    assert score("Dr. Lee arrived at 10 o'clock.", "doctor lee arrived at ten o'clock", "en").wer == 0.0
    # The basic normalizer (other languages) leaves numbers alone: a digit and a word differ.
    assert score("20 euros", "twenty euros", "de").wer == pytest.approx(0.5)
    assert normalizer_name("de") == "whisper.BasicTextNormalizer"


def test_length_buckets():
    assert length_bucket(3, "en").startswith("short")
    assert length_bucket(12, "en").startswith("medium")
    assert length_bucket(30, "en").startswith("long")
    assert length_bucket(12, "zh-cn").startswith("short") and length_bucket(50, "zh-cn").startswith("long")


# ---------------------------------------------------------------- statistics


def test_bootstrap_contains_point_and_is_deterministic():
    rng = np.random.default_rng(7)
    values = rng.exponential(0.2, size=40)
    a = bootstrap(values, np.mean, n_boot=500, seed=3)
    b = bootstrap(values, np.mean, n_boot=500, seed=3)
    c = bootstrap(values, np.mean, n_boot=500, seed=4)
    assert a == b  # same seed, same interval
    assert (a.low, a.high) != (c.low, c.high)  # the seed matters
    assert a.low <= a.value <= a.high and a.value == pytest.approx(values.mean())
    assert a.high - a.low > 0 and a.n == 40
    med = bootstrap(values, np.median, n_boot=500, seed=3)
    assert med.low <= med.value <= med.high


def test_bootstrap_ratio_is_corpus_rate_with_ci():
    errors, lens = [1, 0, 3, 2, 0, 1], [5, 8, 10, 4, 6, 7]
    est = bootstrap_ratio(errors, lens, n_boot=500, seed=1)
    assert est.value == pytest.approx(sum(errors) / sum(lens))
    assert est.low <= est.value <= est.high
    assert est == bootstrap_ratio(errors, lens, n_boot=500, seed=1)


def test_bootstrap_edge_cases():
    assert bootstrap([], np.mean).n == 0 and np.isnan(bootstrap([], np.mean).value)
    one = bootstrap([0.3], np.mean)
    assert (one.value, one.low, one.high) == (0.3, 0.3, 0.3)
    assert bootstrap([0.1, float("nan"), 0.3], np.mean, n_boot=200).n == 2  # NaNs dropped


def test_paired_difference_detects_a_consistent_gap():
    lens = [6, 8, 5, 9, 7, 10, 4, 6]
    a = [2, 3, 2, 4, 3, 3, 2, 2]  # system A makes more errors on every sentence
    b = [0, 1, 0, 1, 1, 0, 1, 0]
    d = paired_difference(a, b, lens, "wer", n_boot=500, seed=0)
    assert d.a == pytest.approx(sum(a) / sum(lens)) and d.b == pytest.approx(sum(b) / sum(lens))
    assert d.diff.value == pytest.approx(d.a - d.b)
    assert d.diff.low > 0 and d.significant and d.p_a_better == 0.0
    same = paired_difference(a, a, lens, n_boot=200, seed=0)
    assert (same.diff.value, same.diff.low, same.diff.high) == (0.0, 0.0, 0.0) and not same.significant
    sims = paired_difference([0.9, 0.8, 0.85], [0.7, 0.6, 0.72], None, "sim", higher_is_better=True, n_boot=200)
    assert sims.diff.value > 0 and sims.p_a_better == 1.0
    with pytest.raises(ValueError, match="same sentences"):
        paired_difference([1, 2], [1], None)


# ---------------------------------------------------------------- failure flags


def test_cut_off_ending_flag():
    s = score("the quick brown fox jumps over the lazy dog", "the quick brown fox jumps over", "en")
    f = failure_flags(s)
    assert f.cut_off and f.trailing_deleted == 3 and not f.hallucinated_tail
    # One word lost mid-sentence is not a cut-off ending.
    assert not failure_flags(score("the quick brown fox jumps", "the brown fox jumps", "en")).cut_off


def test_hallucinated_tail_flags():
    tail = failure_flags(score("hello there my friend", "hello there my friend and then some more", "en"))
    assert tail.hallucinated_tail and tail.trailing_inserted == 4
    loop = failure_flags(score("i said yes", "i said yes yes yes yes", "en"))
    assert loop.hallucinated_tail and loop.repeat_times >= 3
    assert max_consecutive_repeat("a b a b a b c".split()) == (2, 3)
    # Repetition the reference itself has is not a hallucination.
    echo = failure_flags(score("no no no no", "no no no no", "en"))
    assert not echo.hallucinated_tail and not echo.cut_off
    assert failure_flags(score("all good here", "all good here", "en")).names() == []


def test_audio_flags_silence_and_clipping():
    sr = 16000
    t = np.arange(sr) / sr
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    padded = np.concatenate([tone, np.zeros(int(1.5 * sr), np.float32)])
    assert trailing_silence_seconds(padded, sr) == pytest.approx(1.5, abs=0.03)
    assert trailing_silence_seconds(tone, sr) < 0.05
    clean = score("a b c", "a b c", "en")
    assert failure_flags(clean, padded, sr).long_silence
    assert not failure_flags(clean, tone, sr).long_silence
    square = np.sign(np.sin(2 * np.pi * 220 * t)).astype(np.float32)  # hard-clipped at full scale
    assert failure_flags(clean, square, sr).clipping
    assert not failure_flags(clean, tone, sr).clipping


def test_cosine():
    assert metrics.cosine(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == pytest.approx(1.0)
    assert metrics.cosine(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == pytest.approx(0.0)
    assert np.isnan(metrics.cosine(np.zeros(3), np.ones(3)))


def test_scripts_without_spaces_are_scored_on_characters():
    from engines.scoring import metrics as m

    for code in ("th", "lo", "km", "my", "zh-cn", "ja"):
        assert m.headline_metric(code) == "cer", code
    for code in ("vi", "uk", "ka", "en"):
        assert m.headline_metric(code) == "wer", code
    assert m.tokens(m.normalize("สวัสดีครับ", "th"), "th") == list(m.normalize("สวัสดีครับ", "th"))
