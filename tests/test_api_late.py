"""Scripts use what they just made (issue 20): the UI's own events (``train_start``, ``eval_resume``,
``eval_rank_checkpoints``, ...) take a dataset, run or model made after the app started, by name.

Gradio checks a Dropdown's value against the choices the page was built with; the pickers of workspace
objects accept any value, and the engines check the name (with their own clear message). Driven through
``gradio_client`` against the launched tiny app.
"""

from __future__ import annotations

import json

import pytest

from engines.core.errors import InputError
from tests.browser_helpers import launched_app, tiny_settings
from tests.conftest import transcribed_clips
from tests.test_eval_client import eval_values
from tests.test_training import make_dataset

gradio_client = pytest.importorskip("gradio_client")

NOT_A_CHOICE = "not in the list of choices"


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_models):
    settings = tiny_settings(tmp_path_factory.mktemp("late-app"), tiny_models)
    with launched_app(settings) as (demo, url):
        yield gradio_client.Client(url, verbose=False), demo


def app_error(call) -> str:
    with pytest.raises(gradio_client.exceptions.AppError) as info:
        call()
    message = str(info.value)
    assert NOT_A_CHOICE not in message and "Traceback" not in message
    return message


def train_values(dataset: str, base: str = "tiny") -> dict:
    return {
        "dataset": dataset,
        "base": base,
        "epochs": 1,
        "batch_size": 2,
        "grad_accum": 1,
        "learning_rate": 5e-6,
        "max_audio_seconds": 11,
        "save_every": 100,
        "eval_every": 0,
        "seed": 1,
        "gpus": "1",
    }


def test_train_start_takes_a_dataset_made_after_launch(app, request, monkeypatch):
    client, demo = app
    training = demo.engines.training
    make_dataset(demo.engines.settings.path("datasets_dir"), "made-later", transcribed_clips(request, n=4))
    started: list = []

    def start(options):
        training.validate(options)  # the real checks: dataset found, base model known
        started.append(options)
        raise InputError("validated; not starting a process here")

    monkeypatch.setattr(training, "start", start)
    message = app_error(lambda: client.predict(**train_values("made-later"), api_name="/train_start"))
    assert "validated" in message
    assert [(o.dataset, o.base_model) for o in started] == [("made-later", "tiny")]
    # A name that is nowhere gets the engine's message, which names it.
    assert "never-made" in app_error(lambda: client.predict(**train_values("never-made"), api_name="/train_start"))
    assert "no-such-model" in app_error(
        lambda: client.predict(**train_values("made-later", base="no-such-model"), api_name="/train_start")
    )


def test_eval_resume_and_rank_take_runs_made_after_launch(app):
    client, demo = app
    progress, *_ = client.predict(**eval_values(name="late"), api_name="/eval_run")
    assert "Finished" in progress
    run_id = demo.engines.eval.list_runs()[0].run_id
    # A finished run resumes at once (nothing left to do): the run's own view, not Gradio's choices check.
    resumed, *_ = client.predict(run_id, api_name="/eval_resume")
    assert "Finished" in resumed and run_id in resumed
    assert "no-such-run" in app_error(lambda: client.predict("no-such-run", api_name="/eval_resume"))

    # A training run made after launch (no checkpoints yet): the engine says so.
    run_dir = demo.engines.training.runs_dir / "late-run"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": "late-run", "status": "stopped", "dataset": "x"}))
    rank = {
        "training_run": "late-run",
        "set_spec": "builtin:en",
        "upload": None,
        "language": "en",
        "max_sentences": 1,
        "voices": ["speaker:Tiny Bob"],
        "voice_files": None,
        "max_audio_tokens": 8,
        "asr_model": "tiny-random",
        "beam_size": 0,
        "include_base": False,
    }
    message = app_error(lambda: client.predict(**rank, api_name="/eval_rank_checkpoints"))
    assert "'late-run' has no saved checkpoints" in message
