"""Script endpoints (pages/api.py) under abuse (issue 20, part 2): model names resolve only to the catalogue,
objects made after launch are usable by name, bad values are clear messages. Called directly, no server."""

from __future__ import annotations

import dataclasses

import pytest

from engines.core.errors import InputError
from pages.api import endpoints
from tests.conftest import transcribed_clips
from tests.test_training import make_dataset


@pytest.fixture()
def api(engines):
    return endpoints(engines)


def test_model_paths_never_reach_a_loader(api, engines, monkeypatch, tmp_path) -> None:
    """dataset_validate(model="/etc/passwd") ran torch.load on that file; tts_speakers(model=<folder>) told what
    the folder held and the workspace's absolute path."""
    import torch

    loaded: list = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loaded.append(a) or {})
    with pytest.raises(InputError, match="Unknown Whisper model") as info:
        api["dataset_validate"]("mine", model="/etc/passwd")
    assert "/etc" not in str(info.value)
    folder = engines.settings.workspace_sub("models", "notamodel")
    (folder / "speakers_xtts.pth").write_bytes(b"x")
    for name in (str(folder), str(tmp_path), "../../etc"):
        with pytest.raises(InputError, match="Unknown TTS model") as info:
            api["tts_speakers"](name)
        assert str(engines.settings.workspace_dir) not in str(info.value) and str(tmp_path) not in str(info.value)
    assert loaded == []
    monkeypatch.undo()
    assert api["tts_speakers"]("tiny") == ["Tiny Alice", "Tiny Bob"]  # a catalogue id still works


def test_training_starts_on_a_dataset_made_after_launch(api, engines, request, monkeypatch) -> None:
    """train_start (the UI's event) checks its dropdown's launch-time choices; train_start_run takes any name."""
    make_dataset(engines.settings.path("datasets_dir"), "made-later", transcribed_clips(request, n=4))
    started: list = []

    def start(options):
        engines.training.validate(options)  # the real checks: dataset found, base model known
        started.append(options)
        return "run-id"

    monkeypatch.setattr(engines.training, "start", start)
    assert api["train_start_run"]("made-later", base_model="tiny", epochs=2) == "run-id"
    assert (started[0].dataset, started[0].base_model, started[0].epochs) == ("made-later", "tiny", 2)
    with pytest.raises(InputError, match="epochs must be from 1 to 10000"):
        api["train_start_run"]("made-later", base_model="tiny", epochs=10**9)
    with pytest.raises(InputError, match="Unknown preset"):
        api["train_start_run"]("made-later", preset="huge")


def test_epochs_are_bounded(engines) -> None:
    from engines.training.options import TrainOptions

    with pytest.raises(InputError, match="epochs must be from 1 to"):
        engines.training.validate(dataclasses.replace(TrainOptions(dataset="x", base_model="tiny"), epochs=10**9))


def test_dataset_save_with_bad_rows_is_a_clear_message(api) -> None:
    for rows in ("nope", [1, 2], {"clip": "a"}):
        with pytest.raises(InputError, match="rows must be a list of objects"):
            api["dataset_save"]("any", rows)


def test_a_lone_surrogate_in_text_is_refused_clearly() -> None:
    from engines.tts.checks import check_text

    with pytest.raises(InputError, match="unpaired surrogate"):
        check_text("Hello \ud800 there.")


def test_wrong_types_and_unknown_ids_are_clear_messages_without_server_paths(api, engines) -> None:
    """A re-run of the sweep on the script endpoints: an int or list where a name goes, 'x' for an index and a
    5000-character run id were AttributeError / ValueError / OSError tracebacks, and "not found" messages
    named the workspace's absolute folders."""
    from pages.api import typed

    cases = [
        ("eval_summary", (["x"],), "'run_id': Input should be a valid string"),
        ("dataset_clips", (10**30,), "'name': Input should be a valid string"),
        ("eval_listening_answer", ("r", "t", "x"), "'index': Input should be a valid integer"),
        ("eval_listening_answer", ("r", "t", 0, "", "NaN"), "'mos1': Input should be a finite number"),
        ("train_start_run", ("d", "", "quick", {"a": 1}), "'epochs': Input should be a valid integer"),
        ("dataset_delete", ("d", "perhaps"), "'confirm': Input should be a valid boolean"),
    ]
    for name, args, message in cases:
        with pytest.raises(InputError, match=message):
            typed(api[name])(*args)
    assert typed(api["train_runs"])() == api["train_runs"]()  # valid calls pass through unchanged
    workspace, datasets = str(engines.settings.workspace_dir), str(engines.settings.datasets_dir)
    for name, args in [
        ("eval_summary", ("nope",)),
        ("eval_summary", ("a" * 5000,)),
        ("eval_listening_plan", ("nope", "b" * 5000)),
        ("train_status", ("nope",)),
        ("dataset_clips", ("nope",)),
        ("train_start_run", ("nope",)),
    ]:
        with pytest.raises(InputError) as info:
            typed(api[name])(*args)
        text = str(info.value)
        assert workspace not in text and datasets not in text and len(text) < 400, (name, text)
