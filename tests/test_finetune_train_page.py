"""The "2. Train" page: callbacks called directly, then the page in a real browser (Chromium via Playwright).

The finished run comes from tests/test_training.py's session-wide trained run (tiny XTTS on the CPU).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import gradio as gr
import pytest

from engines import Engines
from engines.training.engine import PRESETS, TrainingEngine
from pages import finetune_train as page
from tests.test_training import ESPEAK_SENTENCES, get_trained_run, make_dataset, make_settings

ELEM_IDS = {
    "tr-dataset",
    "tr-base",
    "tr-preset",
    "tr-epochs",
    "tr-start",
    "tr-stop",
    "tr-resume",
    "tr-status",
    "tr-loss-plot",
    "tr-log",
    "tr-runs",
    "tr-export",
    "tr-export-name",
}


def engines_for(settings, tiny_models, training: TrainingEngine | None = None) -> Engines:
    """An engine container whose training engine is ``training`` when given (the page needs no other)."""
    engines = Engines.create(settings, tiny=tiny_models)
    if training is not None:
        engines.training = training
    return engines


@pytest.fixture(scope="module")
def trained(request, tmp_path_factory, tiny_models):
    return get_trained_run(request, tmp_path_factory, tiny_models)


@pytest.fixture(scope="module")
def trained_engines(trained, tiny_models) -> Engines:
    return engines_for(trained["settings"], tiny_models, trained["engine"])


@pytest.fixture()
def fresh_engines(tmp_path, tiny_models) -> Engines:
    return engines_for(make_settings(tmp_path, tiny_models), tiny_models)


def form(dataset: str | None, **changes) -> dict:
    """The Start button's inputs by name, as the page's form hands them over (tiny base, 1 epoch, batch 2
    unless changed)."""
    values = {
        "dataset": dataset,
        "base": "tiny",
        "epochs": 1,
        "batch_size": 2,
        "grad_accum": 1,
        "learning_rate": 5e-4,
        "max_audio_seconds": 11.0,
        "save_every": 100,
        "eval_every": 0,
        "seed": 1,
    }
    values.update(changes)
    return values


def test_build_has_elem_ids_and_named_api(fresh_engines):
    with gr.Blocks() as demo:
        page.build(fresh_engines)
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert ELEM_IDS <= ids, ELEM_IDS - ids
    names = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert names == {
        "train_start",
        "train_stop",
        "train_resume",
        "train_export",
        "train_vocabulary",
    }  # the rest is the page's own
    # train_start's positional order (script users) is the form's order: dataset, base, the preset fields.
    start = next(fn for fn in demo.fns.values() if fn.api_name == "train_start")
    assert [block.elem_id for block in start.inputs] == [
        "tr-dataset",
        "tr-base",
        "tr-epochs",
        "tr-batch",
        "tr-accum",
        "tr-lr",
        "tr-max-audio",
        "tr-save-every",
        "tr-eval-every",
        "tr-seed",
        "tr-gpus",
    ]
    assert list(form("x")) == ["dataset", "base", *page.PRESET_FIELDS]
    assert any(isinstance(block, gr.Timer) for block in demo.blocks.values())


def test_presets_fill_the_fields():
    for name, values in PRESETS.items():
        filled = page.preset_values(name)
        assert list(filled) == list(page.PRESET_FIELDS)
        assert list(page.preset_callback(name)) == list(filled.values())  # the event's outputs, in that order
        assert filled["epochs"] == values["epochs"] and filled["batch_size"] == values["batch_size"]
        assert filled["eval_every"] == (values["eval_every"] or 0)
        options = page.build_options({"dataset": " voice ", "base": "tiny", **filled})
        assert options.dataset == "voice" and options.base_model == "tiny" and options.epochs == values["epochs"]
        assert options.eval_every == values["eval_every"]
    with pytest.raises(gr.Error, match="Unknown preset"):
        page.preset_callback("huge")


def test_start_errors_become_gr_errors(fresh_engines):
    with pytest.raises(gr.Error, match="Choose a dataset"):
        page.start_callback(fresh_engines, form(None))
    with pytest.raises(gr.Error, match="Invalid dataset name"):
        page.start_callback(fresh_engines, form("../x"))
    with pytest.raises(gr.Error, match="Enter a value for epochs"):
        page.start_callback(fresh_engines, form("x", epochs=None))
    with pytest.raises(gr.Error, match="No training run is running"):
        page.stop_callback(fresh_engines, None)
    with pytest.raises(gr.Error, match="No run to resume"):
        page.resume_callback(fresh_engines, None)
    with pytest.raises(gr.Error, match="Select a run"):
        page.export_callback(fresh_engines, None, page.BEST, "x")
    # Nothing trained yet: the live view says so, on CPU the hint says so.
    run_id, status, plot, log_text, runs, _, datasets = page.refresh_callback(fresh_engines, None, None)
    assert run_id is None and "No training run yet" in status and plot is None and runs.empty
    assert datasets["choices"] == []
    assert "CPU" in page.suggestion_markdown(fresh_engines, "tiny", 2, 11)


@pytest.mark.slow
def test_live_view_of_a_finished_run_and_export(trained, trained_engines):
    run_id = trained["run_id"]
    # A fresh page (browser refresh, app restart) shows the latest run without being told which.
    shown, status, plot, log_text, runs, signature, datasets = page.refresh_callback(trained_engines, None, None)
    assert shown == run_id and "FINISHED" in status and f"step **{trained['status'].step}/" in status
    assert set(plot.series) == {"train loss", "eval loss"} and plot.step.max() == trained["status"].step
    assert "Tiny-model mode" in status and log_text.strip()
    assert list(runs.run) == [run_id] and runs.status[0] == "finished"
    assert [c[0] if isinstance(c, tuple | list) else c for c in datasets["choices"]] == ["voice"]
    # Nothing changed: plot and runs table are left alone (no flicker, the table keeps its selection).
    again = page.refresh_callback(trained_engines, run_id, signature)
    assert again[2] == again[4] == again[6] == gr.update() and again[1] == status

    table = page.runs_frame(trained_engines)
    selected, note, checkpoint, *_ = page.select_callback(
        trained_engines, table, gr.SelectData(None, {"index": [0, 1], "value": "finished", "selected": True})
    )
    assert selected == run_id and run_id in note
    labels = [label for label, _ in checkpoint["choices"]]
    assert labels[0] == page.BEST and any("eval loss" in label for label in labels[1:])
    newest = checkpoint["choices"][1][1]
    message = page.export_callback(trained_engines, run_id, newest, "page-export")
    out = trained["settings"].workspace_dir / "models" / "page-export"
    assert "page-export" in message and (out / "model.pth").is_file() and (out / "reference.wav").is_file()
    with pytest.raises(gr.Error, match="already exists"):
        page.export_callback(trained_engines, run_id, page.BEST, "page-export")
    with pytest.raises(gr.Error, match="Tick 'Yes, delete'"):
        page.delete_callback(trained_engines, run_id, False)
    with pytest.raises(gr.Error, match="Invalid model name"):
        page.export_callback(trained_engines, run_id, page.BEST, "../up")
    shutil.rmtree(out)


def test_start_stop_resume_delete_through_the_callbacks(fresh_engines, speak):
    make_dataset(fresh_engines.training.datasets_dir, "pagevoice", [(speak(t), t) for t in ESPEAK_SENTENCES[:4]])
    run_id, status, *_ = page.start_callback(fresh_engines, form("pagevoice"))
    assert run_id and "RUNNING" in status
    with pytest.raises(gr.Error, match="still running"):
        page.start_callback(fresh_engines, form("pagevoice"))
    shown, status, *_ = page.stop_callback(fresh_engines, run_id)
    assert shown == run_id and "STOPPED" in status
    shown, status, *_ = page.resume_callback(fresh_engines, run_id)
    assert "RUNNING" in status
    page.stop_callback(fresh_engines, run_id)
    with pytest.raises(gr.Error, match="No training run is running"):
        page.stop_callback(fresh_engines, run_id)
    result = page.delete_callback(fresh_engines, run_id, True)
    assert result[0] is None and result[4].empty
    assert fresh_engines.training.list_runs() == []


@pytest.mark.slow
@pytest.mark.browser
def test_browser_shows_run_plot_and_exports(trained, trained_engines, artifacts):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed")
    with gr.Blocks() as demo:
        page.build(trained_engines)
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            tab = browser.new_page(viewport={"width": 1280, "height": 1600})
            tab.goto(url)
            status = tab.locator("#tr-status")
            status.get_by_text("FINISHED").wait_for(timeout=30_000)  # page load shows the latest run
            assert trained["run_id"] in status.inner_text()
            # Vega draws each series as a path (mark-line); both curves must be there, not just the axes.
            tab.locator("#tr-loss-plot .mark-line path").nth(1).wait_for(timeout=30_000)
            tab.locator("#tr-runs").get_by_text(trained["run_id"]).filter(visible=True).first.click()
            tab.locator("#tr-selected").get_by_text("Selected run").wait_for(timeout=15_000)
            tab.locator("#tr-export-name textarea, #tr-export-name input").first.fill("browser-export")
            tab.locator("#tr-export").click()
            tab.locator("#tr-export-result").get_by_text("browser-export").first.wait_for(timeout=60_000)
            tab.screenshot(path=str(artifacts / "finetune-train.png"), full_page=True)
            browser.close()
        out = trained["settings"].workspace_dir / "models" / "browser-export"
        assert (out / "model.pth").is_file()
        shutil.rmtree(out)
    finally:
        demo.close()
