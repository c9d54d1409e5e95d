"""Broken or odd input and a hostile machine: NaN samples, huge files, a full disk, clips and text that cannot
make a voice or speech, and how user errors reach the log (one line) versus bugs (a traceback)."""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from config import load_settings
from engines.core import audio as audio_mod
from engines.core.audio import load_audio, resample, save_wav, write_json, write_text
from engines.core.errors import AudioError, InputError, LabError
from engines.core.options import TTSOptions
from engines.tts.engine import TTSEngine, check_request

FAST = TTSOptions(max_audio_tokens=12)


@pytest.fixture(scope="module")
def tts(tmp_path_factory, tiny_models) -> TTSEngine:
    root = tmp_path_factory.mktemp("integrity")
    settings = load_settings(
        {"workspace": root / "workspace", "samples_dir": root / "samples", "tiny_models": True, "device": "cpu"}, env={}
    )
    return TTSEngine(settings, threading.RLock(), tiny=tiny_models)


@pytest.fixture(scope="module")
def speech(speak) -> Path:
    return speak("The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background.", name="ok")


def speech_at(speech: Path, folder: Path, name: str, sr: int = 44100, gain: float = 1.0) -> tuple[Path, np.ndarray]:
    """The espeak clip resampled to ``sr``, scaled by ``gain`` and clipped to full scale, as a float WAV."""
    audio, file_sr = load_audio(speech)
    audio = np.clip(resample(audio, file_sr, sr) * gain, -1.0, 1.0).astype(np.float32)
    path = folder / name
    sf.write(path, audio, sr, subtype="FLOAT")
    return path, audio


def nan_clip(speech: Path, folder: Path, name: str = "nan.wav") -> Path:
    """Speech at 44.1 kHz (resampled on load, where NaN used to raise) with NaN and inf samples in it."""
    path, audio = speech_at(speech, folder, name)
    audio[1000:1100] = np.nan
    audio[5000] = np.inf
    audio[6000] = -np.inf
    sf.write(path, audio, 44100, subtype="FLOAT")
    return path


# ---------------------------------------------------------------- NaN / inf samples


def test_nan_samples_are_set_to_silence_before_resampling(speech, tmp_path):
    path = nan_clip(speech, tmp_path)
    with audio_mod.collect_notices() as notices:
        audio, sr = load_audio(path, sr=22050)
    assert sr == 22050 and len(audio) > 0 and np.isfinite(audio).all()
    assert len(notices) == 1 and "nan.wav: 102 of" in notices[0] and "set to silence" in notices[0]
    # Outside a collect_notices block nothing is gathered, and blocks do not leak into each other.
    with audio_mod.collect_notices() as other:
        pass
    assert other == []


def test_resample_repairs_an_array_with_nan(caplog):
    samples = np.sin(np.linspace(0, 200, 44100)).astype(np.float32)
    samples[10:20] = np.nan
    with caplog.at_level(logging.WARNING, logger="engines.core.audio"), audio_mod.collect_notices() as notices:
        out = resample(samples, 44100, 16000, label="clip 3")
    assert np.isfinite(out).all() and abs(len(out) - 16000) <= 1
    assert notices and notices[0].startswith("clip 3: 10 of 44100 samples")
    assert any("clip 3: 10 of 44100" in r.getMessage() for r in caplog.records)  # logged as well


def test_an_all_nan_file_is_a_clear_audio_error(tmp_path):
    path = tmp_path / "broken-export.wav"
    sf.write(path, np.full(22050, np.nan, np.float32), 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"broken-export.wav holds no usable audio: every one of its 22050 samples"):
        load_audio(path)


def test_tts_reference_with_nan_at_44k_speaks_with_a_notice(tts, speech, tmp_path):
    result = tts.synthesize("A voice from a damaged file.", reference=[nan_clip(speech, tmp_path)], options=FAST)
    assert len(result.audio) > 0 and np.isfinite(result.audio).all()
    assert any("nan.wav: 102 of" in n for n in result.notices)


def test_eval_voice_with_nan_samples_is_accepted(speech, tmp_path):
    from engines.eval.plan import Planner

    settings = load_settings({"workspace": tmp_path / "ws"}, env={})
    voice = Planner(settings, tts=None, asr=None).parse_voice(str(nan_clip(speech, tmp_path, "eval-voice.wav")))
    assert voice.kind == "file" and voice.files == (str(tmp_path / "eval-voice.wav"),)


# ---------------------------------------------------------------- size limit


def test_a_1_gib_wav_is_too_large_not_unreadable(tmp_path):
    big = tmp_path / "concert.wav"
    sf.write(big, np.zeros(1000, np.float32), 44100, subtype="PCM_16")
    with open(big, "r+b") as fh:  # sparse: 1 GiB on paper, a few kB on disk
        fh.truncate(2**30)
    with pytest.raises(AudioError) as err:
        load_audio(big, max_mb=500)
    assert str(err.value).startswith("concert.wav is too large (1024 MB, limit 500 MB)")
    assert "max_upload_mb" in str(err.value) and "not a readable" not in str(err.value)


def test_a_too_large_file_in_a_dataset_build_is_reported_as_too_large(engines, speech, tmp_path):
    big = tmp_path / "concert.wav"
    sf.write(big, np.zeros(1000, np.float32), 44100, subtype="PCM_16")
    with open(big, "r+b") as fh:
        fh.truncate(2**30)
    transcripts = tmp_path / "list.txt"
    transcripts.write_text(f"{speech.name}|The birch canoe slid on the smooth planks.\nconcert.wav|A concert.\n")
    report = engines.datasets.build(
        "sizes", [speech, big], "en", transcripts=transcripts, progress=lambda *a, **k: None, log_fn=lambda m: None
    )
    row = next(f for f in report.files if f.source == "concert.wav")
    assert row.status == "skipped" and row.reason == "too large" and "limit" in row.detail  # not "not audio"


def test_a_file_too_large_to_decode_in_memory_says_so(tmp_path, monkeypatch, speech):
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(audio_mod.sf, "read", no_memory)
    with pytest.raises(AudioError, match=r"ok.wav is too large \(\d+ MB\) to decode in this machine's memory"):
        load_audio(speech)


# ---------------------------------------------------------------- a full disk


def test_disk_full_while_writing_text_names_the_disk_and_the_file(tmp_path):
    target = tmp_path / "out" / "results.csv"
    with pytest.raises(LabError) as err, audio_mod.atomic_file(target) as tmp:
        Path(tmp).write_text("half a row", encoding="utf-8")
        raise OSError(errno.ENOSPC, "No space left on device")
    message = str(err.value)
    assert message.startswith("The disk is full: could not write results.csv to ") and str(target.parent) in message
    assert isinstance(err.value.__cause__, OSError)
    assert list(target.parent.iterdir()) == []  # neither the file nor its half-written temp file


def test_disk_full_inside_write_json_is_the_same_message(tmp_path, monkeypatch):
    real_open = open

    class FullFile:
        def __init__(self, *args, **kwargs):
            self.fh = real_open(*args, **kwargs)

        def __enter__(self):
            return self

        def write(self, text):
            self.fh.write(text[:3])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr("builtins.open", FullFile)
    with pytest.raises(LabError, match=r"The disk is full: could not write sidecar.json"):
        write_json(tmp_path / "sidecar.json", {"a": 1})
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    assert write_text(tmp_path / "ok.txt", "fine").read_text() == "fine"  # the next write, with room, works


def test_libsndfile_system_error_on_a_full_disk_is_the_disk_full_message(tmp_path, monkeypatch):
    def partial_then_fail(tmp, *args, **kwargs):
        Path(tmp).write_bytes(b"RIFF" + b"\0" * 100)
        raise sf.LibsndfileError(2, "Error writing: ")  # 2 = SF_ERR_SYSTEM: "System error."

    class Usage:
        free = 4096

    monkeypatch.setattr(audio_mod.sf, "write", partial_then_fail)
    monkeypatch.setattr(audio_mod.shutil, "disk_usage", lambda folder: Usage)
    with pytest.raises(LabError) as err:
        save_wav(tmp_path / "take1.wav", np.zeros(100, np.float32), 24000)
    assert str(err.value).startswith(f"The disk is full: could not write take1.wav to {tmp_path}")
    assert "System error" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
    # With room on the disk the same error is not called a full disk: it stays what it is (a bug, logged).
    monkeypatch.undo()
    monkeypatch.setattr(audio_mod.sf, "write", partial_then_fail)
    with pytest.raises(sf.LibsndfileError):
        save_wav(tmp_path / "take2.wav", np.zeros(100, np.float32), 24000)
    assert list(tmp_path.iterdir()) == []


def test_tts_generate_on_a_full_disk_is_a_clean_page_error(tts, speech, monkeypatch, caplog):
    from pages.common import guarded

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(audio_mod.sf, "write", full)
    call = guarded(lambda: tts.synthesize("Hello.", speaker="Tiny Alice", options=FAST))
    with caplog.at_level(logging.INFO), pytest.raises(gr.Error) as err:
        call()
    assert err.value.message.startswith("The disk is full: could not write ") and ".wav to " in err.value.message
    assert not any(r.exc_info for r in caplog.records)


# ---------------------------------------------------------------- the log: user errors vs bugs


def test_a_user_error_is_one_log_line_and_no_gradio_traceback(caplog):
    from pages.common import guarded

    @guarded
    def generate_button():
        raise InputError("The text is empty. Type what the voice should say.")

    with caplog.at_level(logging.INFO, logger="pages.common"), pytest.raises(gr.Error) as err:
        generate_button()
    assert err.value.message == "The text is empty. Type what the voice should say."
    assert err.value.print_exception is False  # Gradio would print the traceback otherwise (twice)
    records = [r for r in caplog.records if r.name == "pages.common"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING and records[0].exc_info is None
    assert "generate_button" in records[0].getMessage() and "\n" not in records[0].getMessage()


def test_a_user_error_from_a_generator_and_a_raw_gr_error_are_one_line_too(caplog):
    from pages.common import guarded

    @guarded
    def stream():
        yield 1
        raise AudioError("clip.wav is silent.")

    @guarded
    def page_check():
        raise gr.Error("Pick a run first.")

    with caplog.at_level(logging.INFO, logger="pages.common"):
        with pytest.raises(gr.Error) as first:
            list(stream())
        with pytest.raises(gr.Error) as second:
            page_check()
    assert first.value.print_exception is False and second.value.print_exception is False
    records = [r for r in caplog.records if r.name == "pages.common"]
    assert [r.exc_info for r in records] == [None, None] and len(records) == 2


def test_a_real_bug_keeps_its_traceback_once(caplog):
    from pages.common import guarded

    @guarded
    def broken():
        return {}["missing"]

    with caplog.at_level(logging.INFO, logger="pages.common"), pytest.raises(gr.Error) as err:
        broken()
    assert "Unexpected error (KeyError" in err.value.message
    records = [r for r in caplog.records if r.name == "pages.common"]
    assert len(records) == 1 and records[0].levelno == logging.ERROR and records[0].exc_info is not None
    assert err.value.print_exception is False  # ours is the one traceback; Gradio does not print a second


# ---------------------------------------------------------------- generation options


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"seed": "abc"}, "Seed must be a number; got 'abc'."),
        ({"seed": 1.5}, "Seed must be a whole number; got 1.5."),
        ({"seed": float("nan")}, "Seed must be a finite number"),
        ({"max_audio_tokens": "lots"}, "Max audio tokens must be a number; got 'lots'."),
        ({"temperature": "warm"}, "Temperature must be a number; got 'warm'."),
        ({"top_k": None}, "Top-k is empty; give a number."),
    ],
)
def test_generation_options_name_the_bad_field(values, message):
    from pages.common import generation_options

    with pytest.raises(InputError) as err:
        generation_options(values, "en")
    assert str(err.value).startswith(message)


def test_generation_options_still_read_numbers_given_as_text():
    from pages.common import generation_options

    options = generation_options({"seed": "42", "max_audio_tokens": " ", "temperature": "0.5", "top_k": 10.0}, "en")
    assert (options.seed, options.max_audio_tokens, options.temperature, options.top_k) == (42, None, 0.5, 10)
    assert generation_options({"seed": -1, "max_audio_tokens": 0}, "en").seed is None


# ---------------------------------------------------------------- references that cannot make a voice


def test_a_dc_offset_only_clip_is_refused_as_a_voice(tts, tmp_path):
    dc = tmp_path / "unplugged.wav"
    rng = np.random.default_rng(0)
    sf.write(dc, (0.3 + 1e-4 * rng.standard_normal(3 * 22050)).astype(np.float32), 22050, subtype="FLOAT")
    with pytest.raises(AudioError) as err:
        tts.save_voice("dc", [dc])
    assert str(err.value).startswith("unplugged.wav holds no sound, only a constant offset (DC +0.30")
    with pytest.raises(AudioError, match="only a constant offset"):
        tts.synthesize("Hello.", reference=[dc], options=FAST)


def test_a_heavily_clipped_clip_is_used_with_a_warning(tts, speech, tmp_path):
    clipped, samples = speech_at(speech, tmp_path, "hot.wav", gain=10.0)
    assert np.mean(np.abs(samples) >= 0.99) > 0.05  # the fixture really is clipped
    result = tts.synthesize("Loud and clear.", reference=[clipped], options=FAST, save=False)
    assert len(result.audio) > 0
    assert [n for n in result.notices if n.startswith("hot.wav is heavily clipped: ")]
    assert "lower input level" in next(n for n in result.notices if "clipped" in n)
    # A clean clip says nothing about clipping.
    clean = tts.synthesize("Loud and clear.", reference=[speech], options=FAST, save=False)
    assert not [n for n in clean.notices if "clipped" in n]


# ---------------------------------------------------------------- text with nothing to say / the wrong script


def request(text: str, language: str = "en"):
    return check_request(text, TTSOptions(language=language), reference=None, speaker="Tiny Alice", max_chars=2000)


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\u200d\ufeff", " \u2060 \u200b "])
def test_zero_width_only_text_is_refused(text):
    with pytest.raises(InputError, match="only invisible characters"):
        request(text)


@pytest.mark.parametrize("text", ["...", "!?!", " -- ; : ", "\u200b.\u200b", "★☆"])
def test_punctuation_only_text_is_refused(text):
    with pytest.raises(InputError, match="has no letters or digits, only punctuation or symbols"):
        request(text)
    for fine in ("Hi!", "42", "\u200bHello\u200b", "¿Qué?"):  # one letter or digit is something to say
        assert request(fine)[0] == fine.strip()


@pytest.mark.parametrize(
    ("text", "language", "script", "advice"),
    [
        ("مرحبا بكم في المختبر", "en", "Arabic", "pick Arabic (ar)"),
        ("你好，今天天气很好。", "en", "Chinese (Han)", "pick Chinese (zh-cn)"),
        ("Привет, как дела?", "de", "Cyrillic", "pick Russian (ru)"),
        ("Hello, how are you today?", "zh-cn", "Latin", "pick the language it is written in (en, es"),
        ("Good morning", "ja", "Latin", "pick the language it is written in"),
        ("안녕하세요", "ja", "Korean (Hangul)", "pick Korean (ko)"),
        ("Shalom שלום עליכם חברים", "en", "Hebrew", "XTTS speaks no language written in Hebrew script"),
    ],
)
def test_text_in_the_wrong_script_for_its_language_is_a_notice(text, language, script, advice):
    from config import XTTS_LANGUAGES
    from engines.tts.engine import text_notices

    notices = text_notices(text, language)
    assert len(notices) == 1
    assert notices[0].startswith(
        f"The text is mostly in {script} script, but the language is {XTTS_LANGUAGES[language]} ({language})"
    )
    assert advice in notices[0]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Hello there.", "en"),
        ("Ça va très bien, merci.", "fr"),
        ("Привет, как дела?", "ru"),
        ("你好，今天天气很好。", "zh-cn"),
        ("今日は、いい天気ですね。", "ja"),
        ("안녕하세요, 반갑습니다.", "ko"),
        ("مرحبا بكم", "ar"),
        ("नमस्ते, आप कैसे हैं?", "hi"),
        ("我用iPhone打电话给他。", "zh-cn"),  # a Latin brand in Chinese text: mostly Han
        ("12345 !!!", "en"),
    ],
)
def test_text_in_its_own_script_has_no_notice(text, language):
    from engines.tts.engine import text_notices

    assert text_notices(text, language) == []


def test_synthesis_of_arabic_text_with_en_carries_the_notice(tts):
    result = tts.synthesize("مرحبا بكم في المختبر", speaker="Tiny Alice", options=FAST, save=False)
    assert any(
        n.startswith("The text is mostly in Arabic script, but the language is English (en)") for n in result.notices
    )


# ---------------------------------------------------------------- sentence files: the user's file name, never a temp path


def test_sentence_file_errors_name_the_file_not_gradios_temp_path(tmp_path):
    from engines.eval.sentences import load_sentences

    settings = load_settings({"workspace": tmp_path / "ws"}, env={})
    upload = tmp_path / "gradio" / "0f3c9a1b2d4e5f60718293a4b5c6d7e8f9012345" / "my sentences.csv"
    upload.parent.mkdir(parents=True)
    upload.write_text("id,text,language\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_sentences(str(upload), settings)
    assert "'my sentences.csv' holds no sentences" in str(err.value) and str(upload.parent) not in str(err.value)

    upload.write_text('id,text\n1,"' + "x" * 200_000 + '"\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_sentences(str(upload), settings)
    assert str(err.value).startswith("my sentences.csv is not a readable CSV file (line ")
    assert str(upload.parent) not in str(err.value)

    txt = upload.with_name("lines.txt")
    txt.write_text("\n \n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_sentences(str(txt), settings, language="en")
    assert "'lines.txt' holds no sentences" in str(err.value) and str(upload.parent) not in str(err.value)


def test_a_missing_sentence_file_in_a_temp_folder_shows_only_its_name(tmp_path):
    import tempfile

    from engines.eval.sentences import load_sentences

    settings = load_settings({"workspace": tmp_path / "ws"}, env={})
    gone = Path(tempfile.gettempdir()) / "gradio" / "a1b2c3d4e5" / "gone.csv"
    with pytest.raises(InputError) as err:
        load_sentences(str(gone), settings)
    assert str(err.value) == "Sentence file not found: gone.csv"
    mine = Path("/srv/sets/mine.csv")  # outside the temp folder: the full path helps the headless user
    with pytest.raises(InputError, match="Sentence file not found: /srv/sets/mine.csv"):
        load_sentences(str(mine), settings)
