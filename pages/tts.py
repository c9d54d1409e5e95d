"""TTS tab: text + a voice (reference clips, a saved voice or a built-in speaker) -> speech.

UI only: every callback is a thin, guarded wrapper around a plain function that calls
``engines.tts.engine.engine`` (tests call both directly).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from config import XTTS_LANGUAGES
from engines import Engines
from engines.core.audio import pcm16
from engines.core.errors import InputError, LabError
from engines.tts.engine import TINY_ID, TTSResult
from pages import tts_script
from pages.common import (
    GENERATION_INPUTS,
    GPU_CONCURRENCY_ID,
    Form,
    file_paths,
    generation_controls,
    generation_options,
    guarded,
    notify,
    warn,
)

log = logging.getLogger(__name__)

NONE = "(none)"  # dropdown entry meaning "no saved voice" / "no built-in speaker"


# ---------------------------------------------------------------- plain functions (no gradio)


WAIT_SECONDS = 1.0  # how often the Generate event checks in while synthesis runs (and may learn its client left)
TINY_DEFAULT_TOKENS = 64  # ~3 s of audio per sentence (about 21.5 tokens per second)
STREAM_MIN_SECONDS = 1.0  # smallest piece sent to the live player (Gradio re-encodes each one; tiny ones stutter)


def char_counter(text: str | None, limit: int) -> str:
    """The live counter under the text box."""
    count = len((text or "").strip())
    if count > limit:
        return f"**{count} / {limit} characters: {count - limit} over the limit**"
    return f"{count} / {limit} characters"


def collect_references(engines: Engines, files: Any, recording: str | None, voice: str | None) -> list[Path]:
    """Uploaded clips + the recording + a saved voice's clips, in that order."""
    refs = file_paths(files)
    if recording:
        refs.append(Path(recording))
    if voice and voice != NONE:
        refs.extend(engines.tts.voice_files(voice))
    return refs


def stats_markdown(result: TTSResult) -> str:
    """The stats panel under the player."""
    rows = [
        ("Generation time", f"{result.gen_seconds:.2f} s"),
        ("Audio duration", f"{result.audio_seconds:.2f} s"),
        ("Real-time factor", f"{result.rtf:.2f} (below 1 = faster than real time)"),
        ("Voice latents cached", "yes" if result.latents_cached else "no"),
        ("Seed", str(result.seed)),
        ("Sentences", str(len(result.chunks))),
        ("Model", result.model_id),
    ]
    if result.retakes:
        rows.append(("Retakes", result.retakes["summary"]))
    table = "| Measure | Value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    if result.model_id == TINY_ID:
        table += "\n\n_Tiny random model: the audio is noise; these numbers measure plumbing, not quality._"
    return table


def language_of(engines: Engines, values: Mapping[str, Any]) -> str:
    """The form's language, or the settings' default when a script sent none (``no_language_notice`` says so)."""
    return str(values.get("language") or engines.settings.generation.language)


def no_language_notice(engines: Engines, values: Mapping[str, Any]) -> list[str]:
    """A notice when no language was given and the default was used: never English without saying so."""
    if values.get("language"):
        return []
    return [f"No language given: the text was spoken as {language_of(engines, values)} (the default)."]


def request_kwargs(engines: Engines, values: Mapping[str, Any]) -> dict[str, Any]:
    """The Generate form's values (by name: text, language, files, recording, voice, speaker, model and the
    generation settings) -> keyword arguments of ``synthesize`` / ``synthesize_stream``.

    Raises:
        InputError: clips and a built-in speaker both chosen, or a setting that is not a number.
    """
    options = generation_options(values, language_of(engines, values), engines.settings.generation)
    files, recording, voice = values.get("files"), values.get("recording"), values.get("voice")
    speaker, model_id, text = values.get("speaker"), values.get("model"), values.get("text")
    references = collect_references(engines, files, recording, voice)
    chosen_speaker = speaker if speaker and speaker != NONE else None
    if references and chosen_speaker:
        raise InputError(
            f"Both reference clips and the built-in speaker {chosen_speaker!r} are selected: "
            f"clear the clips or set the speaker to {NONE}."
        )
    return {
        "text": text,
        "model_id": model_id or None,
        "reference": references,
        "speaker": chosen_speaker,
        "options": options,
        "pronunciation": tts_script.pronunciation_map(engines),
    }


def outputs_of(result: TTSResult) -> tuple[str, list[str], str]:
    """(WAV path, [WAV path, JSON sidecar path], stats markdown) of a saved result."""
    files_out = [str(p) for p in (result.path, result.sidecar) if p is not None]
    return str(result.path), files_out, stats_markdown(result)


def generate(
    engines, values: Mapping[str, Any], progress=None, cancel: threading.Event | None = None
) -> tuple[str, list[str], str, list[str]]:
    """Run one synthesis from the Generate form's values (by name, see ``request_kwargs``).

    Returns:
        (WAV path, [WAV path, JSON sidecar path], stats markdown, notices).

    Raises:
        InputError and the other engine errors (the callback turns them into gr.Error).
    """
    kwargs = request_kwargs(engines, values)
    retakes = tts_script.retake_checker(engines, values)
    result = engines.tts.synthesize(**kwargs, retakes=retakes, save=True, progress=progress, cancel=cancel)
    return (*outputs_of(result), no_language_notice(engines, values) + list(result.notices))


def stream_pieces(stream, min_seconds: float = STREAM_MIN_SECONDS, wait: float = WAIT_SECONDS):
    """A ``SynthesisStream`` regrouped for the live player: int16 arrays of at least ``min_seconds`` (the last
    one may be shorter), ``None`` while nothing new came for ``wait`` seconds (a check-in, so an abandoned
    request is noticed). Their concatenation is ``pcm16`` of the whole audio, i.e. the saved WAV's samples.
    """
    min_samples = max(1, int(min_seconds * stream.sample_rate))
    buffer: list[np.ndarray] = []
    buffered = 0
    while not stream.finished:
        chunk = stream.next_chunk(wait)
        if chunk is not None:
            buffer.append(chunk)
            buffered += len(chunk)
        if buffered >= min_samples:
            yield pcm16(np.concatenate(buffer))
            buffer, buffered = [], 0
        elif chunk is None and not stream.finished:
            yield None
    if buffered:
        yield pcm16(np.concatenate(buffer))


def save_voice(engines: Engines, name: str, files: Any, recording: str | None) -> tuple[str, list[str]]:
    """Save the uploaded/recorded clips as a named voice. Returns (name, all voice names)."""
    clips = file_paths(files) + ([Path(recording)] if recording else [])
    folder = engines.tts.save_voice(name, clips)
    return folder.name, engines.tts.list_voices()


# ---------------------------------------------------------------- callbacks (thin, guarded)


@guarded
def generate_callback(
    engines: Engines, values: Mapping[str, Any], progress=None, cancel: threading.Event | None = None
):
    """Generate button: returns (audio, files, stats); notices become warnings."""
    audio, files, stats, notices = generate(engines, values, progress=progress, cancel=cancel)
    for notice in notices:
        warn(notice)
    return audio, files, stats


def generate_event(engines: Engines, values: Mapping[str, Any], progress=None):
    """The Generate event: ``generate_callback`` in a worker thread, watched from here.

    A client that goes away (tab closed, script cancelled) ends this generator: Gradio closes it at its next
    check-in, and the synthesis is cancelled within one token step instead of holding the GPU slot for its
    full length. Yields "no change" while waiting, then the result.
    """
    cancel = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["out"] = generate_callback(engines, values, progress=progress, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the event below (already a gr.Error)
            box["err"] = exc

    # The copied context carries Gradio's event (progress bar, warnings) into the worker thread.
    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="tts-generate", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(WAIT_SECONDS)
            if worker.is_alive():
                yield gr.skip(), gr.skip(), gr.skip()
    finally:
        if worker.is_alive():
            cancel.set()
            log.info("TTS request abandoned by its client: generation cancelled")
    if "err" in box:
        raise box["err"]
    yield box["out"]


@guarded
def generate_stream_event(engines: Engines, values: Mapping[str, Any], progress=None):
    """The Generate event with "Stream" on: yields (live chunk, audio, files, stats) updates.

    Bad input fails before anything plays. Each live chunk is (sample rate, int16 array) of at least
    STREAM_MIN_SECONDS (Gradio peak-normalises float chunks one by one); then the saved WAV, its sidecar and
    the stats appear as without streaming. A client that goes away closes this generator, which closes the
    stream: generation stops, nothing is saved, the GPU is free.
    """
    retakes = tts_script.retake_checker(engines, values)  # with retakes, each sentence is checked before it plays
    stream = engines.tts.synthesize_stream(
        **request_kwargs(engines, values), save=True, progress=progress, retakes=retakes
    )
    try:
        for piece in stream_pieces(stream):
            live = gr.skip() if piece is None else (stream.sample_rate, piece)
            yield live, gr.skip(), gr.skip(), gr.skip()
    finally:
        if not stream.finished:
            log.info("TTS stream abandoned by its client: generation stopped, nothing saved")
        stream.close()
    result = stream.result
    for notice in result.notices:
        warn(notice)
    yield (gr.skip(), *outputs_of(result))


@guarded
def save_voice_callback(engines: Engines, name: str, files: Any, recording: str | None):
    saved, names = save_voice(engines, name, files, recording)
    notify(f"Saved voice {saved!r}.")
    return gr.Dropdown(choices=[NONE, *names], value=saved), ""


@guarded
def refresh_models_callback(engines: Engines, current: str | None):
    choices = engines.tts.list_models()
    ids = [mid for _, mid in choices]
    return gr.Dropdown(choices=choices, value=current if current in ids else engines.tts.default_model())


@guarded
def refresh_voices_callback(engines: Engines, current: str | None):
    names = engines.tts.list_voices()
    return gr.Dropdown(choices=[NONE, *names], value=current if current in names else NONE)


def default_speaker(speakers: list[str]) -> str:
    """The speaker the page starts with: the model's first built-in one, so text -> Generate speaks at once."""
    return speakers[0] if speakers else NONE


@guarded
def speakers_callback(engines: Engines, model_id: str | None, current: str | None):
    """Built-in speakers of the selected model (empty until the base model is downloaded).

    A speaker the new model lacks becomes the new model's first one; "(none)" stays "(none)" (the user
    chose clips).
    """
    names = engines.tts.speakers(model_id or None)
    if current in names:
        value = current
    elif current and current != NONE:
        value = default_speaker(names)
    else:
        value = NONE
    return gr.Dropdown(choices=[NONE, *names], value=value)


def language_choices(engines: Engines, model_id: str | None) -> list[tuple[str, str]]:
    """The languages the model speaks (its config.json): XTTS's 17, plus one a fine-tune taught it (issue 21)."""
    try:
        codes = engines.tts.models.languages(model_id or None)
    except LabError:
        codes = None
    return [(f"{XTTS_LANGUAGES.get(code, code)} ({code})", code) for code in (codes or XTTS_LANGUAGES)]


def languages_callback(engines: Engines, model_id: str | None, current: str | None):
    """Offer the selected model's languages; keep the current one when the model speaks it."""
    choices = language_choices(engines, model_id)
    codes = [code for _, code in choices]
    value = (
        current
        if current in codes
        else (engines.settings.generation.language if engines.settings.generation.language in codes else codes[-1])
    )
    return gr.Dropdown(choices=choices, value=value)


def clips_chosen_callback(value: Any, current: str | None) -> str | None:
    """Clips uploaded or recorded, or a saved voice picked: they are the voice now, so the built-in speaker
    (preselected at start) steps aside instead of clashing with them at Generate."""
    if value and value != NONE:
        return NONE
    return current


# ---------------------------------------------------------------- layout


def build(engines: Engines) -> None:
    """Lay out the TTS tab and wire it to ``engines.tts.engine.engine``."""
    settings = engines.settings
    tts = engines.tts
    limit = settings.max_text_chars
    default_model = tts.default_model()
    languages = language_choices(engines, default_model)
    model_choices = tts.list_models()
    if default_model not in [mid for _, mid in model_choices]:  # e.g. an absolute folder from settings
        model_choices.append((default_model, default_model))
    try:
        initial_speakers = tts.speakers(default_model)
    except Exception:  # noqa: BLE001 - a broken default model must not stop the app from building
        log.warning("Could not read the speakers of %s", default_model, exc_info=True)
        initial_speakers = []

    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label="Text", lines=6, placeholder="What should the voice say?", elem_id="tts-text")
            counter = gr.Markdown(char_counter("", limit), elem_id="tts-counter")
            with gr.Row():
                language = gr.Dropdown(
                    languages,
                    value=settings.generation.language,
                    label="Language",
                    elem_id="tts-language",
                    allow_custom_value=True,  # a model fine-tuned after launch may speak one more; the engine checks
                )
                model = gr.Dropdown(model_choices, value=default_model, label="Model", elem_id="tts-model", scale=2)
                refresh_models = gr.Button("Refresh models", size="sm", elem_id="tts-refresh-models")
            with gr.Accordion("Generation settings", open=False, elem_id="tts-settings"):
                # Tiny mode: a random GPT never stops on its own, so cap it at ~3 s of noise.
                controls = generation_controls(
                    settings.generation, "tts", max_tokens_default=TINY_DEFAULT_TOKENS if settings.tiny_models else 0
                )
            with gr.Row():
                stream = gr.Checkbox(
                    False,
                    label="Stream",
                    info="Play the audio while it is generated (sentence by sentence)",
                    elem_id="tts-stream",
                    scale=1,
                )
                # Two buttons, one shown: the streamed event has one more output (the live player), and the
                # plain one keeps its API (tts_generate) unchanged.
                retakes = tts_script.retake_control()
                generate_btn = gr.Button("Generate", variant="primary", elem_id="tts-generate", scale=3)
                generate_stream_btn = gr.Button(
                    "Generate", variant="primary", visible=False, elem_id="tts-generate-stream", scale=3
                )
        with gr.Column(scale=2):
            gr.Markdown(
                "**Voice**: upload or record 3-10 s of clean speech, pick a saved voice, or choose a built-in speaker."
            )
            ref_files = gr.File(
                label="Reference clips (WAV, MP3, FLAC, OGG, M4A)",
                file_count="multiple",
                file_types=["audio"],
                type="filepath",
                elem_id="tts-reference",
            )
            recording = gr.Audio(
                sources=["microphone", "upload"], type="filepath", label="Record or upload a clip", elem_id="tts-record"
            )
            with gr.Row():
                voice = gr.Dropdown(
                    [NONE, *tts.list_voices()], value=NONE, label="Saved voice", elem_id="tts-voice", scale=3
                )
                refresh_voices = gr.Button("Refresh", size="sm", elem_id="tts-refresh-voices")
            with gr.Row():
                voice_name = gr.Textbox(
                    label="Save clips as voice", placeholder="voice name", elem_id="tts-voice-name", scale=3
                )
                save_voice_btn = gr.Button("Save as voice", size="sm", elem_id="tts-save-voice")
            with gr.Row():
                speaker = gr.Dropdown(
                    [NONE, *initial_speakers],
                    value=default_speaker(initial_speakers),
                    label="Built-in speaker",
                    elem_id="tts-speaker",
                    scale=3,
                )
                refresh_speakers = gr.Button("Refresh", size="sm", elem_id="tts-refresh-speakers")

    with gr.Row():
        with gr.Column(scale=3):
            live_out = gr.Audio(
                label="Live (streaming)",
                streaming=True,
                autoplay=True,
                interactive=False,
                visible=False,
                elem_id="tts-live",
            )
            audio_out = gr.Audio(
                label="Output",
                type="filepath",
                autoplay=False,
                interactive=False,
                buttons=["download"],
                elem_id="tts-audio",
            )
        with gr.Column(scale=2):
            files_out = gr.File(
                label="WAV + JSON (all parameters)", file_count="multiple", interactive=False, elem_id="tts-files"
            )
            stats = gr.Markdown(elem_id="tts-stats")

    text.change(
        lambda t: char_counter(t, limit),
        inputs=text,
        outputs=counter,
        show_progress="hidden",
        queue=False,
        trigger_mode="always_last",
        api_visibility="private",
    )
    refresh_models.click(
        lambda cur: refresh_models_callback(engines, cur), inputs=model, outputs=model, api_visibility="private"
    )
    model.change(
        lambda m, cur: speakers_callback(engines, m, cur),
        inputs=[model, speaker],
        outputs=speaker,
        api_visibility="private",
    )
    model.change(
        lambda m, cur: languages_callback(engines, m, cur),
        inputs=[model, language],
        outputs=language,
        api_visibility="private",
    )
    refresh_speakers.click(
        lambda m, cur: speakers_callback(engines, m, cur),
        inputs=[model, speaker],
        outputs=speaker,
        api_visibility="private",
    )
    refresh_voices.click(
        lambda cur: refresh_voices_callback(engines, cur), inputs=voice, outputs=voice, api_visibility="private"
    )
    for source in (ref_files, recording, voice):
        source.change(
            clips_chosen_callback,
            inputs=[source, speaker],
            outputs=speaker,
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        )
    save_voice_btn.click(
        functools.partial(save_voice_callback, engines),
        inputs=[voice_name, ref_files, recording],
        outputs=[voice, voice_name],
        api_name="tts_save_voice",
    )

    # The API's positional order is this order (unchanged for script users).
    form = Form(
        text=text,
        language=language,
        files=ref_files,
        recording=recording,
        voice=voice,
        speaker=speaker,
        model=model,
        **{name: controls[name] for name in GENERATION_INPUTS},
        retakes=retakes,
    )
    tts_script.build(engines, form)

    generate_btn.click(
        form.handler(functools.partial(generate_event, engines), progress=gr.Progress(track_tqdm=True)),
        inputs=form.inputs,
        outputs=[audio_out, files_out, stats],
        api_name="tts_generate",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
    generate_stream_btn.click(
        form.handler(functools.partial(generate_stream_event, engines)),
        inputs=form.inputs,
        outputs=[live_out, audio_out, files_out, stats],
        api_name="tts_generate_stream",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
        show_progress="minimal",
    )
    stream.change(
        lambda on: (gr.Button(visible=not on), gr.Button(visible=on), gr.Audio(visible=on)),
        inputs=stream,
        outputs=[generate_btn, generate_stream_btn, live_out],
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )
