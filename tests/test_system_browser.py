"""A newcomer getting XTTS v2 from the System panel, in a real browser (Chromium + Playwright).

The download itself is switched offline (the test never fetches 1.9 GB): what is checked is what the person
sees: the licence link, a refusal without the box ticked, and a clear message when the download fails.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engines.core import catalog as models
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, launched_app, tiny_settings

pytestmark = pytest.mark.browser


def test_xtts_download_asks_for_the_licence_then_reports_the_failure(tmp_path, tiny_models, monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium chromium-driver)")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("COQUI_TOS_AGREED", raising=False)
    settings = tiny_settings(tmp_path, tiny_models)
    settings = dataclasses.replace(settings, xtts_cache_dir=tmp_path / "xtts-cache")
    with launched_app(settings) as (_demo, url), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(30_000)
            page.goto(url)
            page.locator("#system-panel").get_by_text("System", exact=True).first.click()
            state = page.locator("#system-xtts-state")
            state.wait_for()
            assert "not on this machine" in state.inner_text()
            assert page.locator("#system-xtts-state a").get_attribute("href") == models.LICENCE_URL

            page.locator("#system-xtts-download").click()
            page.locator(".toast-body").filter(has_text="CPML").first.wait_for(state="visible")
            assert not models.licence_accepted(settings)

            page.locator("#system-xtts-agree input").check()
            page.locator("#system-xtts-download").click()
            toast = page.locator(".toast-body").filter(has_text="Could not download XTTS v2").first
            toast.wait_for(state="visible", timeout=120_000)
            assert "Traceback" not in toast.inner_text()
            assert models.licence_accepted(settings)
        finally:
            browser.close()
