"""ASR with the real Whisper tiny.en (../shared/models) and natural speech (LJSpeech, jfk.flac, Piper).

A random model transcribes nothing right, so it cannot show that speech is kept and non-speech is
not: these tests can. The real model is loaded once for the module; the whole file runs in about a
minute on an idle 2-core CPU (the 32-clip batch/sequential comparison is half of it).
"""

from __future__ import annotations

import dataclasses
import io
import re
import threading
from datetime import timedelta
from pathlib import Path

import jiwer
import numpy as np
import pytest

from config import load_settings
from engines.asr.engine import (
    ASREngine,
    ASROptions,
    loop_reason,
)
from engines.asr.transcript import Transcript, to_srt, to_vtt
from engines.asr.vad import check_speech, no_speech_reason, speech_regions
from engines.core.audio import load_audio, resample, save_wav
from engines.core.errors import InputError
from engines.scoring.metrics import normalize

pytestmark = pytest.mark.real

SR = 16000
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
ANSWER = "Yes, the package arrived this morning."  # Piper renders it; tiny.en gets every word


def _norm(text: str) -> str:
    return normalize(text, "en")


def _level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """The audio scaled to an RMS level of ``dbfs``."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return (audio * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def _white(seconds: float, dbfs: float, seed: int) -> np.ndarray:
    return _level(np.random.default_rng(seed).standard_normal(int(seconds * SR)), dbfs)


def _pink(seconds: float, dbfs: float, seed: int) -> np.ndarray:
    n = int(seconds * SR)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    return _level(np.fft.irfft(spectrum / np.sqrt(f), n), dbfs)


def _hum(seconds: float, dbfs: float, f0: float = 50.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return _level(sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)), dbfs)


def _click_train(seconds: float = 12.0, rate: int = 3) -> np.ndarray:
    """Single-sample clicks: the input that made tiny.en loop ("I'm going to go to the next one." x15)."""
    audio = np.zeros(int(seconds * SR), np.float32)
    audio[:: SR // rate] = 0.5
    return audio


def _all_words(t: Transcript) -> list:
    return [w for s in t.segments for w in (s.words or [])]


class DecodeSpy:
    """Counts Whisper decoder runs (every 30 s window, every fallback temperature) on the real model."""

    def __init__(self, model, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = model.decode

        def decode(mel, options=None, **kwargs):
            self.calls += mel.shape[0] if mel.ndim == 3 else 1
            return original(mel, options, **kwargs)

        monkeypatch.setattr(model, "decode", decode)


# ----- fixtures: one engine and one model for the module -----


@pytest.fixture(scope="module")
def real(real_whisper, tmp_path_factory) -> ASREngine:
    workspace = tmp_path_factory.mktemp("asr-real")
    settings = load_settings({"workspace": workspace, "device": "cpu", "tiny_models": False}, env={})
    engine = ASREngine(settings, threading.RLock())
    engine.load(real_whisper)
    return engine


@pytest.fixture()
def decodes(real, real_whisper, monkeypatch) -> DecodeSpy:
    return DecodeSpy(real.load(real_whisper), monkeypatch)


@pytest.fixture(scope="module")
def jfk(shared_data) -> np.ndarray:
    return load_audio(shared_data / "whisper" / "jfk.flac", sr=SR)[0]


@pytest.fixture(scope="module")
def jfk_words(real, real_whisper, shared_data) -> Transcript:
    return real.transcribe_file(
        shared_data / "whisper" / "jfk.flac", ASROptions(language="en", word_timestamps=True), real_whisper
    )


@pytest.fixture(scope="module")
def ljspeech(shared_data) -> tuple[list[np.ndarray], list[str]]:
    """All 32 LJSpeech clips at 16 kHz, and the transcripts of the first 8."""
    root = shared_data / "ljspeech"
    clips = [load_audio(p, sr=SR)[0] for p in sorted((root / "wavs").glob("LJ001-00*.wav"))]
    lines = (root / "metadata.csv").read_text(encoding="utf-8").splitlines()[1:]
    texts = [line.split("|")[1] for line in lines if line.strip()]
    assert len(clips) == 32 and len(texts) == 8
    return clips, texts


@pytest.fixture(scope="module")
def ljspeech_decoded(real, real_whisper, ljspeech) -> tuple[list[Transcript], list[Transcript]]:
    """(one at a time, batched) for the 32 clips, text-only (what the batched path mirrors)."""
    clips, _ = ljspeech
    options = ASROptions(segment_timestamps=False)
    sequential = [real.transcribe_array(c, options, real_whisper) for c in clips]
    batched = real.transcribe_batch(clips, options, real_whisper)
    return sequential, batched


@pytest.fixture(scope="module")
def piper_16k(piper_say):
    """Piper speech (known text) as 16 kHz samples."""

    def render(sentences: list[str], pauses: list[float] | None = None, name: str = "piper") -> np.ndarray:
        audio, sr = load_audio(piper_say(sentences, pauses=pauses, name=name))
        return resample(audio, sr, SR)

    return render


# ----- accuracy -----


def test_jfk_every_word_right(jfk_words):
    assert jfk_words.language == "en" and jfk_words.notice is None
    assert _norm(jfk_words.text) == _norm(JFK_TEXT), jfk_words.text


def test_ljspeech_corpus_wer(ljspeech, ljspeech_decoded):
    _, texts = ljspeech
    sequential, _ = ljspeech_decoded
    refs = [_norm(t) for t in texts]
    hyps = [_norm(t.text) for t in sequential[:8]]
    wer = jiwer.wer(refs, hyps)
    assert wer <= 0.06, f"corpus WER {wer:.3f}: {list(zip(refs, hyps))}"


def test_batch_equals_one_at_a_time_on_32_clips(ljspeech_decoded):
    sequential, batched = ljspeech_decoded
    assert len(batched) == 32
    for i, (seq, bat) in enumerate(zip(sequential, batched, strict=True)):
        assert seq.text, f"clip {i} gave no text"
        assert (bat.text, bat.language) == (seq.text, seq.language), f"clip {i}"
        assert [round(s.end, 3) for s in bat.segments] == [round(s.end, 3) for s in seq.segments]


# ----- timestamps and subtitles -----


def test_word_timestamps_monotonic_and_inside_the_audio(jfk_words, jfk):
    words = _all_words(jfk_words)
    assert len(words) == len(_norm(JFK_TEXT).split())
    for w in words:
        assert 0.0 <= w.start <= w.end <= jfk_words.audio_seconds, w
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert [w.end for w in words] == sorted(w.end for w in words)
    for s in jfk_words.segments:
        assert s.start <= s.words[0].start and s.words[-1].end <= s.end
        assert "".join(w.word for w in s.words).strip() == s.text.strip()
    # Each word sits on speech the voice-activity detector heard (the pauses are 0.5-1 s long).
    regions = speech_regions(jfk)
    for w in words:
        middle = (w.start + w.end) / 2
        assert any(r.start - 0.5 <= middle <= r.end + 0.5 for r in regions), (w, regions)


def _vtt_ms(stamp: str) -> int:
    parts = [float(p) for p in stamp.split(":")]
    seconds = sum(v * 60**i for i, v in enumerate(reversed(parts)))
    return round(seconds * 1000)


def _check_subtitles(t: Transcript) -> None:
    """to_srt/to_vtt parse with the srt and webvtt-py libraries and agree with the segments."""
    import srt
    import webvtt

    assert t.segments
    expected = [(round(s.start * 1000), round(s.end * 1000), s.text.strip()) for s in t.segments]
    cues = list(srt.parse(to_srt(t)))
    ms = timedelta(milliseconds=1)
    assert [(c.start // ms, c.end // ms, c.content) for c in cues] == expected
    assert [c.index for c in cues] == list(range(1, len(expected) + 1))
    captions = webvtt.from_buffer(io.StringIO(to_vtt(t))).captions
    assert [(_vtt_ms(c.start), _vtt_ms(c.end), c.text) for c in captions] == expected


def test_srt_and_vtt_parse_and_agree_with_segments(jfk_words):
    assert len(jfk_words.segments) >= 2
    _check_subtitles(jfk_words)  # word mode (segments carry words)
    _check_subtitles(
        dataclasses.replace(jfk_words, segments=[dataclasses.replace(s, words=None) for s in jfk_words.segments])
    )


# ----- what reaches Whisper -----


@pytest.mark.parametrize(("clip", "dbfs"), [("LJ001-0002", -40.0), ("jfk", -55.0)])
def test_quiet_speech_is_transcribed(real, real_whisper, shared_data, jfk, ljspeech, clip, dbfs):
    if clip == "jfk":
        audio, text = jfk, JFK_TEXT
    else:
        audio, text = load_audio(shared_data / "ljspeech" / "wavs" / f"{clip}.wav", sr=SR)[0], ljspeech[1][1]
    quiet = _level(audio, dbfs)
    assert no_speech_reason(quiet) is None
    t = real.transcribe_array(quiet, ASROptions(language="en"), real_whisper)
    assert _norm(t.text) == _norm(text), t.text
    assert t.notice is None


def test_silence_and_steady_noise_never_reach_whisper(real, real_whisper, decodes):
    rng = np.random.default_rng(3)
    inputs = {
        "silence": (np.zeros(10 * SR, np.float32), "silent"),
        "dither": ((rng.integers(-1, 2, 10 * SR) / 32768).astype(np.float32), "silent"),
        "white noise": (_white(10, -30, 0), "steady noise"),
        "pink noise": (_pink(10, -30, 1), "steady noise"),
        "50 Hz hum": (_hum(10, -30), "steady noise"),
        "60 Hz hum": (_hum(10, -20, 60.0), "steady noise"),
        "click train": (_click_train(), "clicks"),
    }
    for name, (audio, why) in inputs.items():
        t = real.transcribe_array(audio, ASROptions(language="en"), real_whisper, source=name)
        assert t.text == "" and t.segments == [], name
        assert t.notice and f"No speech detected in {name}" in t.notice and why in t.notice, t.notice
    batched = real.transcribe_batch([a for a, _ in inputs.values()], ASROptions(language="en"), real_whisper)
    assert [b.text for b in batched] == [""] * len(inputs)
    assert all(("voice-activity detector" in b.notice or "silent" in b.notice) for b in batched if b.notice)
    assert all(b.notice for b in batched)
    assert decodes.calls == 0, "non-speech reached the decoder"


def test_speech_after_110_s_of_silence(real, real_whisper, jfk, decodes):
    audio = np.concatenate([jfk, np.zeros(110 * SR, np.float32)])
    assert check_speech(audio).clip_timestamps is not None  # the silence is skipped, not decoded
    t = real.transcribe_array(audio, ASROptions(language="en", word_timestamps=True), real_whisper)
    assert _norm(t.text) == _norm(JFK_TEXT), t.text
    assert t.audio_seconds == pytest.approx(121.0, abs=0.01)
    assert t.segments[-1].end <= len(jfk) / SR + 0.1
    assert all(w.end <= len(jfk) / SR + 0.1 for w in _all_words(t))
    assert decodes.calls <= 2, f"{decodes.calls} decoder runs for one 11 s stretch of speech"


def test_short_answer_in_a_long_room_recording(real, real_whisper, piper_16k, tmp_path, decodes):
    answer = piper_16k([ANSWER], name="answer")
    offset = 50.0
    room = _pink(120, -62, 5) + _hum(120, -70)  # faint room noise and mains hum
    a = int(offset * SR)
    room[a : a + len(answer)] += answer
    share = len(answer) / len(room)
    assert share < 0.05
    path = save_wav(tmp_path / "room.wav", room, SR)
    t = real.transcribe_file(path, ASROptions(language="en", word_timestamps=True), real_whisper)
    assert _norm(t.text) == _norm(ANSWER), t.text
    speech = [(r.start, r.end) for r in speech_regions(answer)]
    first, last = offset + speech[0][0], offset + speech[-1][1]
    words = _all_words(t)
    assert words and first - 0.5 <= words[0].start and words[-1].end <= last + 0.5, (words, first, last)
    assert first - 1.5 <= t.segments[0].start and t.segments[-1].end <= last + 1.5
    assert decodes.calls <= 2
    _check_subtitles(t)  # cue times past the first minute


# ----- loops and the fallback ladder -----


def test_click_train_gives_empty_text_never_a_loop(real, real_whisper):
    clicks = _click_train()
    for t in (
        real.transcribe_array(clicks, ASROptions(), real_whisper),
        real.transcribe_batch([clicks], ASROptions(), real_whisper)[0],
    ):
        assert t.text == "" and t.notice and "No speech detected" in t.notice


def test_loop_guard_drops_what_the_fallback_cannot_fix(real, real_whisper, decodes):
    # With the detector off the click train reaches the decoder; at one temperature tiny.en loops on it
    # (compression ratio 4+ within 64 tokens, 11.5 over a whole window).
    clicks = _click_train()
    forced = ASROptions(language="en", vad=False, temperature_increment=None, max_tokens=64)
    t = real.transcribe_array(clicks, forced, real_whisper)
    windows = decodes.calls
    assert windows >= 1
    assert t.text == "" and t.segments == []
    assert t.notice and "repetition loop" in t.notice, t.notice
    # The default ladder redoes each window at higher temperatures: whatever comes out is no loop.
    t = real.transcribe_array(clicks, dataclasses.replace(forced, temperature_increment=0.2), real_whisper)
    assert decodes.calls - windows > windows
    assert loop_reason(t.text) is None, t.text
    assert t.text == "" or t.notice is None


def test_fallback_ladder_is_seeded_and_batched_the_same(real, real_whisper, shared_data):
    # Speech under as much white noise (0 dB SNR): greedy decoding is improbable (avg log-prob -1.5), so
    # Whisper climbs the ladder; sampling at temperature > 0 must still give the same text every time.
    clean = load_audio(shared_data / "ljspeech" / "wavs" / "LJ001-0002.wav", sr=SR)[0]
    level = 20 * np.log10(np.sqrt(np.mean(np.square(clean, dtype=np.float64))))
    noisy = (clean + _white(len(clean) / SR, level, 7)[: len(clean)]).astype(np.float32)
    options = ASROptions(language="en", segment_timestamps=False)
    first = real.transcribe_array(noisy, options, real_whisper)
    assert first.text and first.segments[0].temperature > 0, first
    # The batch decodes both greedily, then redoes the noisy one through the sequential path: a rerun.
    batched = real.transcribe_batch([clean, noisy], options, real_whisper)
    assert batched[1].text == first.text and batched[1].segments[0].temperature == first.segments[0].temperature
    assert batched[0].segments[0].temperature == 0.0
    assert _norm(batched[0].text) == _norm("in being comparatively modern.")


# ----- the checkpoint's alignment heads -----


def test_alignment_heads_from_the_checkpoint(real, real_whisper, piper_16k):
    import base64
    import gzip

    import torch

    model = real.load(real_whisper)
    stored = torch.load(real_whisper, map_location="cpu", weights_only=True)["alignment_heads"]
    dims = model.dims
    mask = np.frombuffer(gzip.decompress(base64.b85decode(stored)), dtype=bool)  # whisper's own format
    expected = torch.from_numpy(mask.reshape(dims.n_text_layer, dims.n_text_head).copy())
    loaded = model.alignment_heads.to_dense()
    assert torch.equal(loaded, expected)
    default = torch.zeros_like(loaded)
    default[dims.n_text_layer // 2 :] = True  # whisper's fallback: every head of the upper half
    assert not torch.equal(loaded, default), "the stored heads were not applied"

    # Word times with those heads: sentences with known 1.2 s pauses between them.
    sentences = ["Printing differs from most arts and crafts.", "The quick brown fox jumps over the lazy dog."]
    sentences += ["She sells sea shells by the sea shore."]
    parts = [piper_16k([s], name=f"heads{i}") for i, s in enumerate(sentences)]
    spans, pieces, clock = [], [], 0.0
    for audio in parts:
        voiced = np.nonzero(np.abs(audio) > 0.01)[0]
        spans.append((clock + voiced[0] / SR, clock + voiced[-1] / SR))
        pieces += [audio, np.zeros(int(1.2 * SR), np.float32)]
        clock += len(audio) / SR + 1.2
    t = real.transcribe_array(np.concatenate(pieces), ASROptions(language="en", word_timestamps=True), real_whisper)
    words = _all_words(t)
    assert len(words) >= 20
    assert [w.start for w in words] == sorted(w.start for w in words)
    outside = [w for w in words if not any(a - 0.3 <= (w.start + w.end) / 2 <= b + 0.3 for a, b in spans)]
    assert len(outside) <= 1, (outside, spans)
    # The sentences after a pause: the first word starts near the onset (not inside the pause).
    starts = [min(abs(w.start - a) for w in words) for a, _ in spans[1:]]
    assert max(starts) < 0.3, (starts, spans)


# ----- English-only model -----


def test_english_only_model_refuses_other_languages(real, real_whisper, jfk, tmp_path, decodes):
    name = Path(real_whisper).name
    german = ASROptions(language="German")
    path = save_wav(tmp_path / "jfk.wav", jfk, SR)
    for call in (
        lambda: real.transcribe_array(jfk, german, real_whisper),
        lambda: real.transcribe_batch([jfk], german, real_whisper),
        lambda: real.transcribe_file(path, german, real_whisper),
        lambda: real.check_language(real_whisper, "de"),
    ):
        with pytest.raises(InputError) as info:
            call()
        message = str(info.value)
        assert name in message and "English-only" in message and "German (de)" in message, message
        assert "without '.en'" in message and re.search(r"'small'|'tiny'", message), message
    with pytest.raises(InputError, match="cannot translate"):
        real.check_language(real_whisper, "en", task="translate")
    assert real.check_language(real_whisper, "en") == "en"
    assert real.check_language(real_whisper, "auto") is None
    assert decodes.calls == 0
