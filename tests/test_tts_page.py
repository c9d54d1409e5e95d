"""TTS tab: callbacks called directly (errors become gr.Error) and the named API through gradio_client."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from config import load_settings
from engines import Engines
from pages import tts as page
from pages.common import generation_options

TOKENS = 12  # GPT audio tokens per sentence, keeps the tiny model quick


@pytest.fixture(scope="module")
def tts_engines(tmp_path_factory, tiny_models) -> Engines:
    """An engine set holding only the TTS engine (the other tabs are not under test here)."""
    root = tmp_path_factory.mktemp("tts-page")
    settings = load_settings(
        {"workspace": root / "workspace", "samples_dir": root / "samples", "tiny_models": True, "device": "cpu"}, env={}
    )
    engines = Engines.create(settings, tiny=tiny_models)
    return engines


@pytest.fixture(scope="module")
def ref(speak) -> Path:
    return speak("The quick brown fox jumps over the lazy dog, twice in a row.", name="page-ref")


def values(
    text="Hello from the page.",
    language="en",
    files=None,
    recording=None,
    voice=page.NONE,
    speaker=page.NONE,
    model="tiny",
    temperature=0.85,
    top_k=50,
    top_p=0.85,
    repetition_penalty=2.0,
    length_penalty=1.0,
    speed=1.0,
    seed=1234,
    split=True,
    tokens=TOKENS,
    retakes=0,
) -> dict:
    """The Generate button's inputs by the names the page's form gives them (dict order = the API's order)."""
    return {
        "text": text,
        "language": language,
        "files": files,
        "recording": recording,
        "voice": voice,
        "speaker": speaker,
        "model": model,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "repetition_penalty": repetition_penalty,
        "length_penalty": length_penalty,
        "speed": speed,
        "seed": seed,
        "split_sentences": split,
        "max_audio_tokens": tokens,
        "retakes": retakes,
    }


def gr_error(call) -> str:
    with pytest.raises(gr.Error) as exc:
        call()
    return exc.value.message


def test_char_counter():
    assert page.char_counter("", 2000) == "0 / 2000 characters"
    assert page.char_counter("  abc  ", 10) == "3 / 10 characters"
    assert page.char_counter("x" * 12, 10) == "**12 / 10 characters: 2 over the limit**"


def test_generate_callback_from_uploaded_clip(tts_engines, ref):
    audio, files, stats = page.generate_callback(tts_engines, values(files=[str(ref)]))
    assert Path(audio).is_file() and sf.info(audio).samplerate == 24000
    assert [Path(f).suffix for f in files] == [".wav", ".json"] and files[0] == audio
    sidecar = json.loads(Path(files[1]).read_text())
    assert sidecar["text"] == "Hello from the page." and sidecar["references"][0]["name"] == ref.name
    assert sidecar["options"]["max_audio_tokens"] == TOKENS and sidecar["options"]["seed"] == 1234
    for label in ("Generation time", "Audio duration", "Real-time factor", "Voice latents cached | no", "Seed | 1234"):
        assert label in stats
    assert "Tiny random model" in stats

    # Same clip again, from the recorder this time: the latents come from the cache.
    _, _, stats_again = page.generate_callback(tts_engines, values(recording=str(ref)))
    assert "Voice latents cached | yes" in stats_again


def test_generate_callback_builtin_speaker_and_random_seed(tts_engines):
    audio, _, stats = page.generate_callback(tts_engines, values(speaker="Tiny Alice", seed=-1))
    assert Path(audio).is_file()
    seed_line = next(line for line in stats.splitlines() if line.startswith("| Seed"))
    assert seed_line.split("|")[2].strip().isdigit()


def test_options_mapping():
    def build_options(language, temperature, top_k, top_p, rep, length, speed, seed, split, tokens):
        names = ("temperature", "top_k", "top_p", "repetition_penalty", "length_penalty", "speed", "seed")
        form = dict(zip(names, (temperature, top_k, top_p, rep, length, speed, seed)))
        return generation_options({**form, "split_sentences": split, "max_audio_tokens": tokens}, language)

    opts = build_options("de", 0.5, 10.0, 0.9, 3.0, 1.0, 1.2, -1, False, 0)
    assert (opts.language, opts.top_k, opts.seed, opts.split_sentences, opts.max_audio_tokens) == (
        "de",
        10,
        None,
        False,
        None,
    )
    assert build_options("en", 0.5, 10, 0.9, 3.0, 1.0, 1.0, 42.0, True, 30).seed == 42


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "   "}, "The text is empty"),
        ({"language": "xx"}, "'xx' is not supported by XTTS v2. Choose one of: en (English)"),
        ({}, "No voice given"),
        ({"speaker": "Nobody"}, "Unknown built-in speaker 'Nobody'"),
        ({"speaker": "Tiny Alice", "temperature": 9.0}, "temperature must be between 0.05 and 2"),
        ({"speaker": "Tiny Alice", "model": "missing-model"}, "missing-model not found"),
    ],
)
def test_generate_callback_errors(tts_engines, kwargs, message):
    assert message in gr_error(lambda: page.generate_callback(tts_engines, values(**kwargs)))


def test_generate_callback_text_over_limit(tts_engines):
    limit = tts_engines.settings.max_text_chars
    message = gr_error(
        lambda: page.generate_callback(tts_engines, values(text="a" * (limit + 5), speaker="Tiny Alice"))
    )
    assert f"the limit is {limit}" in message


def test_generate_callback_bad_audio(tts_engines, tmp_path, ref):
    fake = tmp_path / "song.wav"
    fake.write_bytes(b"RIFF....WAVEfmt definitely not audio" * 10)
    assert "song.wav is not a readable audio file" in gr_error(
        lambda: page.generate_callback(tts_engines, values(files=[str(fake)]))
    )
    silent = tmp_path / "quiet.wav"
    sf.write(silent, np.zeros(48000, dtype=np.float32), 16000)
    assert "quiet.wav is silent" in gr_error(lambda: page.generate_callback(tts_engines, values(recording=str(silent))))
    clash = gr_error(lambda: page.generate_callback(tts_engines, values(files=[str(ref)], speaker="Tiny Bob")))
    assert "Both reference clips and the built-in speaker 'Tiny Bob' are selected" in clash


def test_save_voice_then_generate_with_it(tts_engines, ref):
    dropdown, cleared = page.save_voice_callback(tts_engines, "page voice", [str(ref)], None)
    assert dropdown.value == "page voice" and "page voice" in [c[1] for c in dropdown.choices] and cleared == ""
    audio, files, _ = page.generate_callback(tts_engines, values(voice="page voice"))
    assert json.loads(Path(files[1]).read_text())["references"][0]["name"] == ref.name
    assert "already exists" in gr_error(lambda: page.save_voice_callback(tts_engines, "page voice", [str(ref)], None))
    assert "not allowed" in gr_error(lambda: page.save_voice_callback(tts_engines, "../up", [str(ref)], None))
    assert "No clips" in gr_error(lambda: page.save_voice_callback(tts_engines, "empty", None, None))
    refreshed = page.refresh_voices_callback(tts_engines, "page voice")
    assert refreshed.value == "page voice"


def test_model_and_speaker_dropdowns(tts_engines):
    models = page.refresh_models_callback(tts_engines, "gone")
    assert models.value == "tiny" and [c[1] for c in models.choices][:2] == ["tiny", "xtts_v2"]
    speakers = page.speakers_callback(tts_engines, "tiny", page.NONE)
    assert [c[1] for c in speakers.choices] == [page.NONE, "Tiny Alice", "Tiny Bob"]
    base = page.speakers_callback(tts_engines, "xtts_v2", "Tiny Alice")  # not downloaded: none yet
    assert [c[1] for c in base.choices] == [page.NONE] and base.value == page.NONE


def test_build_has_elem_ids_and_named_api(tts_engines):
    with gr.Blocks() as demo:
        page.build(tts_engines)
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {
        "tts-text",
        "tts-language",
        "tts-reference",
        "tts-speaker",
        "tts-model",
        "tts-generate",
        "tts-audio",
        "tts-stats",
    } <= ids
    generate = next(fn for fn in demo.fns.values() if fn.api_name == "tts_generate")
    assert generate.concurrency_id == "gpu" and generate.concurrency_limit == 1


def test_gradio_client_calls_tts_generate(tts_engines, ref):
    from gradio_client import Client, handle_file

    with gr.Blocks() as demo:
        page.build(tts_engines)
    demo.queue()
    _, url, _ = demo.launch(
        prevent_thread_lock=True, quiet=True, allowed_paths=[str(tts_engines.settings.workspace_dir)]
    )
    try:
        client = Client(url, verbose=False)
        audio, files, stats = client.predict(*values(files=[handle_file(str(ref))]).values(), api_name="/tts_generate")
        assert sf.info(audio).samplerate == 24000
        assert len(files) == 2 and "Generation time" in stats
        with pytest.raises(Exception, match="The text is empty"):
            client.predict(*values(text="", files=[handle_file(str(ref))]).values(), api_name="/tts_generate")
    finally:
        demo.close()


def test_generate_is_serialised_with_other_gpu_work(tts_engines):
    """The engine holds the shared GPU lock while it runs: another holder waits."""
    order: list[str] = []
    started = threading.Event()

    def other_job():
        with tts_engines.gpu_lock:
            started.set()
            order.append("other-start")
            threading.Event().wait(0.5)
            order.append("other-end")

    thread = threading.Thread(target=other_job)
    thread.start()
    started.wait(5)
    page.generate(tts_engines, values(speaker="Tiny Bob"))
    order.append("tts-done")
    thread.join()
    assert order == ["other-start", "other-end", "tts-done"]


def form_defaults(demo) -> dict:
    """The Generate form's values as the page starts, by the names the callback reads."""
    generate = next(fn for fn in demo.fns.values() if fn.api_name == "tts_generate")
    return dict(zip(values().keys(), [block.value for block in generate.inputs], strict=True))


def test_first_generate_with_the_page_defaults_speaks(tts_engines):
    with gr.Blocks() as demo:
        page.build(tts_engines)
    defaults = form_defaults(demo)
    assert defaults["speaker"] == "Tiny Alice"  # the model's first built-in speaker is preselected
    assert not defaults["files"] and not defaults["recording"] and defaults["voice"] == page.NONE
    audio, files, _stats = page.generate_callback(tts_engines, {**defaults, "text": "My very first try."})
    assert Path(audio).is_file() and sf.info(audio).duration > 0
    assert json.loads(Path(files[1]).read_text())["speaker"] == "Tiny Alice"


def test_clips_or_a_saved_voice_take_over_from_the_preselected_speaker(tts_engines, ref):
    assert page.clips_chosen_callback([str(ref)], "Tiny Alice") == page.NONE
    assert page.clips_chosen_callback(str(ref), "Tiny Alice") == page.NONE  # a recording
    assert page.clips_chosen_callback("my voice", "Tiny Alice") == page.NONE  # a saved voice
    assert page.clips_chosen_callback(None, "Tiny Alice") == "Tiny Alice"  # cleared: nothing to take over
    assert page.clips_chosen_callback(page.NONE, "Tiny Bob") == "Tiny Bob"
    with gr.Blocks() as demo:
        page.build(tts_engines)
    by_id = {
        fn_input.elem_id for fn in demo.fns.values() for fn_input in fn.inputs if fn.fn is page.clips_chosen_callback
    }
    assert {"tts-reference", "tts-record", "tts-voice"} <= by_id
    # Switching models: a speaker the new model lacks becomes its first one; "(none)" stays.
    assert page.speakers_callback(tts_engines, "tiny", "Someone Else").value == "Tiny Alice"
    assert page.speakers_callback(tts_engines, "tiny", page.NONE).value == page.NONE


def test_text_in_another_script_than_the_language_warns_on_the_page(tts_engines):
    with pytest.warns(UserWarning, match=r"mostly in Arabic script, but the language is English \(en\)"):
        audio, _files, _stats = page.generate_callback(tts_engines, values(text="مرحبا بكم", speaker="Tiny Alice"))
    assert Path(audio).is_file()  # a warning, not a refusal


def test_a_1_gib_reference_is_too_large_not_unreadable(tts_engines, tmp_path):
    big = tmp_path / "concert.wav"
    sf.write(big, np.zeros(1000, np.float32), 44100, subtype="PCM_16")
    with open(big, "r+b") as fh:  # sparse: 1 GiB on paper, nothing written
        fh.truncate(2**30)
    message = gr_error(lambda: page.generate_callback(tts_engines, values(files=[str(big)])))
    assert message.startswith("concert.wav is too large (1024 MB, limit 500 MB)") and "not a readable" not in message


def test_api_non_numeric_seed_or_cap_is_a_named_error_without_tracebacks(tts_engines, capfd):
    from gradio_client import Client

    with gr.Blocks() as demo:
        page.build(tts_engines)
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        capfd.readouterr()
        with pytest.raises(Exception, match=r"Seed must be a number; got 'abc'"):
            client.predict(*values(speaker="Tiny Alice", seed="abc").values(), api_name="/tts_generate")
        with pytest.raises(Exception, match=r"Max audio tokens must be a number; got 'many'"):
            client.predict(*values(speaker="Tiny Alice", tokens="many").values(), api_name="/tts_generate")
        with pytest.raises(Exception, match="The text is empty"):
            client.predict(*values(text="", speaker="Tiny Alice").values(), api_name="/tts_generate")
        err = capfd.readouterr().err
    finally:
        demo.close()
    assert "Traceback" not in err  # expected user errors are one log line each, not printed tracebacks


def test_no_language_is_spoken_as_the_default_and_says_so(tts_engines):
    """A script that sends language=None gets the settings' default language, and a notice saying so."""
    with pytest.warns(UserWarning, match=r"No language given: the text was spoken as en \(the default\)"):
        audio, _files, _stats = page.generate_callback(tts_engines, values(language=None, speaker="Tiny Alice"))
    assert Path(audio).is_file()
