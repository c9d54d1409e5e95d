"""The user's path in a real browser: Debian's Chromium driven by Playwright against the launched tiny app.

Screenshots land in test-artifacts/ (tts.png, asr.png, error.png) for a reviewer to look at.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, launched_app, tiny_settings

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MAX_TOKENS = "40"  # the tiny GPT would otherwise babble to its token limit
TIMEOUT_MS = 180_000  # one tiny synthesis or transcription on a busy 2-core CPU


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, tiny_models):
    """A Chromium tab on the freshly launched tiny app (one app and one browser for the module)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium chromium-driver)")
    settings = tiny_settings(tmp_path_factory.mktemp("browser-app"), tiny_models)
    with launched_app(settings) as (_demo, url), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            tab.set_default_timeout(30_000)
            tab.goto(url)
            yield tab
        finally:
            browser.close()


def pick(page, elem_id: str, option: str) -> None:
    """Choose an entry of a Gradio dropdown by its label."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    assert page.locator(f"#{elem_id} input").input_value() == option


def upload(page, elem_id: str, path: Path) -> None:
    """Put a file into a gr.File and wait until Gradio has uploaded it (its name is listed)."""
    # A tab's components mount when the tab is first shown; files set on an input that is not
    # mounted yet are lost, so wait for the drop zone to be on screen first.
    page.locator(f"#{elem_id}").get_by_role("button", name="Click to upload or drop files").wait_for()
    # On a loaded CI machine a file set while the page is still re-rendering is sometimes dropped without
    # a trace: set it again (up to three times) rather than wait for an upload that never started.
    for attempt in range(3):
        page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))
        try:
            page.locator(f"#{elem_id}").get_by_text(path.name).first.wait_for(timeout=30_000)
            return
        except Exception:
            if attempt < 2:
                continue
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"upload-failed-{elem_id}.png"), full_page=True)  # for the CI log
            raise


def player(page):
    """The output's media element (Gradio's waveform player keeps it in a shadow root; locators pierce it)."""
    return page.locator("#tts-audio audio[src]").first


def audio_src(page) -> str:
    return player(page).get_attribute("src") if page.locator("#tts-audio audio[src]").count() else ""


def prepare_tts(page, reference: Path) -> None:
    """A reference clip and the token cap in place (each test can run alone or after the others)."""
    page.get_by_role("tab", name="TTS").click()
    if page.locator("#tts-reference").get_by_text(reference.name).count() == 0:
        upload(page, "tts-reference", reference)
    if not page.locator("#tts-max-tokens input").is_visible():
        page.locator("#tts-settings").get_by_text("Generation settings").click()
    page.locator("#tts-max-tokens input").fill(MAX_TOKENS)


@pytest.fixture(scope="module")
def reference(speak) -> Path:
    return speak("The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background.", name="ref")


def test_page_opens_with_the_tiny_banner(page):
    banner = page.locator("#tiny-banner")
    banner.wait_for()
    assert "Tiny-model mode" in banner.inner_text()
    tabs = [t.strip() for t in page.get_by_role("tab").all_inner_texts()]
    assert tabs[:4] == ["TTS", "ASR", "Finetune", "Eval"]


def test_first_generate_with_the_defaults_speaks_and_warns_about_the_script(page, reference):
    """A new user: type, Generate, hear speech (a built-in speaker is preselected); a clip replaces it."""
    page.reload()  # the page as a new user gets it, whatever the tests before did
    page.get_by_role("tab", name="TTS").click()
    assert page.locator("#tts-speaker input").input_value() == "Tiny Alice"
    page.locator("#tts-text textarea").fill("Hello, this is my first try.")
    page.locator("#tts-generate").click()
    page.locator("#tts-audio audio[src]").first.wait_for(state="attached", timeout=TIMEOUT_MS)
    page.locator("#tts-stats").get_by_text("Real-time factor").wait_for()
    assert page.locator(".toast-body").filter(has_text="No voice given").count() == 0
    first = audio_src(page)
    assert first

    # Arabic text with English picked: it speaks, and says what is wrong.
    page.locator("#tts-text textarea").fill("مرحبا بكم في المختبر")
    page.locator("#tts-generate").click()
    toast = page.locator(".toast-body").filter(has_text="mostly in Arabic script").first
    toast.wait_for(state="visible", timeout=TIMEOUT_MS)
    assert "the language is English (en)" in toast.inner_text() and "pick Arabic (ar)" in toast.inner_text()
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while audio_src(page) in ("", first):
        assert time.monotonic() < deadline, "no audio for the Arabic text"
        page.wait_for_timeout(500)

    # An uploaded clip is the voice now: the preselected speaker steps aside (no "both selected" error).
    upload(page, "tts-reference", reference)
    page.wait_for_function("() => document.querySelector('#tts-speaker input').value === '(none)'")


def test_tts_generate_and_play(page, reference, artifacts):
    prepare_tts(page, reference)
    page.locator("#tts-text textarea").fill("Hola, ¿qué tal? Esta es una prueba del navegador.")
    pick(page, "tts-language", "Spanish (es)")
    page.locator("#tts-generate").click()

    page.locator("#tts-audio audio[src]").first.wait_for(state="attached", timeout=TIMEOUT_MS)
    page.locator("#tts-stats").get_by_text("Real-time factor").wait_for()
    assert audio_src(page)  # a blob: URL of the fetched WAV, made by the waveform player

    # Play it: the element must really start (not paused, time moving).
    audio = player(page)
    audio.evaluate("a => a.play()")
    page.wait_for_timeout(500)
    paused, current, duration = audio.evaluate("a => [a.paused, a.currentTime, a.duration]")
    assert duration > 0
    assert not paused or current > 0  # playing, or already played through a very short clip
    assert current > 0
    stats = page.locator("#tts-stats").inner_text()
    assert "Real-time factor" in stats and "Tiny random model" in stats
    assert page.locator("#tts-files").get_by_text(".json").count() >= 1
    audio.evaluate("a => a.pause()")
    page.screenshot(path=str(artifacts / "tts.png"), full_page=True)


def test_asr_transcribe(page, speak, artifacts):
    jfk = SHARED_DATA / "whisper" / "jfk.flac"  # the real clip when ../shared/data exists
    clip = jfk if jfk.is_file() else speak("And so my fellow Americans, ask not what your country can do for you.")
    page.get_by_role("tab", name="ASR").click()
    upload(page, "asr-upload", clip)
    page.locator("#asr-transcribe").click()

    page.locator("#asr-stats").get_by_role("columnheader", name="Processing time").wait_for(timeout=TIMEOUT_MS)
    assert clip.name in page.locator("#asr-stats").inner_text()
    rows = page.locator("#asr-segments [role=row].virtual-row")  # the data grid's body rows
    assert rows.count() >= 1
    assert page.locator("#asr-segments [data-testid=cell-0-0]").inner_text().strip() == clip.name
    # The tiny model detects some language (random weights): one must be shown, whichever it is.
    assert page.locator("#asr-detected-language textarea").input_value().strip()
    assert page.locator("#asr-files").get_by_text(".srt").count() >= 1
    page.screenshot(path=str(artifacts / "asr.png"), full_page=True)


def test_empty_text_shows_an_error_and_the_app_keeps_working(page, reference, artifacts):
    prepare_tts(page, reference)
    page.locator("#tts-text textarea").fill("")
    before = audio_src(page)
    page.locator("#tts-generate").click()
    toast = page.locator(".toast-body").filter(has_text="The text is empty").first
    toast.wait_for(state="visible", timeout=60_000)
    assert "Type what the voice should say" in toast.inner_text()
    page.wait_for_timeout(500)  # let the toast finish sliding in
    page.screenshot(path=str(artifacts / "error.png"), animations="disabled")  # viewport: the toast is pinned there

    # Same page, no reload: a valid request goes through.
    page.locator("#tts-text textarea").fill("Still working after the error.")
    page.locator("#tts-generate").click()
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while audio_src(page) in ("", before):
        assert time.monotonic() < deadline, "no new audio after the error"
        page.wait_for_timeout(500)
    assert page.locator("#tts-stats").get_by_text("Real-time factor").count() == 1
