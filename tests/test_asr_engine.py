"""ASR engine with the tiny random Whisper (plumbing, formats, errors, batching) and, when present, real weights."""

from __future__ import annotations

import csv
import gc
import json
import re
import shutil
import threading
import urllib.error
import urllib.request
import weakref
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engines.asr.engine import (
    ASREngine,
    ASROptions,
    alignment_heads_dump,
    check_options,
    loop_reason,
    needs_fallback,
    normalize_language,
    temperatures,
    whisper_languages,
    window_is_silent,
)
from engines.asr.transcript import Segment, Transcript, Word, save_outputs, to_json, to_srt, to_txt, to_vtt
from engines.asr.vad import check_speech, no_speech_reason
from engines.core.audio import load_audio, save_wav
from engines.core.errors import AudioError, InputError, MissingWeightsError
from engines.tiny import build_tiny_whisper
from tests.conftest import replace_settings

SR = 16000
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


@pytest.fixture()
def asr(settings, tiny_models) -> ASREngine:
    return ASREngine(settings, threading.RLock(), tiny=tiny_models)


@pytest.fixture(scope="module")
def sentence(speak) -> Path:
    return speak("The quick brown fox jumps over the lazy dog.", "en", name="fox")


def _clip(path: Path) -> np.ndarray:
    return load_audio(path, sr=SR)[0]


def _same(seq: Transcript, bat: Transcript) -> None:
    """Content equality of a sequential (text-only) and a batched transcript."""
    assert bat.text.strip() == seq.text.strip()
    assert bat.language == seq.language
    assert [round(s.end, 3) for s in bat.segments] == [round(s.end, 3) for s in seq.segments]
    for a, b in zip(seq.segments, bat.segments, strict=True):
        # Sensitive to the input features: a mel padded differently moves avg_logprob by ~1e-3.
        assert b.avg_logprob == pytest.approx(a.avg_logprob, rel=1e-5, abs=1e-7)
        assert b.no_speech_prob == pytest.approx(a.no_speech_prob, rel=1e-4, abs=1e-7)
    assert bat.audio_seconds == pytest.approx(seq.audio_seconds)


# ----- decoding files -----


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "ogg", "m4a"])
def test_transcribes_every_format(asr, speak, fmt):
    wav = speak("Hello world, this is a test of the speech recognizer.", "en", name=f"fmt-{fmt}")
    path = speak("Hello world, this is a test of the speech recognizer.", "en", fmt=fmt, name=f"fmt-{fmt}")
    expected = sf.info(str(wav)).duration
    t = asr.transcribe_file(path, ASROptions(language="en"))
    assert t.source == path.name
    assert t.audio_seconds == pytest.approx(expected, abs=0.1)  # codecs pad a few ms
    assert t.text and t.segments and t.notice is None
    assert t.language == "en"
    assert t.seconds > 0 and t.rtf == pytest.approx(t.seconds / t.audio_seconds)


def test_hi_res_stereo_flac(asr, sentence, tmp_path):
    mono, sr = load_audio(sentence, sr=44100)
    stereo = np.stack([mono, 0.5 * mono], axis=1)
    path = tmp_path / "stereo.flac"
    sf.write(str(path), stereo, 44100, subtype="PCM_24")
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_24")
    t = asr.transcribe_file(path, ASROptions(language="en"))
    assert t.audio_seconds == pytest.approx(info.duration, abs=0.01)
    assert t.text


def test_jfk_flac(asr, shared_data, tmp_path):
    src = tmp_path / "jfk.flac"
    shutil.copy(shared_data / "whisper" / "jfk.flac", src)
    t = asr.transcribe_file(src)
    assert t.audio_seconds == pytest.approx(sf.info(str(src)).duration, abs=0.01)
    assert t.language in whisper_languages()


# ----- options -----


def test_language_forced_and_auto(asr, sentence):
    forced = asr.transcribe_file(sentence, ASROptions(language="de"))
    assert forced.language == "de"
    assert asr.transcribe_file(sentence, ASROptions(language="zh-cn")).language == "zh"
    auto = asr.transcribe_file(sentence, ASROptions(language=None))
    assert auto.language in whisper_languages()
    # whisper.transcribe detects inside; the batched path detects itself: they must agree.
    batched = asr.transcribe_batch([_clip(sentence)], ASROptions(language="auto"))
    assert batched[0].language == auto.language


def test_translate_task_decodes_differently(asr, sentence):
    transcribed = asr.transcribe_file(sentence, ASROptions(language="en", segment_timestamps=False))
    translated = asr.transcribe_file(sentence, ASROptions(language="en", task="translate", segment_timestamps=False))
    assert translated.text and transcribed.text
    # The task token is part of the decoder's prompt, so the scores change (the tiny model's words may not).
    assert translated.segments[0].avg_logprob != pytest.approx(transcribed.segments[0].avg_logprob, rel=1e-4)


def test_word_timestamps(asr, sentence):
    t = asr.transcribe_file(sentence, ASROptions(language="en", word_timestamps=True))
    words = [w for s in t.segments for w in (s.words or [])]
    assert words, "word timestamps asked for, no words returned"
    for w in words:
        assert 0.0 <= w.start <= w.end <= t.audio_seconds + 0.05
        assert 0.0 <= w.probability <= 1.0
    for s in t.segments:
        assert "".join(w.word for w in s.words).strip() == s.text.strip()


def test_option_validation():
    assert normalize_language("auto") is None
    assert normalize_language("zh-cn") == "zh"
    assert normalize_language("German") == "de"
    with pytest.raises(InputError, match="Unknown language"):
        normalize_language("klingon")
    with pytest.raises(InputError, match="transcribe"):
        check_options(ASROptions(task="summarize"))
    with pytest.raises(InputError, match="Beam size"):
        check_options(ASROptions(beam_size=0))
    with pytest.raises(InputError, match="Temperature"):
        check_options(ASROptions(temperature=3.0))
    with pytest.raises(InputError, match="temperature_increment"):
        check_options(ASROptions(temperature_increment=0.0))


def test_fallback_ladder_and_loop_rules():
    assert temperatures(ASROptions()) == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # whisper's default ladder
    assert temperatures(ASROptions(temperature_increment=None)) == (0.0,)
    assert temperatures(ASROptions(temperature=0.5)) == (0.5, 0.7, 0.9)
    assert needs_fallback(2.5, -0.2, 0.0)  # too repetitive
    assert needs_fallback(1.2, -1.2, 0.1)  # too improbable
    assert not needs_fallback(1.2, -1.2, 0.9)  # speechless: skipped, not redone
    assert not needs_fallback(1.6, -0.3, 0.9)
    loop = " I'm going to go to the next one." * 15
    assert "compresses" in loop_reason(loop, 11.5)
    assert loop_reason(loop) is not None  # the ratio is computed when not given
    assert "repeated 5 times" in loop_reason("the the the the the end")
    assert loop_reason("No, no, no, that is not what I said.") is None  # real speech repeats a little
    assert loop_reason("And so my fellow Americans, ask not what your country can do for you.", 1.3) is None


# ----- writers -----


def _hand_transcript() -> Transcript:
    segments = [
        Segment(0.0, 1.5, " First line."),
        Segment(1.5, 3.25, " Second --> line."),
        Segment(3723.004, 3725.5, " After an hour."),
    ]
    return Transcript(
        text="First line. Second --> line. After an hour.",
        language="en",
        segments=segments,
        audio_seconds=3726.0,
        seconds=1.0,
        rtf=1 / 3726,
    )


def test_srt_format():
    srt = to_srt(_hand_transcript())
    blocks = srt.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["1", "2", "3"]
    times = [b.splitlines()[1] for b in blocks]
    assert all(re.fullmatch(r"\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}", t) for t in times)
    assert times[0] == "00:00:00,000 --> 00:00:01,500"
    assert times[2] == "01:02:03,004 --> 01:02:05,500"
    assert blocks[1].splitlines()[2] == "Second -> line."  # the cue arrow cannot appear in text


def test_vtt_txt_json_formats():
    t = _hand_transcript()
    vtt = to_vtt(t)
    assert vtt.startswith("WEBVTT\n\n")
    cues = re.findall(r"^([\d:.]+) --> ([\d:.]+)$", vtt, flags=re.M)
    assert cues[0] == ("00:00.000", "00:01.500")
    assert cues[2] == ("01:02:03.004", "01:02:05.500")
    assert to_txt(t).splitlines() == ["First line.", "Second --> line.", "After an hour."]
    data = json.loads(to_json(t))
    assert data["text"] == t.text and data["language"] == "en"
    t.segments[0].no_speech_prob = float("nan")
    assert json.loads(to_json(t))["segments"][0]["no_speech_prob"] is None
    assert [s["end"] for s in data["segments"]] == [1.5, 3.25, 3725.5]


def test_word_level_subtitles():
    words = [Word(0.0, 0.4, " Hello", 0.9), Word(0.5, 1.0, " there.", 0.8)]
    t = Transcript(
        text="Hello there.",
        language="en",
        segments=[Segment(0.0, 1.0, " Hello there.", words)],
        audio_seconds=1.0,
        seconds=0.1,
        rtf=0.1,
    )
    assert "00:00:00,000 --> 00:00:01,000\nHello there." in to_srt(t)
    assert json.loads(to_json(t))["segments"][0]["words"][1]["word"] == " there."
    # A segment without words keeps its cue, and the cue arrow is escaped, words or not.
    t.segments.append(Segment(1.0, 2.0, " A --> B."))
    t.segments.append(Segment(2.0, 3.0, " Last.", [Word(2.0, 3.0, " Last.", 0.9)]))
    assert to_srt(t).count(" --> ") == 3 and "\nA -> B.\n" in to_srt(t)
    assert "\n00:02.000 --> 00:03.000\nLast.\n" in to_vtt(t)


def test_save_outputs_from_real_transcript(asr, sentence, tmp_path):
    t = asr.transcribe_file(sentence, ASROptions(language="en", word_timestamps=True))
    paths = save_outputs(t, tmp_path / "out", "my file (1).wav")
    assert set(paths) == {"txt", "srt", "vtt", "json"}
    assert all(p.parent == tmp_path / "out" and p.stem == "my_file_1" for p in paths.values())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths.values())
    assert json.loads(paths["json"].read_text())["text"] == t.text
    assert paths["vtt"].read_text().startswith("WEBVTT")
    assert paths["srt"].read_text().startswith("1\n")


# ----- silence and bad input -----


def test_silence_gives_empty_text_and_notice(asr, tmp_path):
    path = save_wav(tmp_path / "quiet.wav", np.zeros(SR * 2, np.float32), SR)
    t = asr.transcribe_file(path)
    assert t.text == "" and t.segments == []
    assert t.notice and "No speech detected in quiet.wav" in t.notice


def test_steady_noise_gives_empty_text_and_notice(asr, tmp_path):
    noise = 0.1 * np.random.default_rng(0).standard_normal(SR * 3).astype(np.float32)
    t = asr.transcribe_file(save_wav(tmp_path / "hiss.wav", noise, SR))
    assert t.text == "" and "steady noise" in t.notice


def test_noise_and_clicks_are_judged_by_the_detector(tmp_path):
    rng = np.random.default_rng(1)
    clicks = np.zeros(SR * 4, np.float32)
    clicks[:: SR // 3] = 0.5
    assert "steady noise" in no_speech_reason(0.001 * rng.standard_normal(SR * 3).astype(np.float32))
    assert "clicks" in no_speech_reason(clicks)
    assert "silent" in no_speech_reason((rng.integers(-1, 2, SR * 3) / 32768).astype(np.float32))  # dither
    assert check_speech(np.zeros(SR, np.float32), vad=False).reason  # digital silence is never decoded
    assert check_speech(clicks, vad=False).spans == ((0.0, 4.0),)  # vad=False: everything else is


def test_batch_notices_name_the_callers_labels(asr, sentence):
    silent = np.zeros(SR * 2, np.float32)
    results = asr.transcribe_batch(
        [_clip(sentence), silent], ASROptions(language="en"), sources=["fox.wav", "room.wav"]
    )
    assert results[1].text == "" and "room.wav" in results[1].notice and results[1].source == "room.wav"
    assert results[0].source == "fox.wav"
    unlabelled = asr.transcribe_batch([silent], ASROptions(language="en"))
    assert "clip 0" in unlabelled[0].notice and unlabelled[0].source is None
    with pytest.raises(InputError, match="2 labels for 1 clips"):
        asr.transcribe_batch([silent], ASROptions(language="en"), sources=["a", "b"])


def test_speech_check_skips_long_silences_only(speak):
    speech = _clip(speak("The quick brown fox jumps over the lazy dog.", "en", name="fox-sparse"))
    seconds = len(speech) / SR
    short = check_speech(np.concatenate([np.zeros(SR, np.float32), speech]))
    assert short.whole and short.clip_timestamps is None  # a 1 s lead-in is no reason to cut
    audio = np.concatenate([np.zeros(20 * SR, np.float32), speech, np.zeros(40 * SR, np.float32), speech])
    check = check_speech(audio)
    assert check.reason is None and not check.whole
    assert len(check.spans) == 2
    (a0, a1), (b0, b1) = check.spans
    assert 18.5 < a0 < 20.0 and 20.0 + seconds <= a1 < 22.0 + seconds
    assert b1 == pytest.approx(len(audio) / SR)
    assert check.clip_timestamps == [a0, a1, b0, b1]
    assert [r.start for r in check.regions] == sorted(r.start for r in check.regions)
    louder = check_speech(audio * 0.001)  # -60 dB: the detector does not care about the level
    assert louder.spans == check.spans


def test_sparse_speech_keeps_original_times(asr, speak):
    speech = _clip(speak("Good morning, how are you today?", "en", name="sparse"))
    audio = np.concatenate([np.zeros(45 * SR, np.float32), speech, np.zeros(30 * SR, np.float32)])
    t = asr.transcribe_array(audio, ASROptions(language="en", word_timestamps=True))
    assert t.audio_seconds == pytest.approx(len(audio) / SR)
    span = check_speech(audio).spans[0]
    assert t.segments and all(span[0] <= s.start <= s.end <= span[1] + 0.05 for s in t.segments)
    # The batched path decodes such a clip alone, text-only: the same as transcribe_array text-only.
    short = np.concatenate([np.zeros(12 * SR, np.float32), speech, np.zeros(8 * SR, np.float32)])
    text_only = ASROptions(language="en", segment_timestamps=False)
    seq = asr.transcribe_array(short, text_only)
    assert seq.segments[0].start >= 10.0
    _same(seq, asr.transcribe_batch([short], text_only)[0])


def test_speech_is_not_mistaken_for_silence(speak, shared_data):
    clips = [_clip(speak(text, lang)) for text, lang in [("Yes.", "en"), ("Guten Morgen, wie geht es?", "de")]]
    clips += [_clip(p) for p in sorted((shared_data / "ljspeech" / "wavs").glob("LJ001-00*.wav"))[:12]]
    clips.append(_clip(shared_data / "whisper" / "jfk.flac"))
    assert [no_speech_reason(c) for c in clips] == [None] * len(clips)


def test_whisper_no_speech_rule():
    assert window_is_silent(0.9, -1.5)
    assert window_is_silent(0.61, -1.0)
    assert not window_is_silent(0.9, -0.5)  # confident text despite the no-speech probability
    assert not window_is_silent(0.3, -3.0)


def test_too_short_clip(asr, tmp_path):
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(0.2 * SR)) / SR).astype(np.float32)
    with pytest.raises(AudioError, match=r"0\.20 s long; at least 0\.5 s"):
        asr.transcribe_file(save_wav(tmp_path / "blip.wav", tone, SR))


def test_too_long_clip(asr, settings, sentence):
    engine = ASREngine(replace_settings(settings, max_asr_seconds=1.0), asr.gpu_lock, tiny=asr.tiny)
    with pytest.raises(AudioError, match="max_asr_seconds"):
        engine.transcribe_file(sentence)


def test_not_audio_and_empty_files(asr, tmp_path):
    fake = tmp_path / "notes.wav"
    fake.write_text("this is not audio at all\n" * 50)
    with pytest.raises(AudioError, match="notes.wav"):
        asr.transcribe_file(fake)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        asr.transcribe_file(empty)
    with pytest.raises(AudioError, match="not found"):
        asr.transcribe_file(tmp_path / "missing.wav")


# ----- models -----


def test_missing_size_offline(settings, tiny_models, tmp_path, sentence, monkeypatch):
    cache = tmp_path / "whisper-cache"
    cache.mkdir()
    engine = ASREngine(replace_settings(settings, whisper_cache_dir=cache), threading.RLock(), tiny=tiny_models)

    # Stand-in for "no internet": on a connected machine this would start a 460 MB download.
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(MissingWeightsError) as info:
        engine.transcribe_file(sentence, model_id="small")
    message = str(info.value)
    assert str(cache / "small.pt") in message and "whisper.load_model('small')" in message
    assert engine.holder.loaded is None
    assert ("small", "small") in engine.list_models()  # listed, not marked as downloaded


def test_missing_checkpoint_path(asr, sentence, tmp_path):
    missing = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(MissingWeightsError, match=re.escape(str(missing))):
        asr.transcribe_file(sentence, model_id=str(missing))


def test_not_a_checkpoint(asr, sentence, tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="bogus.pt"):
        asr.load(str(bogus))


def test_list_models_and_switch_unloads(asr, settings, tiny_models, sentence):
    models_dir = settings.workspace_sub("models", "whisper")
    local = models_dir / "my-whisper.pt"
    shutil.copy(tiny_models.whisper_path, local)
    ids = [model_id for _, model_id in asr.list_models()]
    whisper_ids = [i for i in ids if not i.startswith("faster-whisper:")]  # faster-whisper's entries come last
    assert ids[0] == "tiny-random" and ids[1] == "tiny" and whisper_ids[-1] == str(local)
    assert asr.default_model() == "tiny-random"

    first = asr.load()
    ref = weakref.ref(first)
    assert asr.status()["loaded_model"] == "tiny-random"
    del first
    t = asr.transcribe_file(sentence, ASROptions(language="en"), model_id="my-whisper")  # a name under models/whisper
    assert t.text
    gc.collect()
    assert ref() is None, "the previous Whisper model is still in memory after the switch"
    status = asr.status()
    assert status["loaded_model"] == "my-whisper" and status["device"] == "cpu"
    assert asr.unload() is True and asr.status()["loaded_model"] is None
    assert asr.unload() is False


def _tiny_checkpoint(tiny_models, path: Path, **extra) -> Path:
    import torch

    checkpoint = torch.load(tiny_models.whisper_path, map_location="cpu", weights_only=True)
    torch.save({**checkpoint, **extra}, path)
    return path


def test_checkpoint_alignment_heads_are_applied(asr, tiny_models, tmp_path):
    import torch

    plain = asr.load(str(tiny_models.whisper_path))
    assert plain.alignment_heads.to_dense().tolist() == [[True, True]]  # whisper's fallback: the upper half
    mask = [[False, True]]  # 1 text layer x 2 heads
    dump = alignment_heads_dump(mask, 1, 2)
    for i, stored in enumerate([dump, dump.decode(), torch.tensor(mask), [[0, 1]], torch.tensor(mask).to_sparse()]):
        path = _tiny_checkpoint(tiny_models, tmp_path / f"heads{i}.pt", alignment_heads=stored)
        model = asr.load(str(path))
        assert model.alignment_heads.to_dense().tolist() == mask, type(stored)
    bad = _tiny_checkpoint(tiny_models, tmp_path / "bad-heads.pt", alignment_heads=[[3, 0]])
    with pytest.raises(InputError, match="bad-heads.pt.*alignment head"):
        asr.load(str(bad))
    with pytest.raises(ValueError, match="shape"):
        alignment_heads_dump(np.ones((3, 3), bool), 1, 2)


def test_english_only_models_refuse_other_languages(asr, settings, tiny_models, sentence, tmp_path, monkeypatch):

    def no_download(*args, **kwargs):
        raise AssertionError("check_language must not download or load a size")

    monkeypatch.setattr(urllib.request, "urlopen", no_download)
    with pytest.raises(InputError) as info:
        asr.check_language("tiny.en", "fr")
    message = str(info.value)
    assert "'tiny.en' is English-only" in message and "French (fr)" in message and "'tiny'" in message
    with pytest.raises(InputError, match="cannot translate"):
        asr.check_language("base.en", None, task="translate")
    assert asr.check_language("small", "fr") == "fr" and asr.check_language("tiny.en", "English") == "en"
    assert asr.check_language("medium.en", "auto") is None
    assert asr.check_language(None, "zh-cn") == "zh"  # the tiny model has the multilingual vocabulary
    assert asr.holder.loaded is None

    english = build_tiny_whisper(tmp_path / "my-english.pt", english_only=True)
    with pytest.raises(InputError, match=r"'my-english.pt' is English-only: it cannot transcribe German \(de\)"):
        asr.check_language(str(english), "de")
    assert asr.holder.loaded is None  # decided from the checkpoint's dims, without loading it
    clip = _clip(sentence)
    for call in (
        lambda: asr.transcribe_array(clip, ASROptions(language="de"), model_id=str(english)),
        lambda: asr.transcribe_batch([clip], ASROptions(language="de"), model_id=str(english)),
        lambda: asr.transcribe_file(sentence, ASROptions(language="de"), model_id=str(english)),
    ):
        with pytest.raises(InputError, match="without '.en'"):
            call()
    assert asr.holder.loaded is None


def test_tiny_id_needs_tiny_mode(settings, sentence):
    engine = ASREngine(replace_settings(settings, tiny_models=False), threading.RLock(), tiny=None)
    assert engine.default_model() == "small"
    assert "tiny-random" not in [m for _, m in engine.list_models()]
    with pytest.raises(InputError, match="tiny-model mode"):
        engine.load("tiny-random")


# ----- batching -----


def test_batch_equals_sequential_ljspeech(asr, shared_data):
    with open(shared_data / "ljspeech" / "metadata.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="|"))
    clips = [_clip(shared_data / "ljspeech" / row["audio_file"]) for row in rows]
    assert len(clips) == 8
    options = ASROptions(segment_timestamps=False)  # auto language: detection is batched too
    sequential = [asr.transcribe_array(c, options) for c in clips]
    batched = asr.transcribe_batch(clips, options, batch_size=3)
    assert len(batched) == len(clips)
    for seq, bat in zip(sequential, batched, strict=True):
        assert seq.text  # non-empty, so the comparison means something
        _same(seq, bat)


def test_batch_equals_sequential_rendered(asr, speak):
    texts = [
        ("Good morning, how are you today?", "en"),
        ("Le chat dort sur le canapé.", "fr"),
        ("Das Wetter ist heute sehr schön.", "de"),
        ("Yes.", "en"),
    ]
    clips = [_clip(speak(text, lang)) for text, lang in texts]
    for options in (
        ASROptions(language="en", segment_timestamps=False),
        ASROptions(language=None, task="translate", segment_timestamps=False),
    ):
        sequential = [asr.transcribe_array(c, options) for c in clips]
        batched = asr.transcribe_batch(clips, options, batch_size=16)
        for seq, bat in zip(sequential, batched, strict=True):
            _same(seq, bat)


def test_batch_beam_search_equals_sequential(asr, speak):
    clips = [_clip(speak("One.", "en")), _clip(speak("Two.", "en"))]
    options = ASROptions(language="en", beam_size=2, segment_timestamps=False)
    sequential = [asr.transcribe_array(c, options) for c in clips]
    for seq, bat in zip(sequential, asr.transcribe_batch(clips, options), strict=True):
        _same(seq, bat)


def test_batch_mixed_lengths_keep_order(asr, speak, tmp_path):
    short = [_clip(speak("Short clip number one.", "en")), _clip(speak("And a second one.", "en"))]
    pause = np.zeros(SR // 2, np.float32)
    piece = np.concatenate([short[0], pause, short[1], pause])
    long = np.tile(piece, int(np.ceil(31 * SR / len(piece))))
    assert len(long) > 30 * SR
    silent = np.zeros(SR, np.float32)
    clips = [short[0], long, silent, short[1]]
    options = ASROptions(language="en")
    out = asr.transcribe_batch(clips, options, batch_size=2)
    assert [round(t.audio_seconds, 3) for t in out] == [round(len(c) / SR, 3) for c in clips]
    assert out[1].segments and out[1].segments[-1].end > 30.0  # the long one went through transcribe()
    assert out[2].text == "" and "No speech" in out[2].notice
    text_only = ASROptions(language="en", segment_timestamps=False)
    _same(asr.transcribe_array(short[1], text_only), out[3])
    with pytest.raises(AudioError, match="Clip 1"):
        asr.transcribe_batch([short[0], np.zeros(0, np.float32)], options)


@pytest.mark.gpu
def test_batch_equals_sequential_on_cuda(settings, tiny_models, speak):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    engine = ASREngine(replace_settings(settings, device="cuda"), threading.RLock(), tiny=tiny_models)
    clips = [_clip(speak(text, "en")) for text in ("One two three.", "The rain in Spain stays mainly in the plain.")]
    options = ASROptions(segment_timestamps=False)
    sequential = [engine.transcribe_array(c, options) for c in clips]
    batched = engine.transcribe_batch(clips, options)
    assert engine.status()["device"].startswith("cuda")
    for seq, bat in zip(sequential, batched, strict=True):  # fp16 on CUDA: compare content, not the last bits
        assert (bat.text, bat.language) == (seq.text, seq.language)


# ----- real weights -----


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


@pytest.mark.real_weights
def test_real_tiny_on_jfk(settings, shared_data):
    cache = Path.home() / ".cache" / "whisper"
    if not (cache / "tiny.pt").is_file():
        pytest.skip("needs ~/.cache/whisper/tiny.pt (python -c \"import whisper; whisper.load_model('tiny')\")")
    import jiwer

    engine = ASREngine(replace_settings(settings, tiny_models=False, whisper_cache_dir=cache), threading.RLock())
    t = engine.transcribe_file(shared_data / "whisper" / "jfk.flac", model_id="tiny")
    assert t.language == "en"
    assert jiwer.wer(_words(JFK_TEXT), _words(t.text)) < 0.2, t.text
