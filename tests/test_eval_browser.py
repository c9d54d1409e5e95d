"""The Eval tab in a real browser (Debian's Chromium via Playwright): run an evaluation, open the report; a run
outlives its tab."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest

from engines.eval import read_results
from tests.browser_helpers import launched_app, tiny_settings
from tests.eval_helpers import gate_synthesis

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.mark.browser
def test_run_eval_from_the_tab_and_open_the_report(tmp_path, tiny_models, artifacts):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    settings = tiny_settings(tmp_path, tiny_models)
    with launched_app(settings) as (demo, url), playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1800})
            tab = context.new_page()
            tab.goto(url)
            tab.get_by_role("tab", name="Eval").click()
            tab.locator("#ev-run").wait_for(timeout=30_000)
            assert "Tiny Alice" in tab.locator("#ev-voice").inner_text()  # a voice is preselected
            assert "en" in tab.locator("#ev-set").inner_text()
            tab.locator("#ev-max-sentences input").fill("2")
            tab.locator("#ev-gen-settings").get_by_text("Generation settings").click()
            tab.locator("#ev-max-tokens input").fill("8")
            tab.locator("#ev-run").click()
            tab.locator("#ev-progress").get_by_text("Finished").wait_for(timeout=300_000)
            progress = tab.locator("#ev-progress").inner_text()
            assert "2/2 utterances" in progress and "plumbing" in progress
            tab.locator("#ev-summary").get_by_text("tiny / Tiny Alice").locator("visible=true").first.wait_for(
                timeout=30_000
            )
            tab.screenshot(path=str(artifacts / "eval-tab.png"), full_page=True)

            reports = list((settings.workspace_dir / "reports").iterdir())
            assert len(reports) == 1 and (reports[0] / "report.html").is_file()

            with context.expect_page() as opened:
                tab.locator("#ev-report-anchor").click()
            report = opened.value
            report.wait_for_load_state()
            assert "XTTS Lab eval" in report.title()
            assert report.locator("#tiny-note").is_visible()
            assert "tiny / Tiny Alice" in report.locator("table").first.inner_text()
            src = report.locator("audio").first.get_attribute("src")
            audio_url = report.evaluate("(s) => new URL(s, document.baseURI).href", src)
            response = report.request.get(audio_url)
            assert response.status == 200 and response.headers["content-type"].startswith("audio/")
            assert len(response.body()) > 1000
            report.screenshot(path=str(artifacts / "eval-report.png"), full_page=True)

            tab.get_by_role("tab", name="Results").click()
            assert reports[0].name in tab.locator("#ev-runs").inner_text() or tab.locator(
                "#ev-runs input"
            ).input_value().startswith(reports[0].name)
        finally:
            browser.close()


@pytest.mark.browser
def test_a_run_outlives_its_tab_and_a_new_tab_shows_it(tmp_path, tiny_models, artifacts, monkeypatch):
    """Issue 10 point 7, the user's path: start a run, close the tab half-way, open the app again: the Run
    sub-tab shows the run still going, then finished with every utterance."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    settings = tiny_settings(tmp_path, tiny_models)
    with launched_app(settings) as (demo, url), playwright.sync_playwright() as p:
        gate = gate_synthesis(demo.engines.tts, monkeypatch, free=2)  # warm-up + first utterance, then hold
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1800})
            tab = context.new_page()
            tab.goto(url)
            tab.get_by_role("tab", name="Eval").click()
            tab.locator("#ev-run").wait_for(timeout=30_000)
            tab.locator("#ev-max-sentences input").fill("3")
            tab.locator("#ev-gen-settings").get_by_text("Generation settings").click()
            tab.locator("#ev-max-tokens input").fill("8")
            tab.locator("#ev-run").click()
            # Half-way: the second utterance is held (whatever the batch size, nothing of it is committed yet).
            tab.locator("#ev-progress").get_by_text("(2/3)").wait_for(timeout=120_000)
            run_id = demo.engines.eval.running
            assert run_id and run_id in tab.locator("#ev-progress").inner_text()
            tab.close()  # the user closes the tab half-way

            time.sleep(3)  # longer than the watcher's heartbeat: the server has dropped the closed tab's watcher
            assert demo.engines.eval.running == run_id
            again = context.new_page()
            again.goto(url)
            again.get_by_role("tab", name="Eval").click()
            again.locator("#ev-progress").get_by_text("Running").wait_for(timeout=30_000)
            assert run_id in again.locator("#ev-progress").inner_text()  # the same run, attached again
            again.screenshot(path=str(artifacts / "eval-attached.png"), full_page=True)
            gate.set()
            again.locator("#ev-progress").get_by_text("Finished").wait_for(timeout=300_000)
            assert "3/3 utterances" in again.locator("#ev-progress").inner_text()
            again.locator("#ev-summary").get_by_text("tiny / Tiny Alice").locator("visible=true").first.wait_for(
                timeout=30_000
            )
        finally:
            gate.set()
            browser.close()
            job = demo.engines.eval.job
            if job is not None and not job.ended:  # a failed check: end the run before the app closes
                demo.engines.eval.stop()
                with contextlib.suppress(Exception):  # keep the failed check's own error
                    job.wait(timeout=120)
    folder = settings.workspace_dir / "reports" / run_id
    assert json.loads((folder / "status.json").read_text())["state"] == "done"
    assert len(read_results(folder / "results.csv")) == 3
