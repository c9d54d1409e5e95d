"""Speaker and quality screening without models: targets, decisions, cutting at speaker changes, reversibility."""

from __future__ import annotations

import numpy as np
import pytest

from engines.core.errors import InputError
from engines.datasets import DatasetOptions, check_options, screening
from engines.datasets.cutting import Span, plan_clips


def _voice(seed: int, n: int, spread: float = 0.3) -> list[np.ndarray]:
    """n unit vectors around one random direction (a 'speaker'), cosine to the centre ~0.9."""
    rng = np.random.default_rng(seed)
    centre = screening.unit(rng.standard_normal(64))
    return [screening.unit(centre + spread * rng.standard_normal(64) / 8) for _ in range(n)]


def _entries(voices: dict[str, list[np.ndarray]], duration: float = 4.0):
    entries, embs = {}, {}
    for who, vectors in voices.items():
        for i, v in enumerate(vectors):
            clip = f"{who}_{i:02d}.wav"
            entries[clip] = {"clip": clip, "speaker": "spk", "duration": duration, "text": "a b c", "cps": 12.0}
            embs[clip] = {"emb": list(v)}
    return entries, embs


def test_dominant_voice_is_the_target_and_others_are_dropped_with_reason_and_score() -> None:
    entries, embs = _entries({"main": _voice(1, 12), "guest": _voice(2, 5)})
    screening.score_against_targets(entries, embs, "dominant", screening.SIM_THRESHOLD, None)
    kept, dropped = screening.decide(entries, screening.Thresholds(), "en")
    assert set(kept) == {c for c in entries if c.startswith("main")}
    assert set(dropped) == {c for c in entries if c.startswith("guest")}
    for e in dropped.values():
        assert e["drop_reason"].startswith("other speaker (similarity ") and e["sim"] < screening.SIM_THRESHOLD


def test_a_main_voice_with_too_little_speech_flags_instead_of_dropping() -> None:
    # two short clips of one speaker folder that the encoder hears apart (robotic TTS does): no voice holds the
    # seconds to be the target, so neither is dropped; both calls are shown as flags with the score
    entries, embs = _entries({"a": _voice(1, 1), "b": _voice(2, 1)}, duration=2.5)
    screening.score_against_targets(entries, embs, "dominant", screening.SIM_THRESHOLD, None)
    kept, dropped = screening.decide(entries, screening.Thresholds(), "en")
    assert not dropped and set(kept) == set(entries)
    flagged = [e["screen"] for e in kept.values() if e["screen"]]
    assert len(flagged) == 1 and flagged[0][0].startswith("other speaker (similarity ")
    assert "speaker unclear" in flagged[0][0] and "2.5 s" in flagged[0][0]
    # with the seconds to establish the main voice, the same call is a drop
    entries, embs = _entries({"a": _voice(1, 4), "b": _voice(2, 1)}, duration=2.5)
    screening.score_against_targets(entries, embs, "dominant", screening.SIM_THRESHOLD, None)
    kept, dropped = screening.decide(entries, screening.Thresholds(), "en")
    assert list(dropped) == ["b_00.wav"] and dropped["b_00.wav"]["target_seconds"] == 10.0


def test_reference_voice_wins_over_the_dominant_one() -> None:
    main, guest = _voice(1, 12), _voice(2, 5)
    entries, embs = _entries({"main": main, "guest": guest})
    reference = screening.unit(np.mean(guest, axis=0))
    screening.score_against_targets(entries, embs, "reference", screening.SIM_THRESHOLD, reference)
    kept, _ = screening.decide(entries, screening.Thresholds(), "en")
    assert set(kept) == {c for c in entries if c.startswith("guest")}


def test_all_mode_names_each_cluster_and_keeps_both() -> None:
    entries, embs = _entries({"main": _voice(1, 12), "guest": _voice(2, 5)})
    screening.score_against_targets(entries, embs, "all", screening.SIM_THRESHOLD, None)
    kept, dropped = screening.decide(entries, screening.Thresholds(), "en")
    assert not dropped
    assert {e["speaker"] for c, e in kept.items() if c.startswith("main")} == {"spk"}
    assert {e["speaker"] for c, e in kept.items() if c.startswith("guest")} == {"spk-2"}


def test_halves_that_disagree_mark_a_turn_change_inside() -> None:
    main, guest = _voice(1, 12), _voice(2, 5)
    entries, embs = _entries({"main": main})
    embs["main_00.wav"]["emb_halves"] = [list(main[1]), list(guest[0])]
    screening.score_against_targets(entries, embs, "dominant", screening.SIM_THRESHOLD, None)
    _, dropped = screening.decide(entries, screening.Thresholds(), "en")
    assert list(dropped) == ["main_00.wav"] and dropped["main_00.wav"]["drop_reason"].startswith("speaker change")


def test_quality_thresholds_drop_or_flag_per_choice_and_the_user_decision_stands() -> None:
    entries = {
        "clean.wav": {"duration": 4.0, "sim": 0.9, "dnsmos": {"sig": 3.4, "bak": 4.1, "ovrl": 3.1}, "cps": 12.0},
        "noisy.wav": {"duration": 4.0, "sim": 0.9, "dnsmos": {"sig": 3.4, "bak": 2.4, "ovrl": 2.3}, "cps": 12.0},
        "fast.wav": {"duration": 4.0, "sim": 0.9, "dnsmos": {"sig": 3.4, "bak": 4.1, "ovrl": 3.1}, "cps": 30.0},
        "de.wav": {"duration": 4.0, "sim": 0.9, "dnsmos": {"sig": 3.4, "bak": 4.1, "ovrl": 3.1}, "cps": 12.0},
        **{f"x{i}.wav": {"duration": 4.0, "sim": 0.9, "cps": 12.0 + i / 10} for i in range(4)},
    }
    entries["de.wav"]["heard_language"] = "de"
    kept, dropped = screening.decide(entries, screening.Thresholds(), "en")
    assert set(dropped) == {"noisy.wav", "fast.wav", "de.wav"}
    assert f"BAK 2.40 < {screening.MIN_BAK:g}" in dropped["noisy.wav"]["drop_reason"]
    assert dropped["fast.wav"]["drop_reason"].startswith("speaking rate 30.0")
    assert dropped["de.wav"]["drop_reason"].startswith("language")
    kept, dropped = screening.decide(entries, screening.Thresholds(quality_action="flag"), "en")
    assert not dropped and kept["noisy.wav"]["screen"] and not kept["clean.wav"]["screen"]
    entries["noisy.wav"]["decision"] = "keep"  # restored by hand: no threshold drops it again
    kept, dropped = screening.decide(entries, screening.Thresholds(), "en")
    assert "noisy.wav" in kept and not kept["noisy.wav"]["screen"]
    seconds = screening.seconds_by_outcome(kept, dropped)
    assert seconds["kept"] == 24.0 and seconds["quality_dropped"] == 8.0 and seconds["other_speaker"] == 0.0


def test_dnsmos_on_a_short_clip_only_flags() -> None:
    # DNSMOS tiles clips under 3.5 s to its 9 s window: clean short speech scores low there (LJ001-0002, 1.9 s:
    # BAK 3.08), so its DNSMOS calls are flags; the speaking rate and language still drop
    noisy = {"sig": 3.4, "bak": 2.4, "ovrl": 2.3}
    entries = {
        "short.wav": {"duration": 1.9, "sim": 0.9, "dnsmos": dict(noisy), "cps": 12.0},
        "long.wav": {"duration": 4.0, "sim": 0.9, "dnsmos": dict(noisy), "cps": 12.0},
        "short-de.wav": {"duration": 1.9, "sim": 0.9, "dnsmos": dict(noisy), "cps": 12.0, "heard_language": "de"},
    }
    kept, dropped = screening.decide(entries, screening.Thresholds(), "en")
    assert set(dropped) == {"long.wav", "short-de.wav"} and "language" in dropped["short-de.wav"]["drop_reason"]
    assert kept["short.wav"]["screen"] and "DNSMOS is unreliable" in kept["short.wav"]["screen"][0]
    assert "BAK 2.40" in kept["short.wav"]["screen"][0]
    kept, dropped = screening.decide(entries, screening.Thresholds(dnsmos_min_seconds=0.0), "en")
    assert set(dropped) == set(entries)


def test_cutting_ends_a_clip_at_a_speaker_change_even_at_a_short_pause() -> None:
    spans = [Span(0.2, 2.0), Span(2.3, 4.0), Span(4.2, 6.0)]  # 0.3 s / 0.2 s pauses: normally one clip
    assert len(plan_clips(spans, 6.5)) == 1
    pieces = plan_clips(spans, 6.5, breaks=[2.15])
    assert [(round(p.speech_start, 1), round(p.speech_end, 1)) for p in pieces] == [(0.2, 2.0), (2.3, 6.0)]
    assert pieces[0].end <= 2.15 <= pieces[1].start


def test_options_guard_names_what_is_allowed() -> None:
    with pytest.raises(InputError, match="dominant, reference, all"):
        check_options(DatasetOptions(target="loudest"))
    with pytest.raises(InputError, match="reference clips"):
        check_options(DatasetOptions(target="reference"))
    with pytest.raises(InputError, match="'drop' or 'flag'"):
        check_options(DatasetOptions(quality_action="delete"))
    with pytest.raises(InputError, match="DNSMOS BAK"):
        check_options(DatasetOptions(min_bak=7.0))
