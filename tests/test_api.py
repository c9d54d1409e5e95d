"""Script users: every UI action has a named endpoint, and endpoints take names made after the app started.

Driven through ``gradio_client`` against the launched tiny app, as a script would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import gradio_client
import pytest

from tests.browser_helpers import launched_app, tiny_settings
from tests.conftest import transcribed_clips
from tests.test_training import get_trained_run, make_dataset

# What a person can do in the UI, by the endpoint a script uses for it.
UI_ACTIONS = {
    "/tts_generate", "/tts_save_voice", "/tts_models", "/tts_voices", "/tts_speakers",
    "/asr_transcribe",
    "/ft_build", "/datasets_list", "/dataset_clips", "/dataset_stats", "/dataset_save", "/dataset_recut",
    "/dataset_validate", "/dataset_choice", "/dataset_clip_audio", "/dataset_delete",
    "/train_start", "/train_runs", "/train_status", "/train_checkpoints", "/train_stop_run", "/train_resume_run",
    "/train_export_run", "/train_delete",
    "/eval_run", "/eval_stop", "/eval_resume", "/eval_rank_checkpoints", "/eval_runs", "/eval_summary",
    "/eval_results", "/eval_compare", "/eval_export_best", "/eval_listening_create", "/eval_listening_plan",
    "/eval_listening_answer", "/eval_listening_summary",
    "/system_unload", "/system_download_xtts", "/system_download_whisper",
}  # fmt: skip


@pytest.fixture(scope="module")
def trained_copy(request, tmp_path_factory, tiny_models):
    """A workspace holding a copy of the session's trained run (so deleting it here harms no other test)."""
    trained = get_trained_run(request, tmp_path_factory, tiny_models)
    root = tmp_path_factory.mktemp("api-app")
    settings = tiny_settings(root, tiny_models)
    src = trained["settings"].workspace_dir / "runs" / trained["run_id"]
    shutil.copytree(src, settings.workspace_dir / "runs" / trained["run_id"])
    return settings, trained["run_id"]


@pytest.fixture(scope="module")
def client(trained_copy):
    settings, _ = trained_copy
    with launched_app(settings) as (demo, url):
        yield gradio_client.Client(url, verbose=False), demo


def test_every_ui_action_has_a_named_endpoint(client):
    api = client[0].view_api(print_info=False, return_format="dict")
    missing = UI_ACTIONS - set(api["named_endpoints"])
    assert not missing, f"UI actions without a named endpoint: {sorted(missing)}"
    for name in ("/dataset_clips", "/train_export_run", "/eval_listening_answer"):
        params = api["named_endpoints"][name]["parameters"]
        assert params and all(not p["parameter_name"].startswith("param_") for p in params)


def test_a_dataset_made_after_launch_is_usable_by_name(client, request):
    cl, demo = client
    make_dataset(demo.engines.settings.path("datasets_dir"), "late", transcribed_clips(request, n=4, prefix="late"))
    assert "late" in [d["name"] for d in cl.predict(api_name="/datasets_list")]
    clips = cl.predict("late", api_name="/dataset_clips")
    assert len(clips) == 4 and {"clip", "text", "speaker", "split"} <= set(clips[0])
    assert cl.predict("late", api_name="/dataset_stats")["clips"] == 4
    with pytest.raises(gradio_client.exceptions.AppError, match="confirm"):
        cl.predict("late", False, api_name="/dataset_delete")
    assert "Deleted" in cl.predict("late", True, api_name="/dataset_delete")
    assert "late" not in [d["name"] for d in cl.predict(api_name="/datasets_list")]
    with pytest.raises(gradio_client.exceptions.AppError, match="late") as info:
        cl.predict("late", api_name="/dataset_clips")
    assert "Traceback" not in str(info.value)


def test_a_training_run_is_exported_and_deleted_by_id(client, trained_copy):
    cl, demo = client
    _, run_id = trained_copy
    assert [r["run_id"] for r in cl.predict(api_name="/train_runs")] == [run_id]
    assert cl.predict(run_id, api_name="/train_status")["status"] == "finished"
    assert cl.predict(run_id, api_name="/train_checkpoints")
    folder = Path(cl.predict(run_id, "", "api-voice", api_name="/train_export_run"))
    assert (folder / "model.pth").is_file() and folder.name == "api-voice"
    assert "api-voice" in [m["id"] for m in cl.predict(api_name="/tts_models")]  # made after launch, listed now

    with pytest.raises(gradio_client.exceptions.AppError, match="confirm"):
        cl.predict(run_id, False, api_name="/train_delete")
    assert "Deleted" in cl.predict(run_id, True, api_name="/train_delete")
    assert cl.predict(api_name="/train_runs") == []
    with pytest.raises(gradio_client.exceptions.AppError, match=run_id):
        cl.predict(run_id, api_name="/train_status")


def test_eval_endpoints_answer_with_clear_messages(client):
    cl, _ = client
    assert cl.predict(api_name="/eval_runs") == []
    with pytest.raises(gradio_client.exceptions.AppError, match="No eval run"):
        cl.predict("no-such-run", api_name="/eval_summary")
    assert cl.predict("", api_name="/tts_speakers") == ["Tiny Alice", "Tiny Bob"]
