"""Where clips are cut (engines.datasets.cutting): pauses only, implausible word times ignored, one normalizer."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from engines.datasets.cutting import Span, plan_clips, speech_spans
from engines.scoring.metrics import text_cer


def word(start: float, end: float, text: str) -> SimpleNamespace:
    return SimpleNamespace(start=start, end=end, word=text)


def test_cuts_only_in_gaps_and_prefer_long_pauses() -> None:
    # three 4-s stretches, too long for one clip: the 0.15 s gap is a pause inside a sentence, the 0.6 s
    # one ends a sentence; either cut gives two clips, the sentence end wins
    spans = [Span(0.3, 4.3), Span(4.45, 8.45), Span(9.05, 13.05)]
    pieces = plan_clips(spans, 13.5, min_clip=1.0, max_clip=11.0, pad=0.15)
    assert [(p.speech_start, p.speech_end) for p in pieces] == [(0.3, 8.45), (9.05, 13.05)]
    assert all(p.text == "" and p.fits for p in pieces)
    for p in pieces:  # padding stays in the pause, never past its middle
        assert p.duration <= 11.0
        assert not any(s.start < p.start < s.end or s.start < p.end < s.end for s in spans)
    assert pieces[0].end <= (8.45 + 9.05) / 2 <= pieces[1].start


def test_short_pause_cut_only_when_nothing_else_fits() -> None:
    # 7 s + 6 s with a 0.2 s pause between: too long together, so the short pause is the cut
    spans = [Span(0.2, 7.2), Span(7.4, 13.4)]
    pieces = plan_clips(spans, 14.0, min_clip=1.0, max_clip=11.0, pad=0.15)
    assert len(pieces) == 2 and pieces[0].end == pytest.approx(7.3) == pieces[1].start
    # a long stretch with no gap at all is never cut inside: one piece, marked as not fitting
    (piece,) = plan_clips([Span(0.5, 14.5)], 15.0, min_clip=1.0, max_clip=11.0, pad=0.15)
    assert not piece.fits and (piece.speech_start, piece.speech_end) == (0.5, 14.5)
    # a stretch that fits only without its full padding keeps what padding fits
    (piece,) = plan_clips([Span(1.0, 11.9)], 13.0, min_clip=1.0, max_clip=11.0, pad=0.15)
    assert piece.fits and piece.duration == pytest.approx(11.0)


def test_a_crumb_joins_its_neighbour() -> None:
    # a 0.4 s "yes" after a 0.5 s pause: merged into the clip before rather than left too short
    spans = [Span(0.3, 5.3), Span(5.8, 6.2), Span(7.5, 12.0)]
    pieces = plan_clips(spans, 12.5, min_clip=1.0, max_clip=11.0, pad=0.15)
    assert [(p.speech_start, p.speech_end) for p in pieces] == [(0.3, 6.2), (7.5, 12.0)]


def test_implausible_word_times_never_decide_a_cut() -> None:
    # the widest gap (1.2 s) sits between a zero-length and a 3-second "word" (alignment failures): the
    # split goes to the best gap between two plausibly timed words, after the sentence
    words = [word(i * 0.9, i * 0.9 + 0.7, f" w{i}") for i in range(5)]  # 0.0 - 4.3
    words += [word(4.5, 4.5, " zero"), word(5.7, 8.7, " long"), word(8.9, 9.6, " v0"), word(9.8, 10.5, " after.")]
    words += [word(11.0, 11.7, " v2"), word(11.9, 12.6, " v3"), word(12.8, 13.5, " v4")]
    seg = SimpleNamespace(start=0.0, end=13.5, text="".join(w.word for w in words), words=words)
    pieces = plan_clips([seg], 14.0, min_clip=1.0, max_clip=11.0, pad=0.15)
    assert [p.words[-1].text for p in pieces] == [" after.", " v4"]
    assert all(p.fits and p.duration <= 11.0 for p in pieces)
    # nothing plausible to cut between: the run stays whole and is marked as not fitting
    bad = [word(0.0, 0.0, " a"), word(0.0, 6.0, " b"), word(6.0, 6.0, " c"), word(6.0, 13.0, " d")]
    (piece,) = plan_clips([SimpleNamespace(start=0.0, end=13.0, text="a b c d", words=bad)], 14.0, max_clip=11.0)
    assert not piece.fits


def test_text_cer_uses_the_metrics_normalizer() -> None:
    assert (
        text_cer(
            'Gutenberg, or "forty-two line Bible" of about 1455,',
            "Gutenberg or 42-line Bible of about fourteen fifty-five.",
            "en",
        )
        == 0.0
    )
    assert text_cer("The harbour at dusk.", "the harbor at dusk", "en") == 0.0
    assert text_cer("Guten Morgen!", "guten morgen", "de") == 0.0
    assert text_cer("abc", "", "en") == 1.0 and text_cer("", "", "en") == 0.0
    assert 0.15 < text_cer("He read each letter twice.", "He read each ladder thrice.", "en") < 0.3


def test_speech_spans_find_pauses_at_any_level(speak) -> None:
    from engines.core.audio import load_audio, resample

    a, sr = load_audio(speak("The quick brown fox jumps over the lazy dog.", "en", name="span-a"))
    b, _ = load_audio(speak("Printing differs from most arts and crafts.", "en", name="span-b"))
    gap = np.zeros(int(0.7 * sr), np.float32)
    audio = resample(np.concatenate([gap, a, gap, b, gap]), sr, 16000)
    loud = speech_spans(audio, max_span=10.7)
    quiet = speech_spans(audio * 10 ** (-40 / 20), max_span=10.7)  # 40 dB quieter: same speech
    assert len(loud) >= 2 and len(quiet) == len(loud)
    edge = 0.7 + len(a) / sr  # where the inserted pause starts (seconds)
    assert any(s.end <= edge + 0.1 and t.start >= edge + 0.5 for s, t in zip(loud, loud[1:]))
    for s, q in zip(loud, quiet):
        assert q.start == pytest.approx(s.start, abs=0.1) and q.end == pytest.approx(s.end, abs=0.1)
    assert speech_spans(np.zeros(16000 * 2, np.float32), max_span=10.7) == []
