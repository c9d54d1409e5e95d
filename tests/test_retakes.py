"""Checked synthesis (issue 22): the retake loop, its plumbing through TTSEngine.synthesize on the tiny XTTS, and
(real tier) real speech from Piper with damaged takes, heard by the real Whisper tiny.en."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from engines.core.errors import InputError
from engines.tts.engine import TTSEngine, TTSOptions
from engines.tts.retakes import RetakeChecker, RetakeOptions, best_take, check_options, judge, take_seed

FAST = TTSOptions(max_audio_tokens=12, seed=7)
SR = 16000


def tone(seconds: float = 0.5) -> np.ndarray:
    return (0.1 * np.sin(np.arange(int(seconds * SR)) * 0.05)).astype(np.float32)


def scripted(heard: list[str]):
    """A speak/transcribe pair: take k 'sounds like' heard[k]."""
    spoken: list[int] = []

    def speak(take: int) -> tuple[np.ndarray, int]:
        spoken.append(take)
        audio = tone()
        audio[0] = take / 1000  # tells the takes apart
        return audio, 100 + take

    def transcribe(audio: np.ndarray, sr: int, language: str) -> str:
        return heard[round(float(audio[0]) * 1000)]

    return speak, transcribe, spoken


# ---------------------------------------------------------------- the loop


def test_a_passing_first_take_is_kept_without_retakes():
    speak, transcribe, spoken = scripted(["The cat sat on the mat."])
    audio, record = best_take(speak, "The cat sat on the mat.", "en", SR, transcribe, RetakeOptions(takes=3))
    assert spoken == [0] and record.chosen == 0 and not record.retaken and record.passed
    assert record.takes[0].reason == "ok" and record.takes[0].cer == 0.0 and record.takes[0].seed == 100


def test_failing_takes_are_retaken_until_one_passes():
    heard = ["The cat sat.", "The cat sat on the mat mat mat mat.", "The cat sat on the mat."]
    speak, transcribe, spoken = scripted(heard)
    audio, record = best_take(speak, "The cat sat on the mat.", "en", SR, transcribe, RetakeOptions(takes=5))
    assert spoken == [0, 1, 2], "stops at the first passing take"
    assert record.chosen == 2 and record.passed and record.retaken
    first, second = record.takes[0], record.takes[1]
    assert "cut_off" in first.flags and not first.passed and "CER" in first.reason
    assert "hallucinated_tail" in second.flags and not second.passed
    assert [t.seed for t in record.takes] == [100, 101, 102]
    assert audio[0] == pytest.approx(0.002)  # the kept audio is take 2's


def test_when_every_take_fails_the_lowest_cer_is_kept():
    heard = ["completely different words", "The cat sat on.", "nothing"]
    speak, transcribe, _ = scripted(heard)
    _, record = best_take(speak, "The cat sat on the mat.", "en", SR, transcribe, RetakeOptions(takes=3))
    assert len(record.takes) == 3 and not record.passed
    assert record.chosen == 1


def test_takes_one_only_checks_and_records():
    speak, transcribe, spoken = scripted(["wrong"])
    _, record = best_take(speak, "The cat sat on the mat.", "en", SR, transcribe, RetakeOptions(takes=1))
    assert spoken == [0] and not record.passed and record.takes[0].cer > 0.2


def test_the_cer_threshold_and_flags_decide():
    text = "The quick brown fox jumps over the lazy dog."
    cer, flags, reason = judge(text, "The quick brown fox jumps over the lazy dog", "en", tone(), SR, RetakeOptions())
    assert cer == 0.0 and flags == [] and reason == "ok"
    cer, flags, reason = judge(text, "The quick brown fox jumps over the", "en", tone(), SR, RetakeOptions())
    assert flags == ["cut_off"] and reason.startswith("CER")
    # A loose threshold passes a cut-off on CER; the flag still fails it unless flags are off.
    loose = RetakeOptions(max_cer=0.9)
    assert judge(text, "The quick brown fox jumps over the", "en", tone(), SR, loose)[2] == "cut_off"
    assert judge(text, "The quick brown fox jumps over the", "en", tone(), SR, RetakeOptions(0, 0.9, False))[2]


@pytest.mark.parametrize(
    "options",
    [RetakeOptions(takes=0), RetakeOptions(takes=11), RetakeOptions(takes=2.5), RetakeOptions(max_cer=1.5)],  # type: ignore[arg-type]
)
def test_bad_options_are_refused_with_the_range(options):
    with pytest.raises(InputError, match="from"):
        check_options(options)


def test_retake_seeds_differ_per_sentence_and_take_and_are_reproducible():
    seeds = {take_seed(1234, s, t) for s in range(5) for t in range(1, 4)}
    assert len(seeds) == 15 and take_seed(1234, 2, 1) == take_seed(1234, 2, 1)


# ---------------------------------------------------------------- plumbing on the tiny XTTS


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_models):
    from config import load_settings

    root = tmp_path_factory.mktemp("retakes")
    settings = load_settings({"workspace": root / "ws", "tiny_models": True, "device": "cpu"}, env={})
    return TTSEngine(settings, threading.RLock(), tiny=tiny_models)


def test_synthesize_records_every_take_in_the_sidecar_and_only_failed_sentences_change(engine):
    text = "The first sentence is here. The second one follows it."
    speaker = engine.speakers("tiny")[0]
    plain = engine.synthesize(text, speaker=speaker, options=FAST, save=False)
    sentences = plain.chunks
    assert len(sentences) == 2

    # Sentence 0 fails its first take, then passes; sentence 1 passes at once.
    state = {"calls": 0}
    script = [False, True, True]

    def transcribe(audio, sr, language):
        ok = script[state["calls"]]
        which = 0 if state["calls"] < 2 else 1
        state["calls"] += 1
        return sentences[which] if ok else "nothing like it"

    checker = RetakeChecker(RetakeOptions(takes=3), transcribe, label="fake ear")
    checked = engine.synthesize(text, speaker=speaker, options=FAST, retakes=checker)
    record = checked.retakes
    assert record is not None and record["retaken"] == 1 and record["failed"] == 0
    first, second = record["sentences"]
    assert [t["passed"] for t in first["takes"]] == [False, True] and first["chosen"] == 1
    assert first["takes"][0]["seed"] == 7 and first["takes"][1]["seed"] == take_seed(7, 0, 1)
    assert len(second["takes"]) == 1 and second["takes"][0]["reason"] == "ok"
    assert any("1 of 2 sentence(s) needed a retake" in n for n in checked.notices)
    sidecar = json.loads(checked.sidecar.read_text())
    assert sidecar["retakes"] == record

    # The retake restored the random stream: sentence 1 is sample-equal to the unchecked run's sentence 1,
    # sentence 0 (retaken with another seed) is not.
    k = int(round(second["takes"][0]["audio_seconds"] * plain.sample_rate))
    assert np.array_equal(checked.audio[-k:], plain.audio[-k:])
    assert not np.array_equal(checked.audio[:2000], plain.audio[:2000])


def test_synthesize_with_the_tiny_whisper_checks_every_sentence(engine, tiny_models):
    from engines.asr.engine import ASREngine

    asr = ASREngine(engine.settings, engine.gpu_lock, tiny=tiny_models)
    checker = RetakeChecker.whisper(asr, RetakeOptions(takes=2, max_cer=0.2))
    result = engine.synthesize("One sentence only.", speaker=engine.speakers("tiny")[0], options=FAST, retakes=checker)
    record = result.retakes
    # The tiny Whisper hears gibberish in tiny XTTS's noise: every take fails, both are tried, the best is kept.
    assert record["sentences_checked"] == 1 and len(record["sentences"][0]["takes"]) == 2
    assert record["failed"] == 1 and record["check_seconds"] > 0
    assert json.loads(result.sidecar.read_text())["retakes"]["failed"] == 1


def test_a_stream_with_retakes_sends_each_sentence_once_it_passed(engine):
    """Streaming with retakes: a sentence is checked (and retaken) before any of it is sent, so the stream gives
    whole sentences, and the take the checker kept is what was sent."""
    text = "The first sentence is here. The second one follows it."
    speaker = engine.speakers("tiny")[0]
    heard = iter(["nothing like it", "The first sentence is here.", "The second one follows it."])
    checker = RetakeChecker(RetakeOptions(takes=3), lambda audio, sr, language: next(heard), label="fake ear")
    stream = engine.synthesize_stream(text, speaker=speaker, options=FAST, retakes=checker)
    with stream:
        pieces = list(stream)
    record = stream.result.retakes
    assert record is not None and record["retaken"] == 1 and record["sentences_checked"] == 2
    sentence_samples = [
        round(t["audio_seconds"] * stream.sample_rate) for t in (s["takes"][s["chosen"]] for s in record["sentences"])
    ]
    sent = [len(p) for p in pieces if len(p) != round(0.2 * stream.sample_rate)]  # the pause between sentences
    assert sent == pytest.approx(sentence_samples, abs=0.001 * stream.sample_rate)  # whole kept takes, one piece each


def test_an_english_only_checker_refuses_other_languages_before_synthesis(engine, tiny_models):
    def refuse(language: str) -> None:
        if language != "en":
            raise InputError("English-only")

    checker = RetakeChecker(RetakeOptions(), lambda a, s, lang: "", language_check=refuse)
    with pytest.raises(InputError, match="English-only"):
        engine.synthesize(
            "Hola.",
            speaker=engine.speakers("tiny")[0],
            options=TTSOptions(language="es", max_audio_tokens=8),
            retakes=checker,
        )


# ---------------------------------------------------------------- real speech (Piper + Whisper tiny.en)


SENTENCES = [
    "The old lighthouse keeper climbed the stairs every evening.",
    "Fresh bread was sold in the market square on Saturdays.",
    "She wrote a long letter to her brother in the mountains.",
]


class DamagingPiper:
    """Piper behind the retake loop's ``speak``: take 0 of chosen sentences comes out damaged the way XTTS fails
    (cut off halfway, a phrase repeated, a noise tail), later takes are clean."""

    def __init__(self, voice, damage: dict[int, str]) -> None:
        from piper.config import SynthesisConfig

        self.voice = voice
        self.rate = voice.config.sample_rate
        self.damage = damage
        self.fixed = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

    def render(self, text: str) -> np.ndarray:
        chunks = self.voice.synthesize(text, syn_config=self.fixed)
        return np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)

    def speaker(self, index: int, text: str):
        def speak(take: int) -> tuple[np.ndarray, int]:
            audio = self.render(text)
            kind = self.damage.get(index) if take == 0 else None
            if kind == "truncated":
                audio = audio[: int(len(audio) * 0.45)]
            elif kind == "repeated":
                words = text.rstrip(".").split()
                audio = np.concatenate([audio, self.render(" ".join(words[-4:]) + ". " + " ".join(words[-4:]) + ".")])
            elif kind == "noise_tail":
                rng = np.random.default_rng(take)
                audio = np.concatenate([audio, 0.3 * rng.standard_normal(int(2.5 * self.rate)).astype(np.float32)])
                audio = np.concatenate([audio, self.render("and then something else was said here")])
            return audio, 1000 + take

        return speak


@pytest.mark.real
def test_retakes_recover_damaged_piper_takes_heard_by_real_whisper(piper_voice, real_whisper, tmp_path, tiny_models):
    from config import load_settings
    from engines.asr.engine import ASREngine
    from engines.core.audio import write_json

    settings = load_settings({"workspace": tmp_path / "ws", "device": "cpu"}, env={})
    asr = ASREngine(settings, threading.RLock(), tiny=None)
    checker = RetakeChecker.whisper(asr, RetakeOptions(takes=3, max_cer=0.15, asr_model=real_whisper))
    piper = DamagingPiper(piper_voice, {0: "truncated", 1: "repeated", 2: "noise_tail"})
    records = []
    for i, text in enumerate(SENTENCES):
        _, record = checker.best(piper.speaker(i, text), text, "en", piper.rate, i)
        records.append(record)
    report = checker.report(records)
    sidecar = write_json(tmp_path / "checked.json", {"retakes": report.as_dict()})
    saved = json.loads(sidecar.read_text())["retakes"]
    for s in saved["sentences"]:
        bad, good = s["takes"][0], s["takes"][s["chosen"]]
        assert not bad["passed"], f"the damaged take of {s['text']!r} passed: heard {bad['heard']!r}"
        assert good["passed"] and s["chosen"] >= 1, f"no clean take kept for {s['text']!r}: {s['takes']}"
        assert good["cer"] <= 0.15 and good["seed"] == 1000 + s["chosen"]
    assert saved["retaken"] == 3 and saved["failed"] == 0
    reasons = [s["takes"][0]["reason"] for s in saved["sentences"]]
    assert "cut_off" in reasons[0]
    assert "CER" in reasons[1] or "hallucinated_tail" in reasons[1]
    assert "CER" in reasons[2] or "hallucinated_tail" in reasons[2]


@pytest.mark.real
def test_clean_piper_speech_passes_at_the_first_take(piper_voice, real_whisper, tmp_path):
    from config import load_settings
    from engines.asr.engine import ASREngine

    settings = load_settings({"workspace": tmp_path / "ws", "device": "cpu"}, env={})
    asr = ASREngine(settings, threading.RLock(), tiny=None)
    checker = RetakeChecker.whisper(asr, RetakeOptions(takes=3, max_cer=0.15, asr_model=real_whisper))
    piper = DamagingPiper(piper_voice, {})
    for i, text in enumerate(SENTENCES):
        _, record = checker.best(piper.speaker(i, text), text, "en", piper.rate, i)
        assert len(record.takes) == 1 and record.passed, record.takes


def test_the_eval_loop_has_a_retake_mode(tmp_path, tiny_models):
    """EvalConfig(retakes=N): each sentence is heard by the run's own Whisper and retaken before it is scored
    (the tiny Whisper hears gibberish, so every take fails and the notice says so); out of range is refused."""
    from engines import Engines
    from engines.core.errors import InputError
    from engines.eval import EvalConfig
    from tests.browser_helpers import tiny_settings

    eng = Engines.create(tiny_settings(tmp_path, tiny_models), tiny=tiny_models)
    base = {"sentences": "builtin:en", "max_sentences": 1, "voices": ("speaker:Tiny Alice",), "ground_truth": False}
    run = eng.eval.run(
        EvalConfig(**base, retakes=2, asr_model="tiny-random", generation=TTSOptions(max_audio_tokens=10))
    )
    _, rows, _ = eng.eval.load_run(run.folder.name)
    assert len(rows) == 1 and "needed a retake" in rows[0]["tts_notices"], rows[0]["tts_notices"]
    with pytest.raises(InputError, match="Retakes must be from 0"):
        eng.eval.plan(EvalConfig(**base, retakes=11))
