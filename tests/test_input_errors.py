"""Values Gradio refuses before a callback runs (issue 20): a clear message naming the field, one log line,
no traceback. Driven through gradio_client (and raw HTTP for a file reference) against the launched tiny app."""

from __future__ import annotations

import json
import logging
import urllib.request

import numpy as np
import pytest
import soundfile as sf

from pages.asr import AUTO
from tests.browser_helpers import launched_app, tiny_settings
from tests.test_api_late import train_values
from tests.test_eval_client import eval_values

gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_models):
    settings = tiny_settings(tmp_path_factory.mktemp("input-app"), tiny_models)
    with launched_app(settings) as (demo, url):
        yield gradio_client.Client(url, verbose=False), url


def refused(call) -> str:
    with pytest.raises(gradio_client.exceptions.AppError) as info:
        call()
    message = str(info.value)
    assert message and "verbose error reporting" not in message and "Traceback" not in message
    return message


def test_a_non_number_names_the_field_and_logs_one_line(app, caplog, capfd):
    client, _ = app
    with caplog.at_level(logging.WARNING):
        message = refused(lambda: client.predict(**eval_values(temperature="hot"), api_name="/eval_run"))
        assert message == "Temperature must be a number; got 'hot'."
        assert "Seed must be a number; got 'x'" in refused(
            lambda: client.predict(**{**train_values("any"), "seed": "x"}, api_name="/train_start")
        )
        assert "not in the list of choices" in refused(
            lambda: client.predict(**eval_values(language="xx"), api_name="/eval_run")
        )
    lines = [r.getMessage() for r in caplog.records if "refused input" in r.getMessage()]
    assert len(lines) == 3 and all("\n" not in line for line in lines)
    assert "Traceback" not in capfd.readouterr().err


def transcribe_raw(url: str, files) -> str:
    """asr_transcribe called over Gradio's HTTP API with ``files`` as sent (no client-side upload): the event
    stream it answers."""
    body = json.dumps({"data": [files, None, "tiny-random", AUTO, "transcribe", False, 0]}).encode()
    request = urllib.request.Request(
        f"{url}gradio_api/call/asr_transcribe", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/asr_transcribe/{event_id}", timeout=60) as response:
        return response.read().decode()


def test_a_file_reference_never_uploaded_is_a_clear_message(app, capfd):
    _, url = app
    missing = {"path": "/nonexistent/never-uploaded.wav", "meta": {"_type": "gradio.FileData"}}
    stream = transcribe_raw(url, [missing])
    assert "event: error" in stream and "never uploaded" in stream, stream
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("seed", [2**64, 1e30])
def test_a_huge_seed_is_a_clear_message(app, seed):
    client, _ = app
    for call in (
        lambda: client.predict(**eval_values(seed=seed), api_name="/eval_run"),
        lambda: client.predict(**{**train_values("any"), "seed": seed}, api_name="/train_start"),
        lambda: client.predict(text="Hi.", files=None, recording=None, seed=seed, api_name="/tts_generate_stream"),
        lambda: client.predict(text="Hi.", files=None, recording=None, seed=seed, api_name="/tts_generate"),
    ):
        message = refused(call)
        assert "seed" in message.lower() and "Unexpected error" not in message, message


@pytest.mark.parametrize("value", [10**30, ["x"], {"a": 1}])
def test_a_non_text_value_where_text_goes_is_a_clear_message(app, value, capfd):
    """A re-run of the sweep: a number, list or object for a textbox or a free-text dropdown (the pronunciation
    map, eval_resume's run id) and for a script endpoint's name was an AttributeError traceback."""
    client, _ = app
    assert "'text' must be text" in refused(lambda: client.predict(value, api_name="/tts_pronunciation_save"))
    assert "'run_id' must be text" in refused(lambda: client.predict(value, api_name="/eval_resume"))
    assert "'run_id' must be text" in refused(lambda: client.predict(value, api_name="/eval_summary"))
    assert "'index': Input should be a valid integer" in refused(
        lambda: client.predict("r", "t", "x", api_name="/eval_listening_answer")
    )
    assert "Traceback" not in capfd.readouterr().err


def test_a_plain_value_for_a_file_input_is_a_clear_message(app, capfd):
    """A script passing a path string (or a number) where an upload goes got Gradio's empty "verbose error
    reporting" message and a pydantic traceback in the log."""
    client, url = app
    for value in ("/etc/passwd", 12):
        stream = transcribe_raw(url, value)
        assert "event: error" in stream and "must be a file uploaded to this app" in stream, stream
    assert "Traceback" not in capfd.readouterr().err


def test_eval_pickers_never_open_a_server_path(app, tmp_path):
    """The eval pickers take typed values (for objects made after launch); a re-run of the sweep found that a
    path typed as the sentence set was read as sentences (/etc/passwd became the run's text), and that a path
    could be given as a voice, a TTS model or a Whisper model. Only the listed forms get through now."""
    client, _ = app
    secret = tmp_path / "secret.txt"
    secret.write_text("a private line\n")
    cases = [
        ({"set_spec": "/etc/passwd"}, "Unknown sentence set 'passwd'"),
        ({"set_spec": f"file:{secret}"}, "Unknown sentence set"),
        ({"set_spec": "builtin:../../secret"}, "Unknown sentence set"),
        ({"voices": ["/etc/passwd"]}, "Unknown reference voice 'passwd'"),
        ({"models": [str(tmp_path)]}, "Unknown TTS model"),
        ({"asr_model": "/etc/passwd"}, "Unknown Whisper model"),
    ]
    for change, expected in cases:
        message = refused(lambda change=change: client.predict(**eval_values(**change), api_name="/eval_run"))
        assert expected in message and str(tmp_path) not in message and "/etc" not in message, (change, message)
    message = refused(
        lambda: client.predict(
            training_run="any-run",
            set_spec="/etc/passwd",
            upload=None,
            voice_files=None,
            api_name="/eval_rank_checkpoints",
        )
    )
    assert "Unknown sentence set" in message


def test_asr_and_training_pickers_never_load_a_server_path(app, tmp_path):
    """The ASR tab's model picker and the training base picker take typed values too; the engines load any
    folder or checkpoint a Python caller names, so from the page a path is refused before anything loads."""
    client, _ = app
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "model.pth").write_bytes(b"not a checkpoint")
    clip = tmp_path / "tone.wav"
    sf.write(clip, (0.1 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 220)).astype("float32"), 16000)
    message = refused(
        lambda: client.predict(
            files=[gradio_client.handle_file(str(clip))],
            recording=None,
            model=str(folder / "model.pth"),
            api_name="/asr_transcribe",
        )
    )
    assert "Unknown Whisper model 'model.pth'" in message and str(tmp_path) not in message
    message = refused(lambda: client.predict(**{**train_values("any"), "base": str(folder)}, api_name="/train_start"))
    assert "Unknown base model 'not-a-model'" in message and str(tmp_path) not in message
