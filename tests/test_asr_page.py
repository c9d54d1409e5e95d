"""ASR tab: the plain function and the guarded callback called directly, the layout, and the named API."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from config import XTTS_LANGUAGES, load_settings
from engines import Engines
from engines.asr.engine import ASREngine, ASROptions
from engines.core.audio import save_wav
from pages import asr as page
from pages.common import GPU_CONCURRENCY_ID

ELEM_IDS = [
    "asr-upload",
    "asr-mic",
    "asr-model",
    "asr-language",
    "asr-transcribe",
    "asr-text",
    "asr-segments",
    "asr-files",
    "asr-stats",
]


@pytest.fixture(scope="module")
def asr_engines(tmp_path_factory, tiny_models) -> Engines:
    """An engine set holding only the ASR engine (the other tabs are not under test here)."""
    root = tmp_path_factory.mktemp("asr-page")
    settings = load_settings({"workspace": root / "workspace", "tiny_models": True, "device": "cpu"}, env={})
    engines = Engines.create(settings, tiny=tiny_models)
    return engines


@pytest.fixture(scope="module")
def clips(speak) -> list[Path]:
    return [
        speak("Good morning, this is the first file.", name="first"),
        speak("And here is the second file, as an MP3.", fmt="mp3", name="second"),
    ]


def values(files=None, recording=None, model="tiny-random", language="en", task="transcribe", words=False, beam=0):
    """The Transcribe button's inputs by name, as the page's form hands them to the callback."""
    return {
        "files": files,
        "recording": recording,
        "model": model,
        "language": language,
        "task": task,
        "word_timestamps": words,
        "beam_size": beam,
    }


def gr_error(call) -> str:
    with pytest.raises(gr.Error) as exc:
        call()
    return exc.value.message


def test_several_files_one_bad(asr_engines, clips, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio\n" * 20)
    files = [str(clips[0]), str(bad), str(clips[1])]
    with pytest.warns(UserWarning, match="Skipped broken.wav"):
        text, language, rows, outputs, stats = page.transcribe_callback(asr_engines, values(files=files))
    assert "=== first.wav ===" in text and "=== second.mp3 ===" in text and "broken" not in text
    assert language == "first.wav: English (en); second.mp3: English (en)"
    assert {row[0] for row in rows} == {"first.wav", "second.mp3"}
    assert all(row[1] <= row[2] for row in rows)
    assert len(outputs) == 8 and all(Path(p).is_file() for p in outputs)
    assert sorted(Path(p).suffix for p in outputs) == sorted([".txt", ".srt", ".vtt", ".json"] * 2)
    assert all(Path(p).parent == asr_engines.asr.outputs_dir for p in outputs)
    assert "first.wav" in stats and "second.mp3" in stats and "**total**" in stats and "RTF" in stats
    saved = [json.loads(Path(p).read_text()) for p in outputs if p.endswith(".json")]
    assert {s["source"] for s in saved} == {"first.wav", "second.mp3"}


def test_recording_alone(asr_engines, clips):
    result = page.transcribe(asr_engines, values(recording=str(clips[0]), words=True))
    assert "===" not in result.text and result.text == result.transcripts[0].text
    assert result.language == "English (en)"
    assert result.transcripts[0].source == page.RECORDING
    assert any(s.words for s in result.transcripts[0].segments)
    assert "Tiny random model" in result.stats


def test_auto_language_and_translate(asr_engines, clips):
    result = page.transcribe(asr_engines, values(files=[str(clips[0])], language="auto", task="translate"))
    code = result.transcripts[0].language
    assert code and result.language.endswith(f"({code})")


def test_silence_warns(asr_engines, tmp_path):
    quiet = save_wav(tmp_path / "quiet.wav", np.zeros(16000, np.float32), 16000)
    with pytest.warns(UserWarning, match="No speech detected in quiet.wav"):
        text, *_ = page.transcribe_callback(asr_engines, values(files=[str(quiet)]))
    assert text == ""


def test_errors_are_clean_messages(asr_engines, tmp_path):
    assert "Nothing to transcribe" in gr_error(lambda: page.transcribe_callback(asr_engines, values()))
    empty = tmp_path / "empty.m4a"
    empty.write_bytes(b"")
    bad = tmp_path / "bad.flac"
    bad.write_text("nope")
    message = gr_error(lambda: page.transcribe_callback(asr_engines, values(files=[str(empty), str(bad)])))
    assert "No file could be transcribed" in message and "empty.m4a" in message and "bad.flac" in message
    assert "Unknown task" in gr_error(
        lambda: page.transcribe_callback(asr_engines, values(files=[str(bad)], task="summarize"))
    )


def test_missing_weights_message(asr_engines, clips, tmp_path, monkeypatch):
    import dataclasses

    settings = dataclasses.replace(asr_engines.settings, whisper_cache_dir=tmp_path / "cache")
    engines = Engines.create(settings)
    engines.asr = ASREngine(settings, threading.RLock())

    def offline(*args, **kwargs):  # no network: on a connected machine this would download 460 MB
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    message = gr_error(lambda: page.transcribe_callback(engines, values(files=[str(clips[0])], model="small")))
    assert str(tmp_path / "cache" / "small.pt") in message


def test_options_and_languages():
    assert page.build_options(values(language="auto", beam=0)).language is None
    assert page.build_options(values(language="de", task="translate", words=True, beam=5)).beam_size == 5
    assert page.build_options(values(language="de", task="translate", words=True, beam=1)).beam_size is None
    assert page.build_options({}) == ASROptions()  # names left out keep the defaults
    choices = page.language_choices()
    codes = [code for _, code in choices]
    assert codes[0] == "auto" and codes[1:18] == list(XTTS_LANGUAGES)
    assert "af" in codes and "zh" not in codes and len(codes) == len(set(codes))


def test_build_layout_and_named_api(asr_engines):
    with gr.Blocks() as demo:
        page.build(asr_engines)
    elem_ids = {block.elem_id for block in demo.blocks.values()}
    assert set(ELEM_IDS) <= elem_ids
    fn = next(f for f in demo.fns.values() if f.api_name == "asr_transcribe")
    assert fn.concurrency_id == GPU_CONCURRENCY_ID and fn.concurrency_limit == 1
    # The API's positional order is the form's order, the same names the callback reads.
    assert [block.elem_id for block in fn.inputs] == [
        "asr-upload",
        "asr-mic",
        "asr-model",
        "asr-language",
        "asr-task",
        "asr-word-timestamps",
        "asr-beam",
    ]
    model = next(b for b in demo.blocks.values() if b.elem_id == "asr-model")
    assert model.value == "tiny-random"
    refreshed = page.refresh_models_callback(asr_engines, "nope")
    assert refreshed.value == "tiny-random"


def test_gradio_client_calls_asr_transcribe(asr_engines, clips):
    from gradio_client import Client, handle_file

    with gr.Blocks() as demo:
        page.build(asr_engines)
    demo.queue()
    _, url, _ = demo.launch(
        prevent_thread_lock=True, quiet=True, allowed_paths=[str(asr_engines.settings.workspace_dir)]
    )
    try:
        client = Client(url, verbose=False)
        text, language, segments, files, stats = client.predict(
            [handle_file(str(clips[0]))], None, "tiny-random", "en", "transcribe", False, 0, api_name="/asr_transcribe"
        )
    finally:
        demo.close()
    assert text and language == "English (en)"
    assert segments["headers"] == page.SEGMENT_HEADERS and segments["data"]
    assert sorted(Path(f).suffix for f in files) == [".json", ".srt", ".txt", ".vtt"]
    assert "RTF" in stats


def nan_speech(clip: Path, folder: Path, name: str) -> Path:
    """The clip at 44.1 kHz (resampled to 16 kHz on load, where NaN used to raise) with NaN samples in it."""
    from engines.core.audio import load_audio, resample

    audio, sr = load_audio(clip)
    audio = resample(audio, sr, 44100)
    audio[2000:2050] = np.nan
    path = folder / name
    sf.write(path, audio, 44100, subtype="FLOAT")
    return path


def test_nan_samples_do_not_sink_a_multi_file_request(asr_engines, clips, tmp_path):
    damaged = nan_speech(clips[0], tmp_path, "damaged.wav")
    dead = tmp_path / "dead.wav"
    sf.write(dead, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    result = page.transcribe(asr_engines, values(files=[str(clips[1]), str(damaged), str(dead)]))
    assert [t.source for t in result.transcripts] == ["second.mp3", "damaged.wav"]
    assert any(w.startswith("damaged.wav: 50 of") and "set to silence" in w for w in result.warnings)
    assert any(w.startswith("Skipped dead.wav: dead.wav holds no usable audio") for w in result.warnings)
    # The output says which file is missing and why, not only a toast that fades.
    assert "Skipped (not transcribed)" in result.stats and "- dead.wav: dead.wav holds no usable audio" in result.stats


def test_a_bug_on_one_file_spares_the_others(asr_engines, clips, monkeypatch, caplog):
    real = asr_engines.asr.transcribe_file

    def flaky(path, *args, **kwargs):
        if Path(path).name == "first.wav":
            raise RuntimeError("decoder exploded")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(asr_engines.asr, "transcribe_file", flaky)
    with pytest.warns(UserWarning, match=r"Skipped first.wav: unexpected error \(RuntimeError: decoder exploded\)"):
        text, _language, rows, _outputs, stats = page.transcribe_callback(
            asr_engines, values(files=[str(clips[0]), str(clips[1])])
        )
    assert {row[0] for row in rows} == {"second.mp3"} and "=== second.mp3 ===" in text
    assert "- first.wav: unexpected error (RuntimeError: decoder exploded)" in stats
    assert any(r.exc_info and "first.wav" in r.getMessage() for r in caplog.records)  # a bug keeps its traceback
