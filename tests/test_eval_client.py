"""The Eval endpoints through gradio_client against the launched app: ``eval_run`` streams until the run
ends (a script's ``predict`` gets the finished run), and a run outlives the client that started it."""

from __future__ import annotations

import time

import pytest

from tests.browser_helpers import launched_app, tiny_settings
from tests.eval_helpers import gate_synthesis

gradio_client = pytest.importorskip("gradio_client")


def eval_values(**overrides) -> dict:
    """The eval_run endpoint's inputs by name (the Run form's order)."""
    values = {
        "set_spec": "builtin:en",
        "upload": None,
        "language": "en",
        "max_sentences": 1,
        "models": ["tiny"],
        "voices": ["speaker:Tiny Bob"],
        "voice_files": None,
        "repeats": 1,
        "seed": 5,
        "temperature": 0.85,
        "top_k": 50,
        "top_p": 0.85,
        "repetition_penalty": 2.0,
        "length_penalty": 1.0,
        "speed": 1.0,
        "max_audio_tokens": 8,
        "asr_model": "tiny-random",
        "beam_size": 0,
        "batch_size": 1,
        "ground_truth": False,
        "name": "api",
    }
    values.update(overrides)
    return values


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_eval_run_returns_the_finished_run_and_a_run_outlives_its_client(tmp_path, tiny_models, monkeypatch):
    settings = tiny_settings(tmp_path, tiny_models)
    with launched_app(settings) as (demo, url):
        ev = demo.engines.eval
        client = gradio_client.Client(url, verbose=False)
        progress, table, link, files = client.predict(**eval_values(), api_name="/eval_run")
        assert "Finished" in progress and "1/1 utterances" in progress  # streamed to the end, as before
        assert "report.html" in link and len(files) == 4  # report, results, timings, summary
        first = ev.job

        gate = gate_synthesis(demo.engines.tts, monkeypatch, free=2)  # warm-up + first utterance, then hold
        submitted = client.submit(**eval_values(max_sentences=3, name="left"), api_name="/eval_run")
        job = wait_for(lambda: ev.job is not first and ev.job, 60, "the second run to start")
        wait_for(lambda: (p := job.snapshot().progress) is not None and p.done >= 1, 120, "its first utterance")
        submitted.cancel()  # the script gives up and goes away
        client.close()
        time.sleep(3)  # longer than the watcher's heartbeat: Gradio has dropped it by now
        assert not job.ended and ev.running == job.run_id
        gate.set()
        final = job.wait(timeout=300)
        assert final.state == "done" and final.done == final.total == 3

        again = gradio_client.Client(url, verbose=False)  # the engine is free again for the next script
        progress, *_ = again.predict(**eval_values(name="after"), api_name="/eval_run")
        assert "Finished" in progress
        again.close()
