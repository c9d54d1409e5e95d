"""The TTS tab's long-form part (issue 22): script projects, checked synthesis (retakes) and the pronunciation map.

UI only: plain functions call ``engines.scripts.studio.ScriptStudio`` / ``engines.tts.retakes`` /
``engines.tts.pronounce``; callbacks are thin guarded wrappers. ``build(engines, form)`` lays out the Script
section under the TTS tab's player; a project takes its model, language and generation settings from the TTS
tab's own controls (``form``) when it is created.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from typing import Any

import gradio as gr

from engines import Engines
from engines.core.errors import CancelledError, InputError
from engines.scripts.generate import pending_lines
from engines.scripts.project import (
    DEFAULT_VOICE,
    VoiceChoice,
    edit_line,
    format_voices,
    move_line,
    parse_voices,
)
from engines.scripts.studio import ScriptStudio
from engines.tts import pronounce
from engines.tts.retakes import MAX_TAKES, RetakeChecker, RetakeOptions
from pages.common import GPU_CONCURRENCY_ID, Form, generation_options, guarded, notify, warn

log = logging.getLogger(__name__)

LINE_COLUMNS = ["#", "id", "speaker", "text", "pause after (s)", "status", "seconds", "takes"]
DEFAULT_MAX_CER = 0.2


# ---------------------------------------------------------------- plain functions (no gradio)


def studio(engines: Engines) -> ScriptStudio:
    return ScriptStudio(engines.settings, engines.tts, engines.asr)


def retake_options(takes: Any, max_cer: Any = DEFAULT_MAX_CER) -> RetakeOptions | None:
    """The retake box's value -> options (0 or empty = off).

    Raises:
        InputError: not a whole number from 0 to MAX_TAKES.
    """
    if takes in (None, "", 0, 0.0):
        return None
    try:
        count = int(float(takes))
    except (TypeError, ValueError) as exc:
        raise InputError(f"Retakes must be a whole number from 0 (off) to {MAX_TAKES}; got {takes!r}.") from exc
    if count != float(takes) or not 0 <= count <= MAX_TAKES:
        raise InputError(f"Retakes must be a whole number from 0 (off) to {MAX_TAKES}; got {takes!r}.")
    return RetakeOptions(takes=count, max_cer=float(max_cer)) if count else None


def retake_checker(engines: Engines, values: Mapping[str, Any]) -> RetakeChecker | None:
    """The TTS form's retakes field -> a checker listening with the ASR engine's Whisper (None = off)."""
    options = retake_options(values.get("retakes"))
    return RetakeChecker.whisper(engines.asr, options) if options else None


def pronunciation_map(engines: Engines) -> pronounce.PronunciationMap | None:
    """The workspace's map, or None when it is empty."""
    pmap = pronounce.load(engines.settings.workspace_dir)
    return pmap or None


def pronunciation_text(engines: Engines) -> str:
    path = pronounce.map_path(engines.settings.workspace_dir)
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def save_pronunciation(engines: Engines, text: str) -> str:
    """Check and save the editor's JSON. Returns a status line."""
    pmap = pronounce.parse_text(text)
    pronounce.save(engines.settings.workspace_dir, pmap)
    rules = sum(len(r) for r in pmap.rules.values())
    return f"Saved {rules} rule(s) for {', '.join(pmap.rules) or 'no language'}."


def default_voices(engines: Engines, model_id: str | None) -> str:
    speakers = engines.tts.speakers(model_id or None)
    if not speakers:
        return "* = my saved voice"
    return format_voices({DEFAULT_VOICE: VoiceChoice(speaker=speakers[0])})


def line_rows(engines: Engines, name: str) -> list[list[Any]]:
    s = studio(engines)
    project = s.store.load(name)
    todo = set(pending_lines(s.store, project, s.pronunciation()))
    rows = []
    for i, line in enumerate(project.lines, 1):
        take = line.take
        takes = ""
        if take and take.retakes:
            takes = str(sum(len(x["takes"]) for x in take.retakes["sentences"]))
        status = "to generate" if line.id in todo else "done"
        if line.id in todo and take is not None:
            status = "edited: to generate"
        rows.append(
            [
                i,
                line.id,
                line.speaker,
                line.text,
                project.pause_after(line),
                status,
                take.seconds if take else "",
                takes,
            ]
        )
    return rows


def project_status(engines: Engines, name: str) -> str:
    s = studio(engines)
    project = s.store.load(name)
    todo = pending_lines(s.store, project, s.pronunciation())
    done = len(project.lines) - len(todo)
    total = sum(line.take.seconds for line in project.lines if line.take)
    voices = ", ".join(f"{label or '*'} = {c.describe()}" for label, c in project.voices.items())
    return (
        f"**{project.name}**: {done}/{len(project.lines)} line(s) done, {total:.1f} s of audio. "
        f"Model {project.model_id or 'default'}, language {project.language}, voices: {voices}. "
        + ("Retakes: " + str(project.retakes.takes) + " take(s) max." if project.retakes else "Retakes off.")
    )


def create_project(engines: Engines, values: Mapping[str, Any]) -> str:
    """Create a project from the Script form and the TTS tab's settings. Returns its name."""
    name = (values.get("script_name") or "").strip()
    if not name:
        raise InputError("Give the project a name.")
    language = values.get("language") or "en"
    options = generation_options(values, language, engines.settings.generation)
    project = studio(engines).store.create(
        name,
        values.get("script") or "",
        parse_voices(values.get("voices") or ""),
        language=language,
        model_id=values.get("model") or None,
        options=options,
        retakes=retake_options(values.get("script_retakes")),
        gap=float(values.get("gap") if values.get("gap") is not None else 0.4),
        overwrite=bool(values.get("overwrite")),
    )
    return project.name


def line_choices(engines: Engines, name: str) -> list[tuple[str, str]]:
    project = studio(engines).store.load(name)
    return [
        (f"{line.id}  {line.speaker + ': ' if line.speaker else ''}{line.text[:50]}", line.id) for line in project.lines
    ]


def line_audio(engines: Engines, name: str, line_id: str) -> tuple[str | None, str, str]:
    """(WAV path or None, text, speaker) of one line."""
    s = studio(engines)
    project = s.store.load(name)
    line = project.line(line_id)
    path = s.store.folder(name) / line.take.file if line.take else None
    return (str(path) if path and path.is_file() else None), line.text, line.speaker


# ---------------------------------------------------------------- callbacks


def _project_views(engines: Engines, name: str, line_id: str | None = None):
    choices = line_choices(engines, name)
    ids = [v for _, v in choices]
    current = line_id if line_id in ids else (ids[0] if ids else None)
    audio, text, speaker = line_audio(engines, name, current) if current else (None, "", "")
    return (
        project_status(engines, name),
        line_rows(engines, name),
        gr.Dropdown(choices=choices, value=current),
        audio,
        text,
        speaker,
    )


@guarded
def create_callback(engines: Engines, values: Mapping[str, Any]):
    name = create_project(engines, values)
    notify(f"Created script project {name!r}. Press Generate.")
    names = studio(engines).store.names()
    return (gr.Dropdown(choices=names, value=name), *_project_views(engines, name))


@guarded
def open_callback(engines: Engines, name: str | None):
    if not name:
        return ("", [], gr.Dropdown(choices=[], value=None), None, "", "")
    return _project_views(engines, name)


@guarded
def generate_callback(engines: Engines, name: str | None, progress=None):
    if not name:
        raise InputError("Pick or create a script project first.")
    key = (id(engines), name)
    cancel = _STOPS.setdefault(key, threading.Event())
    cancel.clear()
    try:
        summary = studio(engines).generate(name, progress=progress, cancel=cancel)
    except CancelledError as exc:  # the user's Stop: what was generated stays, Generate resumes
        notify(str(exc))
        return _project_views(engines, name)
    finally:
        _STOPS.pop(key, None)
    notify(summary.message())
    return _project_views(engines, name)


# The Stop button's flag per (app, project): set while a generation runs, read by it between GPT tokens.
_STOPS: dict[tuple[int, str], threading.Event] = {}


@guarded
def stop_callback(engines: Engines, name: str | None) -> str:
    event = _STOPS.get((id(engines), name or ""))
    if event is None:
        return "Nothing is generating for this project."
    event.set()
    return "Stopping: the line being spoken is dropped, the lines before it are kept; Generate resumes."


@guarded
def save_line_callback(engines: Engines, name: str | None, line_id: str | None, text: str, speaker: str):
    s = studio(engines)
    if not name or not line_id:
        raise InputError("Pick a project and a line first.")
    project = s.store.load(name)
    edit_line(project, line_id, text=text, speaker=speaker)
    s.store.save(project)
    notify(f"Line {line_id} saved; press Regenerate line (or Generate) to speak it again.")
    return _project_views(engines, name, line_id)


@guarded
def regenerate_callback(engines: Engines, name: str | None, line_id: str | None, progress=None):
    if not name or not line_id:
        raise InputError("Pick a project and a line first.")
    summary = studio(engines).regenerate(name, line_id, progress=progress)
    if summary.failed_checks:
        warn(f"Line {line_id}: its best take still fails the check.")
    return _project_views(engines, name, line_id)


@guarded
def move_callback(engines: Engines, name: str | None, line_id: str | None, offset: int):
    s = studio(engines)
    if not name or not line_id:
        raise InputError("Pick a project and a line first.")
    project = s.store.load(name)
    move_line(project, line_id, offset)
    s.store.save(project)
    return _project_views(engines, name, line_id)


@guarded
def export_callback(engines: Engines, name: str | None, fmt: str):
    if not name:
        raise InputError("Pick a script project first.")
    done = studio(engines).export(name, fmt)
    notify(f"Exported {done.seconds:.1f} s with {len(done.cues)} caption(s).")
    return [str(done.audio), str(done.srt), str(done.vtt)], str(done.audio)


@guarded
def upload_callback(path: str | None) -> str:
    if not path:
        return gr.skip()
    with open(path, encoding="utf-8-sig") as fh:
        return fh.read()


@guarded
def save_pronunciation_callback(engines: Engines, text: str) -> str:
    message = save_pronunciation(engines, text)
    notify(message)
    return message


# ---------------------------------------------------------------- layout


def retake_control() -> gr.Number:
    """The TTS tab's retakes box (0 = off)."""
    return gr.Number(
        0,
        precision=0,
        minimum=0,
        maximum=MAX_TAKES,
        label="Retakes",
        info="Check each sentence with Whisper; retake failing ones up to this many takes (0 = off)",
        elem_id="tts-retakes",
        scale=1,
    )


def build(engines: Engines, form: Form) -> None:
    """The Script and Pronunciation sections (under the TTS tab's player)."""
    store = studio(engines).store
    with gr.Accordion("Script: long-form projects", open=False, elem_id="script-section"):
        gr.Markdown(
            "One line per row; `Ann: text` gives a line to the voice mapped to `Ann`; `[pause:1.5s]` adds silence. "
            "Lines are generated into `workspace/scripts/<name>/` and a stopped project resumes where it stopped. "
            "Model, language and generation settings come from the controls above."
        )
        with gr.Row():
            project = gr.Dropdown(store.names(), value=None, label="Project", elem_id="script-project", scale=3)
            refresh = gr.Button("Refresh", size="sm", elem_id="script-refresh")
        with gr.Row():
            with gr.Column(scale=3):
                script = gr.Textbox(label="Script", lines=8, elem_id="script-text")
                upload = gr.File(
                    label="Upload a .txt script", file_types=[".txt"], type="filepath", elem_id="script-upload"
                )
            with gr.Column(scale=2):
                name = gr.Textbox(label="New project name", elem_id="script-name")
                voices = gr.Textbox(
                    default_voices(engines, engines.tts.default_model()),
                    label="Voices (Label = saved voice, or Label = speaker:<built-in>; * = default)",
                    lines=3,
                    elem_id="script-voices",
                )
                with gr.Row():
                    gap = gr.Number(0.4, label="Gap between lines (s)", minimum=0, maximum=10, elem_id="script-gap")
                    script_retakes = gr.Number(
                        0,
                        precision=0,
                        minimum=0,
                        maximum=MAX_TAKES,
                        label="Retakes (0 = off)",
                        elem_id="script-retakes",
                    )
                overwrite = gr.Checkbox(False, label="Replace a project of that name", elem_id="script-overwrite")
                create = gr.Button("Create project", elem_id="script-create")
        with gr.Row():
            generate = gr.Button("Generate (resumes)", variant="primary", elem_id="script-generate")
            stop = gr.Button("Stop", variant="stop", elem_id="script-stop")
        status = gr.Markdown(elem_id="script-status")
        lines = gr.Dataframe(headers=LINE_COLUMNS, interactive=False, wrap=True, elem_id="script-lines")
        with gr.Row():
            line = gr.Dropdown([], label="Line", elem_id="script-line", scale=3)
            up = gr.Button("Move up", size="sm", elem_id="script-up")
            down = gr.Button("Move down", size="sm", elem_id="script-down")
        with gr.Row():
            line_player = gr.Audio(type="filepath", interactive=False, label="Line audio", elem_id="script-line-audio")
            with gr.Column():
                line_text = gr.Textbox(label="Line text", elem_id="script-line-text")
                line_speaker = gr.Textbox(label="Speaker label", elem_id="script-line-speaker")
                with gr.Row():
                    save_line = gr.Button("Save line", size="sm", elem_id="script-line-save")
                    regen = gr.Button("Regenerate line", size="sm", elem_id="script-line-regen")
        with gr.Row():
            fmt = gr.Radio(["wav", "flac", "mp3"], value="wav", label="Export format", elem_id="script-format")
            export = gr.Button("Export with captions", elem_id="script-export")
        export_files = gr.File(
            label="Audio + SRT + VTT", file_count="multiple", interactive=False, elem_id="script-files"
        )
        export_player = gr.Audio(type="filepath", interactive=False, label="Exported", elem_id="script-export-audio")

    with gr.Accordion("Pronunciation map", open=False, elem_id="pron-section"):
        gr.Markdown(
            'Per language, words or regexes and how to say them, e.g. `{"en": [{"match": "SQL", "say": "sequel"}, '
            '{"match": "\\\\bDr\\\\.", "say": "Doctor", "regex": true}]}`. Applied to TTS, scripts and the API.'
        )
        pron = gr.Code(
            pronunciation_text(engines) or "{}", language="json", label="pronunciation.json", elem_id="pron-map"
        )
        pron_save = gr.Button("Save map", size="sm", elem_id="pron-save")
        pron_status = gr.Markdown(elem_id="pron-status")

    views = [status, lines, line, line_player, line_text, line_speaker]
    create_form = Form(
        script_name=name,
        script=script,
        voices=voices,
        gap=gap,
        script_retakes=script_retakes,
        overwrite=overwrite,
        **form.components,
    )
    create.click(
        create_form.handler(functools.partial(create_callback, engines)),
        inputs=create_form.inputs,
        outputs=[project, *views],
        api_name="script_create",
    )
    project.change(functools.partial(open_callback, engines), inputs=project, outputs=views, api_name="script_open")
    refresh.click(
        lambda cur: gr.Dropdown(choices=store.names(), value=cur),
        inputs=project,
        outputs=project,
        api_visibility="private",
    )
    upload.change(upload_callback, inputs=upload, outputs=script, api_visibility="private")
    generate.click(
        lambda n, progress=gr.Progress(): generate_callback(engines, n, progress=progress),
        inputs=project,
        outputs=views,
        api_name="script_generate",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
    # not in the GPU queue: it must run while Generate holds it
    stop.click(functools.partial(stop_callback, engines), inputs=project, outputs=status, api_name="script_stop")
    line.change(
        lambda n, lid: line_audio(engines, n, lid) if n and lid else (None, "", ""),
        inputs=[project, line],
        outputs=[line_player, line_text, line_speaker],
        api_visibility="private",
    )
    save_line.click(
        functools.partial(save_line_callback, engines),
        inputs=[project, line, line_text, line_speaker],
        outputs=views,
        api_name="script_save_line",
    )
    regen.click(
        lambda n, lid, progress=gr.Progress(): regenerate_callback(engines, n, lid, progress=progress),
        inputs=[project, line],
        outputs=views,
        api_name="script_regenerate_line",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
    up.click(
        lambda n, lid: move_callback(engines, n, lid, -1),
        inputs=[project, line],
        outputs=views,
        api_visibility="private",
    )
    down.click(
        lambda n, lid: move_callback(engines, n, lid, 1),
        inputs=[project, line],
        outputs=views,
        api_visibility="private",
    )
    export.click(
        functools.partial(export_callback, engines),
        inputs=[project, fmt],
        outputs=[export_files, export_player],
        api_name="script_export",
    )
    pron_save.click(
        functools.partial(save_pronunciation_callback, engines),
        inputs=pron,
        outputs=pron_status,
        api_name="tts_pronunciation_save",
    )


__all__ = ["build", "retake_checker", "retake_control", "pronunciation_map", "save_pronunciation"]
