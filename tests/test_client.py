"""The launched app through gradio_client: the named endpoints a script would call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from tests.browser_helpers import launched_app, tiny_settings

gradio_client = pytest.importorskip("gradio_client")

# The tiny model's GPT would otherwise run to its token limit on every sentence (seconds of noise each).
MAX_TOKENS = 40


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, tiny_models):
    """The app in tiny mode on a free 127.0.0.1 port, launched once for this module."""
    settings = tiny_settings(tmp_path_factory.mktemp("client-app"), tiny_models)
    with launched_app(settings) as (demo, url):
        yield demo, url


@pytest.fixture(scope="module")
def client(app):
    _, url = app
    return gradio_client.Client(url, verbose=False)


@pytest.fixture(scope="module")
def reference(speak) -> Path:
    return speak("The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background.")


def tts_args(text: str, reference: Path | None, **overrides):
    """Positional inputs of the tts_generate endpoint, in the page's order."""
    values = {
        "text": text,
        "language": "en",
        "files": [gradio_client.handle_file(str(reference))] if reference else None,
        "recording": None,
        "voice": "(none)",
        "speaker": "(none)",
        "model": "tiny",
        "temperature": 0.85,
        "top_k": 50,
        "top_p": 0.85,
        "repetition_penalty": 2.0,
        "length_penalty": 1.0,
        "speed": 1.0,
        "seed": 1234,
        "split": True,
        "max_tokens": MAX_TOKENS,
        "retakes": 0,  # appended by issue 22 (checked synthesis): 0 = off
    }
    values.update(overrides)
    return list(values.values())


def asr_args(clip: Path, **overrides):
    """Positional inputs of the asr_transcribe endpoint, in the page's order."""
    values = {
        "files": [gradio_client.handle_file(str(clip))],
        "recording": None,
        "model": "tiny-random",
        "language": "en",
        "task": "transcribe",
        "word_timestamps": False,
        "beam_size": 0,
    }
    values.update(overrides)
    return list(values.values())


def assert_wav(path: str | Path) -> float:
    """The file is a readable, non-empty mono WAV; returns its duration in seconds."""
    info = sf.info(str(path))
    assert info.format == "WAV"
    assert info.frames > 0 and info.samplerate > 0
    return info.frames / info.samplerate


def test_endpoints_are_named(client):
    api = client.view_api(print_info=False, return_format="dict")
    names = set(api["named_endpoints"])
    assert {"/tts_generate", "/asr_transcribe"} <= names
    # Form endpoints take their inputs by name (never param_0, param_1, ...), in the UI's order.
    params = {name: [p["parameter_name"] for p in api["named_endpoints"][name]["parameters"]] for name in names}
    assert params["/tts_generate"][:7] == ["text", "language", "files", "recording", "voice", "speaker", "model"]
    assert "temperature" in params["/tts_generate"] and "seed" in params["/tts_generate"]
    assert params["/asr_transcribe"] == [
        "files",
        "recording",
        "model",
        "language",
        "task",
        "word_timestamps",
        "beam_size",
    ]
    assert not [n for n, ps in params.items() if any(p.startswith("param_") for p in ps)]


def test_a_form_endpoint_takes_keywords(client, reference):
    api = client.view_api(print_info=False, return_format="dict")
    names = [p["parameter_name"] for p in api["named_endpoints"]["/tts_generate"]["parameters"]]
    values = dict(zip(names, tts_args("Keyword call.", reference), strict=True))
    audio, _files, _stats = client.predict(**values, api_name="/tts_generate")
    assert assert_wav(audio) > 0


def test_tts_generate_returns_a_wav_and_its_sidecar(client, reference):
    audio, files, stats = client.predict(*tts_args("Hello there. This is a test.", reference), api_name="/tts_generate")
    seconds = assert_wav(audio)
    assert seconds > 0.1
    sidecars = [f for f in files if str(f).endswith(".json")]
    assert len(sidecars) == 1
    sidecar = json.loads(Path(sidecars[0]).read_text(encoding="utf-8"))
    assert sidecar["text"] == "Hello there. This is a test."
    assert "Real-time factor" in stats


def test_two_concurrent_tts_calls_both_return_audio(client, reference):
    jobs = [client.submit(*tts_args(f"Call number {n}.", reference, seed=n), api_name="/tts_generate") for n in (1, 2)]
    outputs = [job.result(timeout=300) for job in jobs]
    for audio, _files, _stats in outputs:
        assert assert_wav(audio) > 0
    assert outputs[0][0] != outputs[1][0]  # two distinct files in the workspace


def test_tts_error_is_a_clean_message(client, reference):
    with pytest.raises(gradio_client.exceptions.AppError) as info:
        client.predict(*tts_args("   ", reference), api_name="/tts_generate")
    message = str(info.value)
    assert "text is empty" in message
    assert "Traceback" not in message


def test_asr_transcribe_returns_text(client, speak):
    clip = speak("Ask not what your country can do for you.", name="asr-client")
    text, language, segments, files, stats = client.predict(*asr_args(clip), api_name="/asr_transcribe")
    assert isinstance(text, str)  # the tiny model's text is gibberish (maybe empty): check the plumbing
    assert "en" in language
    names = sorted(Path(f).suffix for f in files)
    assert names == [".json", ".srt", ".txt", ".vtt"]
    saved = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text(encoding="utf-8"))
    assert saved["text"].strip() == text.strip()
    assert set(segments) >= {"headers", "data"}
    assert "Processing time" in stats


def test_asr_without_input_is_a_clean_message(client):
    with pytest.raises(gradio_client.exceptions.AppError, match="Nothing to transcribe"):
        client.predict(None, None, "tiny-random", "auto", "transcribe", False, 0, api_name="/asr_transcribe")


def test_asr_non_audio_file_is_a_clean_message(client, tmp_path):
    bogus = tmp_path / "notes.wav"
    bogus.write_text("this is not audio", encoding="utf-8")
    with pytest.raises(gradio_client.exceptions.AppError) as info:
        client.predict(*asr_args(bogus), api_name="/asr_transcribe")
    assert "notes.wav" in str(info.value)
    assert "Traceback" not in str(info.value)
