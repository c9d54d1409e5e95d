"""TTS engine on the tiny XTTS model: voices, seeds, caching, files, model picking, and every bad input."""

from __future__ import annotations

import dataclasses
import gc
import json
import shutil
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from config import XTTS_LANGUAGES, load_settings
from engines.core.audio import file_sha256, load_audio
from engines.core.catalog import INFERENCE_FILES as BASE_FILES
from engines.core.errors import AudioError, InputError, LabError, MissingWeightsError
from engines.core.names import xtts_language as normalize_language
from engines.tts.engine import TTSEngine, TTSOptions
from engines.tts.textsplit import split_sentences, split_text

TOKENS = 12  # GPT audio tokens per sentence: ~0.5 s of (noise) audio keeps each call short
FAST = TTSOptions(max_audio_tokens=TOKENS)
SAMPLES_PER_TOKEN = 1024  # XTTS v2 decoder: one GPT code = 1024 samples at 24 kHz


@pytest.fixture(scope="module")
def tts_settings(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("tts-engine")
    return load_settings(
        {"workspace": root / "workspace", "samples_dir": root / "samples", "tiny_models": True, "device": "cpu"}, env={}
    )


@pytest.fixture(scope="module")
def engine(tts_settings, tiny_models) -> TTSEngine:
    """One engine for the module, so the tiny model loads once."""
    return TTSEngine(tts_settings, threading.RLock(), tiny=tiny_models)


@pytest.fixture(scope="module")
def ref(speak) -> Path:
    return speak(
        "Printing, in the only sense with which we are at present concerned, differs from most arts.", name="tts-ref"
    )


def with_settings(engine: TTSEngine, monkeypatch: pytest.MonkeyPatch, **changes) -> None:
    monkeypatch.setattr(engine, "settings", dataclasses.replace(engine.settings, **changes))


# ---------------------------------------------------------------- synthesis


def test_reference_synthesis_writes_wav_and_sidecar(engine, ref):
    result = engine.synthesize("Hello there, how are you today?", reference=[ref], options=FAST)
    assert result.sample_rate == 24000
    assert result.audio.dtype == np.float32 and result.audio.ndim == 1 and len(result.audio) > 0
    assert np.isfinite(result.audio).all()
    assert result.audio_seconds == pytest.approx(len(result.audio) / 24000)
    assert result.gen_seconds > 0 and result.rtf == pytest.approx(result.gen_seconds / result.audio_seconds)
    assert result.model_id == "tiny" and result.seed == FAST.seed

    # WAV next to a JSON sidecar under workspace/outputs/tts, named <timestamp>_<slug>.
    assert result.path.parent == engine.settings.workspace_dir / "outputs" / "tts"
    assert result.path.name.endswith("_hello-there-how-are-you-today.wav")
    assert result.sidecar == result.path.with_suffix(".json")
    data, sr = sf.read(result.path, dtype="float32")
    assert sr == 24000 and len(data) == len(result.audio)
    assert np.max(np.abs(data - np.clip(result.audio, -1, 1))) < 1e-3  # PCM16 rounding only

    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["text"] == "Hello there, how are you today?"
    assert sidecar["language"] == "en" and sidecar["model_id"] == "tiny" and sidecar["speaker"] is None
    seconds = sf.info(ref).duration
    assert sidecar["references"] == [
        {
            "name": ref.name,
            "seconds": pytest.approx(seconds, abs=0.01),
            "trimmed": False,
            "used_seconds": pytest.approx(min(seconds, 10.0), abs=0.01),
            "sha256": file_sha256(ref),
        }
    ]
    assert sidecar["options"] == dataclasses.asdict(FAST)
    assert sidecar["seed_used"] == FAST.seed and sidecar["file"] == result.path.name
    assert sidecar["timings"]["gen_seconds"] == pytest.approx(result.gen_seconds, abs=1e-3)
    assert sidecar["timings"]["audio_seconds"] == pytest.approx(result.audio_seconds, abs=1e-3)
    assert set(sidecar["versions"]) >= {"xtts_lab", "coqui-tts", "torch", "python"}
    assert sidecar["chunks"] == result.chunks == ["Hello there, how are you today?"]


def test_max_audio_tokens_caps_each_sentence(engine):
    result = engine.synthesize(
        "One short sentence to speak.",
        speaker="Tiny Alice",
        options=dataclasses.replace(FAST, max_audio_tokens=8),
        save=False,
    )
    assert 0 < len(result.audio) <= (8 + 2) * SAMPLES_PER_TOKEN


def test_builtin_speaker(engine):
    assert engine.speakers() == ["Tiny Alice", "Tiny Bob"]
    result = engine.synthesize("A built-in voice speaks.", speaker="Tiny Bob", options=FAST, save=False)
    assert result.path is None and result.sidecar is None and len(result.audio) > 0
    with pytest.raises(InputError, match="Unknown built-in speaker 'Nobody'.*Tiny Alice, Tiny Bob"):
        engine.synthesize("Hello there.", speaker="Nobody", options=FAST, save=False)


def test_same_seed_same_audio_different_seed_different(engine):
    text = "The same seed gives the same audio."
    a = engine.synthesize(text, speaker="Tiny Alice", options=dataclasses.replace(FAST, seed=7), save=False)
    b = engine.synthesize(text, speaker="Tiny Alice", options=dataclasses.replace(FAST, seed=7), save=False)
    c = engine.synthesize(text, speaker="Tiny Alice", options=dataclasses.replace(FAST, seed=8), save=False)
    assert np.array_equal(a.audio, b.audio)
    assert a.audio.shape != c.audio.shape or not np.allclose(a.audio, c.audio)
    fresh = engine.synthesize(text, speaker="Tiny Alice", options=dataclasses.replace(FAST, seed=None), save=False)
    assert isinstance(fresh.seed, int)  # a random seed is reported so the take can be reproduced


def test_latents_cache_hits_on_same_files_and_misses_on_others(engine, speak, monkeypatch):
    engine.clear_latent_cache()
    one = speak("The first voice reads this sentence slowly.", name="cache-one")
    two = speak("A second and different reference clip.", name="cache-two")
    first = engine.synthesize("Cache me.", reference=[one], options=FAST, save=False)
    again = engine.synthesize("Cache me again, please.", reference=[one], options=FAST, save=False)
    other = engine.synthesize("Cache me.", reference=[two], options=FAST, save=False)
    both = engine.synthesize("Cache me.", reference=[one, two], options=FAST, save=False)
    assert (first.latents_cached, again.latents_cached, other.latents_cached, both.latents_cached) == (
        False,
        True,
        False,
        False,
    )
    assert engine.status()["latent_cache_entries"] == 3

    # Bounded: with room for one entry the oldest voice is evicted.
    with_settings(engine, monkeypatch, latent_cache_size=1)
    engine.synthesize("Cache me.", reference=[one], options=FAST, save=False)
    assert engine.status()["latent_cache_entries"] == 1
    assert engine.synthesize("Cache me.", reference=[two], options=FAST, save=False).latents_cached is False


def test_sentence_splitting_makes_longer_audio(engine):
    one = "The first sentence is right here."
    three = f"{one} A second sentence follows it. And a third one ends the text."
    single = engine.synthesize(one, speaker="Tiny Alice", options=FAST, save=False)
    split = engine.synthesize(three, speaker="Tiny Alice", options=FAST, save=False)
    assert len(single.chunks) == 1 and len(split.chunks) == 3
    assert split.audio_seconds > single.audio_seconds + 0.4  # two more sentences and two pauses
    packed = engine.synthesize(
        three, speaker="Tiny Alice", options=dataclasses.replace(FAST, split_sentences=False), save=False
    )
    assert packed.chunks == [three]


def test_language_other_than_english(engine):
    result = engine.synthesize(
        "Guten Tag, wie geht es Ihnen heute?",
        speaker="Tiny Alice",
        options=dataclasses.replace(FAST, language="de"),
        save=False,
    )
    assert len(result.audio) > 0


def test_languages_needing_extra_packages(engine):
    import importlib.util

    options = dataclasses.replace(FAST, language="zh")  # "zh" is accepted for "zh-cn"
    if importlib.util.find_spec("pypinyin") is None:
        with pytest.raises(LabError, match=r"pypinyin.*coqui-tts\[zh\]"):
            engine.synthesize("你好。今天天气很好。", speaker="Tiny Alice", options=options, save=False)
    else:
        assert len(engine.synthesize("你好。今天天气很好。", speaker="Tiny Alice", options=options, save=False).audio)


# ---------------------------------------------------------------- models


def test_finetuned_model_dir_is_listed_synthesizes_and_switch_unloads(engine, tiny_models, ref):
    tiny_model = engine.load("tiny")
    tiny_ref = weakref.ref(tiny_model)
    del tiny_model
    target = engine.settings.workspace_sub("models") / "my-finetune"
    shutil.copytree(tiny_models.xtts_dir, target)
    assert ("my-finetune (workspace/models)", "my-finetune") in engine.list_models()
    assert [mid for _, mid in engine.list_models()][:2] == ["tiny", "xtts_v2"]

    result = engine.synthesize(
        "A fine-tuned voice.", model_id="my-finetune", speaker="Tiny Bob", options=FAST, save=False
    )
    assert result.model_id == "my-finetune" and len(result.audio) > 0
    assert engine.holder.loaded.key == "my-finetune" and engine.status()["loaded_model"] == "my-finetune"
    gc.collect()
    assert tiny_ref() is None, "switching models must drop the previous one"

    # An exported model may ship its own reference.wav: used when no voice is given.
    with pytest.raises(InputError, match="No voice given"):
        engine.synthesize("Which voice?", model_id="my-finetune", options=FAST, save=False)
    shutil.copy(ref, target / "reference.wav")
    own = engine.synthesize("Which voice?", model_id="my-finetune", options=FAST, save=False)
    assert own.notices == ["No voice given: using the model's own reference.wav."] and len(own.audio) > 0

    # An absolute folder works too (same files, so it is the same model id path-wise).
    assert engine.model_dir(str(target)) == target
    assert engine.unload() is True and engine.holder.loaded is None and engine.unload() is False


def test_model_dir_missing_files_raises_naming_them(engine, tiny_models):
    broken = engine.settings.workspace_sub("models") / "broken"
    shutil.copytree(tiny_models.xtts_dir, broken)
    (broken / "model.pth").unlink()
    assert "broken" not in [mid for _, mid in engine.list_models()]
    with pytest.raises(MissingWeightsError, match=r"broken is missing model\.pth"):
        engine.load("broken")
    with pytest.raises(MissingWeightsError, match="not found"):
        engine.synthesize("Hello.", model_id="no-such-model", speaker="Tiny Bob", options=FAST)


def test_base_model_offline_raises_missing_weights(tts_settings, tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "xtts-cache"
    eng = TTSEngine(dataclasses.replace(tts_settings, xtts_cache_dir=cache, tiny_models=False), threading.RLock())
    assert eng.find_base_model() is None
    assert eng.list_models()[0][1] == "xtts_v2" and "downloads" in eng.list_models()[0][0]

    monkeypatch.delenv("COQUI_TOS_AGREED", raising=False)
    with pytest.raises(MissingWeightsError) as no_tos:
        eng.load("xtts_v2")
    # Never downloads on a test machine: the hub is switched off even where there is internet.
    monkeypatch.setenv("COQUI_TOS_AGREED", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(MissingWeightsError) as offline:
        eng.load("xtts_v2")
    for exc in (no_tos.value, offline.value):
        message = str(exc)
        assert str(cache) in message
        assert all(name in message for name in BASE_FILES)
        assert "COQUI_TOS_AGREED=1" in message and "workspace" in message
    assert "Could not download" in str(offline.value)
    assert eng.holder.loaded is None


def test_tiny_id_outside_tiny_mode(tts_settings):
    eng = TTSEngine(dataclasses.replace(tts_settings, tiny_models=False), threading.RLock())
    assert "tiny" not in [mid for _, mid in eng.list_models()]
    with pytest.raises(InputError, match="tiny-model mode"):
        eng.load("tiny")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "text is empty"), ("   \n\t ", "text is empty")],
)
def test_empty_text(engine, text, message):
    with pytest.raises(InputError, match=message):
        engine.synthesize(text, speaker="Tiny Bob", options=FAST)


def test_text_over_limit(engine):
    limit = engine.settings.max_text_chars
    with pytest.raises(InputError, match=f"{limit + 1} characters long; the limit is {limit}"):
        engine.synthesize("a" * (limit + 1), speaker="Tiny Bob", options=FAST)


def test_unsupported_language_names_the_allowed_ones(engine):
    with pytest.raises(InputError, match=r"'xx' is not supported.*en \(English\).*zh-cn") as exc:
        engine.synthesize("Hello.", speaker="Tiny Bob", options=dataclasses.replace(FAST, language="xx"))
    assert all(code in str(exc.value) for code in XTTS_LANGUAGES)
    assert normalize_language("zh") == "zh-cn" and normalize_language("ZH-CN") == "zh-cn"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"temperature": 0.0}, "temperature must be between"),
        ({"top_p": 1.5}, "top_p must be between"),
        ({"speed": 5.0}, "speed must be between 0.5 and 2"),
        ({"top_k": 0}, "top_k must be between"),
        ({"repetition_penalty": float("nan")}, "repetition_penalty must be a number"),
        ({"seed": -3}, "seed must be"),
        ({"max_audio_tokens": 0}, "max_audio_tokens must be between"),
    ],
)
def test_option_ranges(engine, change, message):
    with pytest.raises(InputError, match=message):
        engine.synthesize("Hello.", speaker="Tiny Bob", options=dataclasses.replace(FAST, **change))


def test_no_voice_and_both_voices(engine, ref):
    with pytest.raises(InputError, match="No voice given"):
        engine.synthesize("Hello.", options=FAST)
    with pytest.raises(InputError, match="not both"):
        engine.synthesize("Hello.", reference=[ref], speaker="Tiny Bob", options=FAST)


def test_non_audio_file_renamed_wav(engine, tmp_path):
    fake = tmp_path / "notes.wav"
    fake.write_text("this is a text file, not audio\n" * 20)
    with pytest.raises(AudioError, match="notes.wav is not a readable audio file"):
        engine.synthesize("Hello.", reference=[fake], options=FAST)


def test_zero_length_files(engine, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty.wav is empty \(0 bytes\)"):
        engine.synthesize("Hello.", reference=[empty], options=FAST)
    header_only = tmp_path / "header.wav"
    sf.write(header_only, np.zeros(0, dtype=np.float32), 22050)
    with pytest.raises(AudioError, match="header.wav holds no audio"):
        engine.synthesize("Hello.", reference=[header_only], options=FAST)


def test_too_short_clip(engine, ref, tmp_path):
    audio, sr = load_audio(ref)
    short = tmp_path / "short.wav"
    sf.write(short, audio[: int(0.2 * sr)], sr)
    with pytest.raises(AudioError, match=r"short.wav is 0.20 s long; reference clips must be at least 0.5 s"):
        engine.synthesize("Hello.", reference=[short], options=FAST)


def test_pure_silence(engine, tmp_path):
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(22050 * 3, dtype=np.float32), 22050)
    with pytest.raises(AudioError, match="silence.wav is silent"):
        engine.synthesize("Hello.", reference=[silent], options=FAST)


def test_stereo_24bit_44k_flac_reference_works(engine, ref, tmp_path):
    import librosa

    audio, sr = load_audio(ref)
    hi = librosa.resample(audio, orig_sr=sr, target_sr=44100)
    stereo = np.stack([hi, 0.5 * hi], axis=1)
    flac = tmp_path / "stereo.flac"
    sf.write(flac, stereo, 44100, subtype="PCM_24", format="FLAC")
    info = sf.info(flac)
    assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_24")
    result = engine.synthesize("A stereo reference.", reference=[flac], options=FAST)
    assert len(result.audio) > 0 and result.notices == []
    assert json.loads(result.sidecar.read_text())["references"][0]["name"] == "stereo.flac"


def test_m4a_reference_works(engine, speak):
    m4a = speak("An AAC clip in an M4A box, decoded by FFmpeg.", fmt="m4a", name="aac-ref")
    assert len(engine.synthesize("Hello from M4A.", reference=[m4a], options=FAST, save=False).audio) > 0


def test_long_reference_is_trimmed_with_notice(engine, ref, monkeypatch):
    seconds = sf.info(ref).duration
    with_settings(engine, monkeypatch, max_ref_seconds=2.0)
    result = engine.synthesize("Trim the reference.", reference=[ref], options=FAST)
    assert any(f"{ref.name} is {seconds:.1f} s long; only its first 2 s were used" in n for n in result.notices)
    entry = json.loads(result.sidecar.read_text())["references"][0]
    assert entry["trimmed"] is True
    # The notice comes back on a cache hit too.
    again = engine.synthesize("Trim the reference.", reference=[ref], options=FAST, save=False)
    assert again.latents_cached and again.notices == result.notices


def test_jfk_flac_reference(engine, shared_data):
    result = engine.synthesize(
        "And so, my fellow Americans.", reference=[shared_data / "whisper" / "jfk.flac"], options=FAST, save=False
    )
    assert len(result.audio) > 0


# ---------------------------------------------------------------- speaker embedding, voices, status


def test_speaker_embedding_is_unit_length_and_stable(engine, ref):
    emb = engine.speaker_embedding(ref)
    assert emb.shape == (512,) and emb.dtype == np.float32
    assert np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-5)
    audio, sr = load_audio(ref)
    from_array = engine.speaker_embedding(audio, sr)
    assert float(np.dot(emb, from_array)) > 0.99  # same clip, decoded at a different rate
    with pytest.raises(InputError, match="sample rate"):
        engine.speaker_embedding(audio)
    with pytest.raises(AudioError, match="too short"):
        engine.speaker_embedding(audio[:100], sr)


def test_save_list_and_use_voices(engine, ref, speak, tmp_path):
    second = speak("Another clip of the same speaker.", name="voice-two")
    folder = engine.save_voice("Narrator 1", [ref, second])
    assert folder == engine.settings.workspace_dir / "voices" / "Narrator 1"
    assert sorted(p.name for p in engine.voice_files("Narrator 1")) == sorted([ref.name, second.name])
    assert "Narrator 1" in engine.list_voices()
    with pytest.raises(InputError, match="already exists"):
        engine.save_voice("Narrator 1", [ref])
    engine.save_voice("Narrator 1", [second], overwrite=True)
    assert [p.name for p in engine.voice_files("Narrator 1")] == [second.name]
    result = engine.synthesize("A saved voice.", reference=engine.voice_files("Narrator 1"), options=FAST, save=False)
    assert len(result.audio) > 0

    shipped = engine.settings.path("samples_dir") / "voices" / "demo"
    shipped.mkdir(parents=True)
    shutil.copy(ref, shipped / "demo.wav")
    assert "demo" in engine.list_voices() and engine.voice_files("demo") == [shipped / "demo.wav"]


@pytest.mark.parametrize("name", ["", "  ", "../evil", "a/b", "a\\b", "..", ".hidden", "x" * 80])
def test_bad_voice_names(engine, ref, name):
    with pytest.raises(InputError):
        engine.save_voice(name, [ref])


def test_save_voice_refuses_bad_clips(engine, tmp_path):
    fake = tmp_path / "fake.wav"
    fake.write_text("not audio")
    with pytest.raises(AudioError, match="fake.wav"):
        engine.save_voice("fake", [fake])
    with pytest.raises(InputError, match="No clips"):
        engine.save_voice("nothing", [])
    assert "fake" not in engine.list_voices() and not (engine.settings.workspace_dir / "voices" / "fake").exists()
    with pytest.raises(InputError, match="No saved voice named 'ghost'"):
        engine.voice_files("ghost")


def test_status(engine):
    engine.load("tiny")
    status = engine.status()
    assert status["loaded_model"] == "tiny" and status["device"] == "cpu" and status["load_seconds"] >= 0
    assert status["latent_cache_size"] == engine.settings.latent_cache_size


# ---------------------------------------------------------------- text splitting


def test_split_sentences_and_wrapping():
    text = "Dr. Smith went home. Did he? Yes! He did."
    assert split_sentences(text, "en") == ["Dr. Smith went home.", "Did he?", "Yes!", "He did."]
    assert split_sentences("你好。你好吗？我很好！", "zh-cn") == ["你好。", "你好吗？", "我很好！"]
    assert split_sentences("Olá. Tudo bem? Sim.", "pt") == ["Olá.", "Tudo bem?", "Sim."]  # regex fallback
    # Short sentences merge forward; over-long ones are wrapped at the limit.
    assert split_text(text, "en", 250) == ["Dr. Smith went home.", "Did he? Yes! He did."]
    long_sentence = " ".join(["word"] * 100) + "."
    chunks = split_text(long_sentence, "en", 50)
    assert len(chunks) > 1 and all(len(c) <= 50 for c in chunks)
    assert " ".join(chunks) == long_sentence
    assert split_text(text, "en", 250, per_sentence=False) == [text]
    assert split_text("   ", "en") == []


# ---------------------------------------------------------------- real weights


@pytest.mark.real_weights
def test_real_xtts_v2(tts_settings, ref, tiny_models):
    eng = TTSEngine(dataclasses.replace(tts_settings, tiny_models=False), threading.RLock())
    if eng.find_base_model() is None:
        pytest.skip("XTTS v2 weights are not on this machine")
    assert len(eng.speakers("xtts_v2")) > 10
    result = eng.synthesize(
        "This is a test of the real model.",
        model_id="xtts_v2",
        reference=[ref],
        options=TTSOptions(max_audio_tokens=250),
    )
    assert result.sample_rate == 24000 and 0.5 < result.audio_seconds < 15
    emb = eng.speaker_embedding(result.path)
    assert emb.shape == (512,)
    with pytest.raises(LabError):
        eng.synthesize("", model_id="xtts_v2", reference=[ref])
