"""A TTS request its client abandons is cancelled: it does not hold the GPU slot for its full length.

The tiny GPT never emits its stop token, so uncapped it generates every sentence to the model's token
limit: twenty sentences take minutes (139 s for ten, measured on this 2-core CPU), far longer than the
second these tests wait before giving up on the request.
"""

from __future__ import annotations

import threading
import time

import gradio_client
import pytest

from engines.core.errors import CancelledError
from engines.core.options import TTSOptions
from pages import tts as page
from tests.browser_helpers import launched_app, tiny_settings
from tests.test_tts_page import values

LONG_TEXT = " ".join(f"This is sentence number {n} of a long request." for n in range(1, 21))


def test_synthesis_stops_when_cancelled(engines):
    cancel = threading.Event()
    seen: list[str] = []
    threading.Timer(1.0, cancel.set).start()
    with pytest.raises(CancelledError, match="cancelled"):
        engines.tts.synthesize(
            LONG_TEXT,
            speaker="Tiny Alice",
            options=TTSOptions(language="en", seed=1),
            save=True,
            cancel=cancel,
            progress=lambda f, desc="": seen.append(desc),
        )
    assert "Sentence 20/20" not in seen  # stopped inside the first sentences, not after all of them
    assert not list(engines.settings.workspace_sub("outputs", "tts").glob("*.wav"))  # nothing saved
    assert engines.gpu_lock.acquire(timeout=1)  # the GPU is free at once
    engines.gpu_lock.release()


def test_closing_the_generate_event_cancels_its_synthesis(engines):
    event = page.generate_event(engines, values(text=LONG_TEXT, speaker="Tiny Alice", tokens=0))
    assert next(event) is not None  # the first check-in: synthesis under way in the worker
    event.close()  # what Gradio does when the client is gone
    deadline = time.monotonic() + 60
    while not engines.gpu_lock.acquire(timeout=0.5):
        assert time.monotonic() < deadline, "the abandoned synthesis kept the GPU"
    engines.gpu_lock.release()
    assert not list(engines.settings.workspace_sub("outputs", "tts").glob("*.wav"))


def test_a_cancelled_api_call_does_not_block_the_next(tmp_path, tiny_models):
    settings = tiny_settings(tmp_path, tiny_models)
    with launched_app(settings) as (demo, url):
        client = gradio_client.Client(url, verbose=False)
        names = [p["parameter_name"] for p in client.view_api(print_info=False, return_format="dict")[
            "named_endpoints"]["/tts_generate"]["parameters"]]  # fmt: skip
        long_job = client.submit(
            **dict(zip(names, values(text=LONG_TEXT, speaker="Tiny Alice", tokens=0).values(), strict=True)),
            api_name="/tts_generate",
        )
        deadline = time.monotonic() + 60
        while long_job.status().code.name != "PROCESSING":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1.5)
        long_job.cancel()
        started = time.monotonic()
        short = client.predict(
            **dict(zip(names, values(text="Short.", speaker="Tiny Alice").values(), strict=True)),
            api_name="/tts_generate",
        )
        waited = time.monotonic() - started
        assert short[0] and waited < 60, f"the next request waited {waited:.0f} s behind the abandoned one"
        wavs = list(demo.engines.settings.workspace_sub("outputs", "tts").glob("*.wav"))
        assert len(wavs) == 1  # only the short request's audio: the abandoned one saved nothing
