"""A script project driven in Chromium (issue 22): create, generate, listen to a line, edit and regenerate it,
export with captions. Screenshot: test-artifacts/script.png."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, launched_app, tiny_settings

pytestmark = pytest.mark.browser

TIMEOUT_MS = 240_000  # a few tiny syntheses on a busy 2-core CPU


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, tiny_models):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium chromium-driver)")
    settings = tiny_settings(tmp_path_factory.mktemp("script-browser"), tiny_models)
    with launched_app(settings) as (_demo, url), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            tab.set_default_timeout(30_000)
            tab.goto(url)
            yield tab
        finally:
            browser.close()


def wait_status(page, text: str) -> None:
    page.locator("#script-status").get_by_text(text).wait_for(timeout=TIMEOUT_MS)


def test_a_script_project_from_creation_to_export(page, artifacts):
    page.get_by_role("tab", name="TTS").click()
    page.locator("#tts-settings").get_by_text("Generation settings").click()
    page.locator("#tts-max-tokens input").fill("8")  # the tiny GPT never stops by itself
    page.locator("#script-section").get_by_text("Script: long-form projects").click()

    page.locator("#script-name input, #script-name textarea").first.fill("browser-talk")
    script = "Ann: Hello there.\n[pause:0.5s]\nBob: Hi Ann, how are you?\nAnn: Fine, thanks."
    page.locator("#script-text textarea").fill(script)
    page.locator("#script-voices textarea").fill("Ann = speaker:Tiny Alice\nBob = speaker:Tiny Bob")
    page.locator("#script-create").click()
    wait_status(page, "0/3 line(s) done")

    page.locator("#script-generate").click()
    wait_status(page, "3/3 line(s) done")
    table = page.locator("#script-lines").inner_text()
    assert "Hi Ann, how are you?" in table and "to generate" not in table

    # Listen to line 2, edit it, regenerate only it.
    page.locator("#script-line input").click()
    page.get_by_role("option").filter(has_text="L0002").click()
    page.locator("#script-line-audio audio[src]").first.wait_for(state="attached", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#script-line-text textarea').value.includes('Hi Ann')")
    page.locator("#script-line-text textarea").fill("Hi Ann, long time no see.")
    page.locator("#script-line-save").click()
    wait_status(page, "2/3 line(s) done")
    assert "edited: to generate" in page.locator("#script-lines").inner_text()
    page.locator("#script-line-regen").click()
    wait_status(page, "3/3 line(s) done")
    assert "long time no see" in page.locator("#script-lines").inner_text()

    # Export as MP3 with captions.
    page.locator("#script-format").get_by_text("mp3").click()
    page.locator("#script-export").click()
    files = page.locator("#script-files")
    files.get_by_text(".vtt").first.wait_for(timeout=60_000)
    assert files.get_by_text(".srt").count() >= 1 and files.get_by_text(".mp3").count() >= 1
    page.screenshot(path=str(artifacts / "script.png"), full_page=True)


def test_a_bad_script_line_and_a_bad_pronunciation_map_show_clear_errors(page):
    page.locator("#script-name input, #script-name textarea").first.fill("bad")
    page.locator("#script-text textarea").fill("Cleo: Nobody maps me.")
    page.locator("#script-voices textarea").fill("Ann = speaker:Tiny Alice")
    page.locator("#script-create").click()
    page.locator(".toast-body").filter(has_text="has no voice").first.wait_for(state="visible", timeout=60_000)

    page.locator("#pron-section").get_by_text("Pronunciation map").click()
    editor = page.locator("#pron-map .cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.type('{"en": [{"match": "(", "say": "x", "regex": true}]}')
    page.locator("#pron-save").click()
    page.locator(".toast-body").filter(has_text="not a valid regex").first.wait_for(state="visible", timeout=60_000)
