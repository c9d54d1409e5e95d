"""Streaming TTS: ``TTSEngine.synthesize_stream`` and the TTS tab's Stream path (tiny models: plumbing only,
the audio is noise).

Order, not timing: where a test needs "before", a callback of the generating thread waits for the consumer,
so a stream that only delivered at the end would never let it go (the wait's timeout fails the test).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engines import Engines
from engines.core.audio import pcm16
from engines.core.errors import CancelledError, InputError, MissingWeightsError
from engines.core.options import TTSOptions
from pages import tts as page
from tests.test_tts_page import values

TWO = "The first sentence is here. The second one follows it."
FAST = TTSOptions(language="en", seed=7, max_audio_tokens=30)  # 30 tokens: two streamed chunks per sentence
LONG_TEXT = " ".join(f"This is sentence number {n} of a long request." for n in range(1, 21))
WAIT = 120  # seconds a test waits for the other thread before calling it a failure


@pytest.fixture()
def engines(settings, tiny_models) -> Engines:
    """A fresh workspace and engine set (only the TTS engine is under test here)."""
    engines = Engines.create(settings, tiny=tiny_models)
    return engines


def _wavs(engines) -> list:
    return sorted(engines.settings.workspace_sub("outputs", "tts").glob("*.wav"))


def _lock_free(engines, timeout: float = 0.0) -> bool:
    if engines.gpu_lock.acquire(timeout=timeout):
        engines.gpu_lock.release()
        return True
    return False


def test_first_chunk_arrives_before_the_second_sentence_is_generated(engines):
    got_first = threading.Event()
    events: list[str] = []

    def progress(fraction: float, desc: str = "") -> None:
        events.append(desc)
        if desc == "Sentence 2/2":  # the generating thread waits here until the consumer has audio
            events.append("released" if got_first.wait(WAIT) else "timed out")

    called = time.perf_counter()
    stream = engines.tts.synthesize_stream(TWO, speaker="Tiny Alice", options=FAST, save=False, progress=progress)
    chunks = []
    for chunk in stream:
        if not chunks:
            events.append("first chunk")
            got_first.set()
        chunks.append(chunk)
    assert events.index("first chunk") < events.index("Sentence 2/2")
    assert "released" in events and "timed out" not in events
    assert len(chunks) >= 4  # two chunks per sentence, and the pause between them
    assert stream.result is not None and stream.result.streamed
    assert 0 < stream.result.first_audio_seconds < time.perf_counter() - called  # measured from the call


def test_concatenated_chunks_are_the_saved_file(engines):
    stream = engines.tts.synthesize_stream(TWO, speaker="Tiny Alice", options=FAST)
    chunks = list(stream)
    result = stream.result
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    audio = np.concatenate(chunks)
    assert np.array_equal(audio, result.audio)
    assert stream.sample_rate == result.sample_rate == 24000
    samples, sr = sf.read(result.path, dtype="int16")
    assert sr == 24000 and np.array_equal(samples, pcm16(audio))  # exact, the int16 rule is save_wav's
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["streamed"] is True and sidecar["seed_used"] == FAST.seed
    assert sidecar["timings"]["first_audio_seconds"] == pytest.approx(result.first_audio_seconds, abs=1e-3)
    assert sidecar["chunks"] == result.chunks and len(result.chunks) == 2
    # One pause of silence between the sentences, as synthesize puts it.
    pause = int(0.2 * sr)
    assert any(len(c) == pause and not c.any() for c in chunks)


def test_plain_synthesis_is_unchanged_and_says_it_was_not_streamed(engines):
    result = engines.tts.synthesize(TWO, speaker="Tiny Alice", options=FAST)
    assert not result.streamed and result.first_audio_seconds is None
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["streamed"] is False and sidecar["timings"]["first_audio_seconds"] is None


def test_seeded_stream_is_reproducible(engines):
    first = np.concatenate(list(engines.tts.synthesize_stream(TWO, speaker="Tiny Alice", options=FAST, save=False)))
    again = np.concatenate(list(engines.tts.synthesize_stream(TWO, speaker="Tiny Alice", options=FAST, save=False)))
    other = TTSOptions(language="en", seed=8, max_audio_tokens=30)
    third = np.concatenate(list(engines.tts.synthesize_stream(TWO, speaker="Tiny Alice", options=other, save=False)))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, third)


def test_stream_can_be_advanced_from_several_threads(engines):
    """Gradio and Starlette call next() from whichever pool thread is free; the GPU lock is not theirs."""
    stream = engines.tts.synthesize_stream(TWO, speaker="Tiny Alice", options=FAST, save=False)
    chunks: list[np.ndarray] = []
    while not stream.finished:

        def step() -> None:
            chunk = stream.next_chunk(None)
            if chunk is not None:
                chunks.append(chunk)

        worker = threading.Thread(target=step)
        worker.start()
        worker.join(WAIT)
        assert not worker.is_alive()
    assert stream.result is not None and np.array_equal(np.concatenate(chunks), stream.result.audio)
    assert _lock_free(engines)


def test_closing_early_saves_nothing_and_frees_the_gpu(engines):
    # Uncapped, the tiny GPT never stops on its own: twenty sentences would take minutes.
    stream = engines.tts.synthesize_stream(LONG_TEXT, speaker="Tiny Alice", options=TTSOptions(language="en", seed=1))
    assert next(stream) is not None
    assert not _lock_free(engines) and not stream.finished  # generation is under way in its thread
    closer = threading.Thread(target=stream.close)  # closed from another thread than the iterating one
    closer.start()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert _lock_free(engines)  # close() returns once the generating thread let go of the GPU
    assert stream.finished and stream.result is None
    assert next(stream, None) is None  # a closed stream is over
    assert not _wavs(engines)
    result = engines.tts.synthesize("Short.", speaker="Tiny Alice", options=FAST)  # the next request runs
    assert [p.name for p in _wavs(engines)] == [result.path.name]


def test_a_stream_nobody_iterates_holds_nothing(engines):
    stream = engines.tts.synthesize_stream(TWO, speaker="Tiny Alice", options=FAST)
    assert _lock_free(engines)
    assert not [t for t in threading.enumerate() if t.name == "tts-stream"]
    stream.close()
    assert not _wavs(engines)


def test_cancel_event_stops_the_stream_with_cancelled_error(engines):
    cancel = threading.Event()
    stream = engines.tts.synthesize_stream(
        LONG_TEXT, speaker="Tiny Alice", options=TTSOptions(language="en", seed=1), cancel=cancel
    )
    assert next(stream) is not None
    cancel.set()
    with pytest.raises(CancelledError, match="cancelled"):
        for _ in stream:
            pass
    assert stream.finished and stream.result is None
    assert _lock_free(engines, timeout=WAIT)
    assert not _wavs(engines)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"text": "   "}, InputError, "empty"),
        ({"text": "?!"}, InputError, "no letters"),
        ({"options": TTSOptions(language="xx")}, InputError, "not supported"),
        ({"options": TTSOptions(temperature=9.0)}, InputError, "temperature"),
        ({"speaker": "Nobody"}, InputError, "Unknown built-in speaker"),
        ({"speaker": None}, InputError, "No voice given"),
        ({"model_id": "no-such-model"}, MissingWeightsError, "not found"),
    ],
)
def test_bad_input_raises_before_the_stream_starts(engines, kwargs, error, match):
    call = {"text": "Hello.", "speaker": "Tiny Alice", "options": FAST, **kwargs}
    text = call.pop("text")
    with pytest.raises(error, match=match):
        engines.tts.synthesize_stream(text, **call)
    assert not [t for t in threading.enumerate() if t.name == "tts-stream"]
    assert engines.tts.holder.loaded is None  # refused before any model work


def test_text_too_long_is_refused_before_the_stream(engines):
    with pytest.raises(InputError, match="limit"):
        engines.tts.synthesize_stream("a" * (engines.settings.max_text_chars + 1), speaker="Tiny Alice")


# ---------------------------------------------------------------- the TTS tab's Stream path


def _run_page_stream(engines, **overrides):
    updates = list(page.generate_stream_event(engines, values(**overrides)))
    live = [u[0] for u in updates if isinstance(u[0], tuple)]
    return updates, live


def test_page_stream_plays_int16_chunks_equal_to_the_saved_wav(engines):
    updates, live = _run_page_stream(engines, text=TWO, speaker="Tiny Alice", tokens=30, seed=5)
    assert live, "nothing was sent to the live player"
    assert all(sr == 24000 and chunk.dtype == np.int16 for sr, chunk in live)
    assert all(len(chunk) >= 24000 for _sr, chunk in live[:-1])  # >= 1 s each, only the last may be shorter
    audio_path, files, stats = updates[-1][1:]
    samples, _ = sf.read(audio_path, dtype="int16")
    assert np.array_equal(np.concatenate([chunk for _sr, chunk in live]), samples)
    assert files == [audio_path, audio_path[:-4] + ".json"] and "Real-time factor" in stats
    sidecar = json.loads(open(files[1]).read())
    assert sidecar["streamed"] is True and sidecar["seed_used"] == 5


def test_page_stream_gives_the_same_final_outputs_as_generate(engines):
    """Same form, same kind of final outputs (path, [wav, json], stats) as the non-streamed event."""
    _updates, _live = _run_page_stream(engines, speaker="Tiny Alice", tokens=12)
    final_stream = _updates[-1][1:]
    plain = list(page.generate_event(engines, values(speaker="Tiny Alice", tokens=12)))[-1]
    assert len(plain) == len(final_stream) == 3
    for streamed_out, plain_out in zip(final_stream, plain, strict=True):
        assert type(streamed_out) is type(plain_out)
    assert len(_wavs(engines)) == 2


def test_page_stream_bad_input_is_a_page_error_before_anything_plays(engines):
    import gradio as gr

    event = page.generate_stream_event(engines, values(text="", speaker="Tiny Alice"))
    with pytest.raises(gr.Error, match="empty"):
        next(event)
    event = page.generate_stream_event(engines, values(files=["/nonexistent.wav"], speaker="Tiny Alice"))
    with pytest.raises(gr.Error, match="Both reference clips"):
        next(event)


def test_closing_the_page_stream_cancels_generation(engines):
    event = page.generate_stream_event(engines, values(text=LONG_TEXT, speaker="Tiny Alice", tokens=0))
    assert next(event) is not None  # a check-in or the first live chunk: generation under way
    started = time.monotonic()
    event.close()  # what Gradio does when the client is gone
    assert _lock_free(engines), f"the GPU was still held {time.monotonic() - started:.1f} s after close"
    assert not _wavs(engines)


def test_stream_event_shares_the_form_and_adds_the_live_player(engines):
    import gradio as gr

    with gr.Blocks() as demo:
        page.build(engines)
    fns = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
    plain, streamed = fns["tts_generate"], fns["tts_generate_stream"]
    assert [c.elem_id for c in streamed.inputs] == [c.elem_id for c in plain.inputs]  # one form
    assert [c.elem_id for c in streamed.outputs] == ["tts-live"] + [c.elem_id for c in plain.outputs]
    assert streamed.concurrency_id == plain.concurrency_id == "gpu" and streamed.concurrency_limit == 1
    live = streamed.outputs[0]
    assert live.streaming and live.autoplay and not live.visible
    switch = next(fn for fn in demo.fns.values() if [c.elem_id for c in fn.inputs] == ["tts-stream"])
    on = switch.fn(True)
    assert [u.visible for u in on] == [False, True, True]  # plain button hidden; stream button and player shown


@pytest.mark.slow
def test_gradio_client_streams_then_gets_the_files_and_a_cancel_frees_the_gpu(tmp_path, tiny_models):
    import gradio_client

    from tests.browser_helpers import launched_app, tiny_settings

    with launched_app(tiny_settings(tmp_path, tiny_models)) as (demo, url):
        client = gradio_client.Client(url, verbose=False)
        job = client.submit(**values(text=TWO, speaker="Tiny Alice", tokens=40), api_name="/tts_generate_stream")
        updates = list(job)
        live = [i for i, u in enumerate(updates) if isinstance(u[0], str) and u[0].endswith(".m3u8")]
        final = job.result()
        assert live and live[-1] < len(updates) - 1  # live audio came first, the files after it
        assert final[1].endswith(".wav") and [Path(f).suffix for f in final[2]] == [".wav", ".json"]

        long_job = client.submit(
            **values(text=LONG_TEXT, speaker="Tiny Alice", tokens=0), api_name="/tts_generate_stream"
        )
        deadline = time.monotonic() + WAIT
        while not any(isinstance(u[0], str) for u in long_job.outputs()):  # its first live piece
            assert time.monotonic() < deadline and not long_job.done()
            time.sleep(0.2)
        long_job.cancel()
        short = client.predict(**values(text="Short.", speaker="Tiny Alice"), api_name="/tts_generate")
        assert short[0]
        wavs = _wavs(demo.engines)
        assert len(wavs) == 2  # the first stream's and the short one's: the cancelled stream saved nothing
