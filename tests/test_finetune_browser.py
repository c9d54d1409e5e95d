"""The whole Finetune tab as a user drives it, in Chromium: upload, build, review, train, watch the loss, export.

One launched tiny app (temporary workspace and datasets root). The audio is the 8 transcribed LJSpeech clips
when ../shared/data exists, else 8 espeak-ng sentences; either way with a ``file|text`` transcripts file, so
the build needs no Whisper. Screenshots: test-artifacts/finetune-e2e-dataset.png, finetune-e2e-training.png (mid-run) and
finetune-e2e-export.png.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, launched_app, tiny_settings
from tests.conftest import transcribed_clips

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DATASET = "e2e-voice"
MODEL = "e2e-model"
TIMEOUT_MS = 120_000  # one build / export on a busy 2-core CPU
TRAIN_TIMEOUT_S = 240.0  # worker start (imports torch and coqui) plus the tiny epochs
# 3 steps an epoch (7 train clips, batch 2) of well under a second each: 4 epochs keep the run going over
# several 2 s refreshes of the page, so the plot is seen growing while the status says RUNNING.
EPOCHS = 4


def pick(tab, elem_id: str, option: str) -> None:
    """Choose an entry of a Gradio dropdown by its label."""
    tab.locator(f"#{elem_id} input").click()
    tab.get_by_role("option", name=option, exact=True).click()
    assert tab.locator(f"#{elem_id} input").input_value() == option


def fill_number(tab, elem_id: str, value: str) -> None:
    field = tab.locator(f"#{elem_id} input")
    field.fill(value)
    field.press("Tab")  # Gradio commits a number on blur
    assert field.input_value() == value


def status_step(text: str) -> int:
    """The global step in the #tr-status panel ('step 3/6')."""
    match = re.search(r"step\s+(\d+)/", text)
    assert match, f"no step in the status panel: {text!r}"
    return int(match.group(1))


def series_path(tab, series: str):
    """A loss curve's SVG path (Vega draws each series as one path in the .mark-line group)."""
    return tab.locator(f"#tr-loss-plot .mark-line path[aria-label*='series: {series}']")


def train_path(tab) -> str:
    path = series_path(tab, "train loss")
    return (path.first.get_attribute("d") or "") if path.count() else ""


def drawn(tab, series: str) -> bool:
    """The curve is there with at least two points and a colour (a path with no stroke is invisible)."""
    path = series_path(tab, series)
    if not path.count():
        return False
    return vertices(path.first.get_attribute("d") or "") >= 2 and bool(path.first.get_attribute("stroke"))


def vertices(path: str) -> int:
    """Points of a Vega line path: the move-to plus one per line-to."""
    return len(re.findall(r"[ML]", path))


def test_finetune_tab_end_to_end(request, tmp_path, tiny_models, artifacts) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium)")
    clips = transcribed_clips(request, prefix="e2e")
    assert len(clips) == 8
    transcripts = tmp_path / "transcripts.txt"
    transcripts.write_text("".join(f"{wav.name}|{text}\n" for wav, text in clips), encoding="utf-8")
    settings = tiny_settings(tmp_path, tiny_models)
    models_dir = settings.workspace_dir / "models"

    with launched_app(settings) as (_demo, url), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_context(viewport={"width": 1400, "height": 2400}).new_page()
            tab.set_default_timeout(30_000)
            tab.goto(url)

            # ---- 1. Dataset: upload, name, language, build, review
            tab.get_by_role("tab", name="Finetune").click()
            tab.get_by_role("tab", name="1. Dataset").click()
            # Components mount when their tab is first shown: files set before that are lost.
            tab.locator("#ft-upload").get_by_role("button", name="Click to upload or drop files").wait_for()
            tab.locator("#ft-upload input[type=file]").set_input_files([str(wav) for wav, _ in clips])
            tab.locator("#ft-transcripts input[type=file]").set_input_files(str(transcripts))
            last = clips[-1][0]
            tab.locator("#ft-upload").get_by_text(last.stem, exact=True).wait_for(timeout=90_000)
            tab.locator("#ft-transcripts").get_by_text(transcripts.stem, exact=True).wait_for(timeout=90_000)
            tab.locator("#ft-name input, #ft-name textarea").first.fill(DATASET)
            pick(tab, "ft-language", "English (en)")
            tab.locator("#ft-build").click()

            tab.locator("#ft-summary").get_by_text("from 8 of 8 files").wait_for(timeout=TIMEOUT_MS)
            summary = tab.locator("#ft-summary").inner_text()
            assert f"Dataset '{DATASET}' (en): 8 clips" in summary
            report = tab.locator("#ft-report").inner_text()
            assert all(wav.name in report for wav, _ in clips), report
            assert report.count("kept") - report.count("kept s") == 8, report  # "kept s" is a column header
            table = tab.locator("#ft-table")
            table.get_by_text(clips[0][0].name).filter(visible=True).first.wait_for(timeout=30_000)
            listed = table.inner_text()
            assert all(wav.name in listed for wav, _ in clips), listed
            # texts as the user typed them (the table wraps long lines; compare without whitespace)
            flat = re.sub(r"\s+", "", listed)
            assert sum(re.sub(r"\s+", "", text) in flat for _, text in clips) >= 6, listed
            assert "8 clips" in tab.locator("#ft-stats").inner_text()
            assert DATASET in tab.locator("#ft-datasets").inner_text()
            tab.screenshot(path=str(artifacts / "finetune-e2e-dataset.png"), full_page=True)

            # ---- 2. Train: the new dataset, the tiny base, quick preset, EPOCHS epochs, batch 2
            tab.get_by_role("tab", name="2. Train").click()
            tab.locator("#tr-start").wait_for()
            tab.locator("#tr-refresh").click()  # the dataset list was read at launch, before the build
            pick(tab, "tr-dataset", DATASET)
            pick(tab, "tr-base", "Tiny random model (noise; for testing)")
            tab.locator("#tr-preset").get_by_text("quick", exact=True).click()
            # wait for the preset to land before editing its fields (its answer would overwrite them)
            tab.wait_for_function("() => document.querySelector('#tr-epochs input').value === '5'")
            fill_number(tab, "tr-epochs", str(EPOCHS))
            fill_number(tab, "tr-batch", "2")
            tab.locator("#tr-start").click()

            status = tab.locator("#tr-status")
            status.get_by_text("RUNNING").wait_for(timeout=60_000)
            run_id = status.locator("code").first.inner_text().strip()
            started = status.inner_text()
            assert run_id and f"dataset {DATASET}" in started and "base tiny" in started and f"/{EPOCHS}" in started, (
                started
            )

            # The plot appears while the run is going, then grows as more steps arrive.
            deadline = time.monotonic() + TRAIN_TIMEOUT_S
            first_step = first_points = None
            grew = False
            while time.monotonic() < deadline:
                text = status.inner_text()
                points = vertices(train_path(tab))
                if "FINISHED" in text or "FAILED" in text or "CRASHED" in text:
                    break
                if "RUNNING" in text and points >= 1:
                    step = status_step(text)
                    if first_step is None:
                        first_step, first_points = step, points
                    elif step > first_step and points > first_points:
                        grew = True
                        tab.screenshot(path=str(artifacts / "finetune-e2e-training.png"), full_page=True)
                        break
                tab.wait_for_timeout(250)
            assert first_step is not None, f"the loss plot was never drawn while running: {status.inner_text()}"
            assert grew, f"step {first_step} / {first_points} points never grew: {status.inner_text()}"

            while "FINISHED" not in status.inner_text():
                text = status.inner_text()
                assert "FAILED" not in text and "CRASHED" not in text, text + "\n" + tab.locator("#tr-log").inner_text()
                assert time.monotonic() < deadline, f"training did not finish in {TRAIN_TIMEOUT_S:.0f} s: {text}"
                tab.wait_for_timeout(500)
            done = status.inner_text()
            assert run_id in done and f"Epoch {EPOCHS}/{EPOCHS}" in done
            assert status_step(done) > first_step
            # both curves (train and eval loss) are drawn in colour and named in the legend, not just the axes
            tab.wait_for_function(
                "() => document.querySelectorAll('#tr-loss-plot .mark-line path[stroke]').length >= 2", timeout=30_000
            )
            assert drawn(tab, "train loss") and drawn(tab, "eval loss")
            assert vertices(train_path(tab)) > first_points
            legend = tab.locator("#tr-loss-plot .role-legend-label").all_text_contents()
            assert {"train loss", "eval loss"} <= {t.strip() for t in legend}, legend

            # ---- export the run and find the model in the TTS tab
            tab.locator("#tr-runs").get_by_text(run_id).filter(visible=True).first.click()
            tab.locator("#tr-selected").get_by_text(run_id).wait_for(timeout=15_000)
            tab.locator("#tr-export-name textarea, #tr-export-name input").first.fill(MODEL)
            tab.locator("#tr-export").click()
            result = tab.locator("#tr-export-result")
            result.get_by_text("Exported").wait_for(timeout=TIMEOUT_MS)
            assert MODEL in result.inner_text()
            tab.screenshot(path=str(artifacts / "finetune-e2e-export.png"), full_page=True)

            out = models_dir / MODEL
            for name in ("config.json", "model.pth", "vocab.json"):
                assert (out / name).is_file() and (out / name).stat().st_size > 0, f"{out / name} missing"

            tab.get_by_role("tab", name="TTS").click()
            tab.locator("#tts-refresh-models").click()
            tab.wait_for_timeout(1000)  # let the refreshed choices arrive before opening the list
            tab.locator("#tts-model input").click()
            tab.get_by_role("option", name=f"{MODEL} (workspace/models)", exact=True).wait_for(timeout=15_000)
            tab.keyboard.press("Escape")
        finally:
            browser.close()
