"""ASR tab: upload files or record -> Whisper text, segments, subtitles (TXT/SRT/VTT/JSON) and timing.

UI only: the callback is a thin, guarded wrapper around ``transcribe`` (a plain function tests call), which
calls ``engines.asr``. The Transcribe button's inputs travel by name (``pages.common.Form``): ``files``,
``recording``, ``model``, ``language``, ``task``, ``word_timestamps``, ``beam_size``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from config import XTTS_LANGUAGES
from engines import Engines
from engines.asr.engine import (
    TINY_MODEL_ID,
    ASROptions,
    check_options,
    whisper_languages,
)
from engines.asr.transcript import Transcript, safe_stem, save_outputs
from engines.core.audio import collect_notices
from engines.core.errors import AudioError, InputError, LabError
from engines.core.provenance import name_stamp
from pages.api import asr_model_id
from pages.common import GPU_CONCURRENCY_ID, Form, guarded, object_picker, warn

log = logging.getLogger(__name__)

AUTO = "auto"
RECORDING = "microphone recording"
SEGMENT_HEADERS = ["file", "start", "end", "text"]


# ---------------------------------------------------------------- plain functions (no gradio)


@dataclass
class PageResult:
    """Everything the Transcribe button shows."""

    text: str  # all files; a header per file when there are several
    language: str  # detected/forced language, per file when there are several
    segments: list[list[Any]]  # rows of (file, start, end, text)
    files: list[str]  # TXT, SRT, VTT, JSON of each transcribed file
    stats: str  # markdown
    warnings: list[str] = field(default_factory=list)  # skipped files, "no speech" notices
    transcripts: list[Transcript] = field(default_factory=list)


def language_choices() -> list[tuple[str, str]]:
    """Auto-detect, the 17 XTTS languages, then Whisper's other languages (label, value)."""
    choices = [("Auto-detect", AUTO)] + [(f"{name} ({code})", code) for code, name in XTTS_LANGUAGES.items()]
    taken = set(XTTS_LANGUAGES) | {"zh"}  # XTTS's zh-cn is Whisper's zh
    others = sorted((name.title(), code) for code, name in whisper_languages().items() if code not in taken)
    return choices + [(f"{name} ({code})", code) for name, code in others]


def language_label(code: str | None) -> str:
    if not code:
        return "unknown"
    name = whisper_languages().get(code)
    return f"{name.title()} ({code})" if name else code


def build_options(values: Mapping[str, Any]) -> ASROptions:
    """The form's values (by name: language, task, word_timestamps, beam_size) -> ASROptions.

    Language empty/"auto" = auto-detect, beam 0/empty/1 = greedy; names missing from ``values`` keep
    the ASROptions defaults. Ranges are checked by ``check_options``.
    """
    d = ASROptions()
    language = values.get("language")
    beam_size = values.get("beam_size")
    return ASROptions(
        language=None if not language or language == AUTO else language,
        task=values.get("task") or d.task,
        word_timestamps=bool(values.get("word_timestamps", d.word_timestamps)),
        beam_size=None if beam_size is None or beam_size == "" or int(beam_size) <= 1 else int(beam_size),
    )


def collect_inputs(files: Any, recording: str | None) -> list[tuple[Path, str]]:
    """(path, label) for each uploaded file, then the recording."""
    if isinstance(files, str | Path):
        files = [files]
    items = [(Path(getattr(f, "name", f)), Path(getattr(f, "name", f)).name) for f in (files or []) if f]
    if recording:
        items.append((Path(recording), RECORDING))
    return items


def stats_markdown(transcripts: list[Transcript], model_id: str, skipped: list[tuple[str, str]] | None = None) -> str:
    """Timing table: one row per file, plus a total when there are several; then the files skipped
    (``(label, reason)`` pairs), so the output itself says which ones are missing and why."""
    rows = [(t.source or "?", t.audio_seconds, t.seconds, t.rtf, language_label(t.language)) for t in transcripts]
    if len(transcripts) > 1:
        audio = sum(t.audio_seconds for t in transcripts)
        seconds = sum(t.seconds for t in transcripts)
        rows.append(("**total**", audio, seconds, seconds / audio if audio else 0.0, ""))
    table = "| File | Audio duration | Processing time | RTF | Language |\n|---|---|---|---|---|\n"
    table += "\n".join(f"| {f} | {a:.2f} s | {s:.2f} s | {r:.3f} | {lang} |" for f, a, s, r, lang in rows)
    table += "\n\nRTF = processing time / audio duration (below 1 = faster than real time); model loading excluded."
    if skipped:
        table += "\n\n**Skipped (not transcribed):**\n" + "\n".join(f"- {label}: {why}" for label, why in skipped)
    if model_id == TINY_MODEL_ID:
        table += "\n\n_Tiny random model: the text is gibberish; these numbers measure plumbing, not quality._"
    return table


def _as_label(message: str, path: Path, label: str) -> str:
    """A message about ``path`` as the user knows it: the recording's temp file name becomes its label."""
    return message.replace(path.name, label) if label == RECORDING else message


def _unique_stem(folder: Path, label: str) -> str:
    stem = f"{name_stamp()}-{safe_stem(label)}"
    candidate, n = stem, 2
    while (folder / f"{candidate}.json").exists():
        candidate, n = f"{stem}-{n}", n + 1
    return candidate


def transcribe(engines: Engines, values: Mapping[str, Any], progress=None) -> PageResult:
    """Transcribe every uploaded file and the recording; a file that cannot be decoded is skipped with a warning.

    Args:
        engines: the container; ``engines.asr`` does the work.
        values: the form's values by name: ``files`` (uploads), ``recording``, ``model`` (empty = the
            default model) and the decoding options ``build_options`` reads.
        progress: ``progress(fraction, desc=...)`` (a gr.Progress passes straight through).

    Returns:
        The page's outputs (text, language, segment rows, download paths, stats) and the warnings to show.

    Raises:
        InputError: nothing to transcribe, bad options, or every file failed.
        MissingWeightsError: the model's weights are missing (nothing can be transcribed).
    """
    asr = engines.asr
    inputs = collect_inputs(values.get("files"), values.get("recording"))
    if not inputs:
        raise InputError("Nothing to transcribe: upload audio files (WAV, MP3, FLAC, OGG, M4A) or record one.")
    options = check_options(build_options(values))  # before any file work
    # the picker takes typed values; only catalogue ids and the configured default load (the engine would
    # also load any path)
    chosen = values.get("model")
    model_id = asr.default_model() if not chosen or chosen == asr.default_model() else asr_model_id(engines, chosen)
    model_id = model_id or asr.default_model()
    asr.load(model_id, progress=progress)  # weights problems stop here, once, not per file
    several = len(inputs) > 1
    transcripts: list[Transcript] = []
    warnings: list[str] = []
    failures: list[str] = []
    outputs: list[str] = []
    skipped: list[tuple[str, str]] = []
    for i, (path, label) in enumerate(inputs):
        if progress is not None:
            progress(i / len(inputs), desc=f"Transcribing {label} ({i + 1}/{len(inputs)})")
        reason = None
        try:
            with collect_notices() as repaired:  # e.g. NaN samples set to silence
                t = asr.transcribe_file(path, options, model_id)
        except AudioError as exc:  # this file only: say so and go on with the others
            reason = _as_label(str(exc), path, label)
        except LabError:  # missing weights, GPU memory, busy: every file would fail the same way
            raise
        except Exception as exc:  # noqa: BLE001 - a bug met on one file must not sink the others
            log.exception("Transcribing %s failed", label)
            reason = f"unexpected error ({type(exc).__name__}: {exc}); the console log has the details"
        if reason is not None:
            failures.append(reason if label in reason or path.name in reason else f"{label}: {reason}")
            warnings.append(f"Skipped {label}: {reason}")
            skipped.append((label, reason))
            continue
        warnings.extend(_as_label(n, path, label) for n in repaired)
        t.source = label
        if t.notice:
            warnings.append(_as_label(t.notice, path, label))
        transcripts.append(t)
        folder = asr.outputs_dir
        outputs.extend(str(p) for p in save_outputs(t, folder, _unique_stem(folder, label)).values())
    if not transcripts:
        raise InputError("No file could be transcribed: " + " | ".join(failures))
    if several:
        text = "\n\n".join(f"=== {t.source} ===\n{t.text or '(no speech detected)'}" for t in transcripts)
        lang = "; ".join(f"{t.source}: {language_label(t.language)}" for t in transcripts)
    else:
        text = transcripts[0].text
        lang = language_label(transcripts[0].language)
    rows = [[t.source, round(s.start, 2), round(s.end, 2), s.text.strip()] for t in transcripts for s in t.segments]
    return PageResult(
        text=text,
        language=lang,
        segments=rows,
        files=outputs,
        stats=stats_markdown(transcripts, model_id, skipped),
        warnings=warnings,
        transcripts=transcripts,
    )


# ---------------------------------------------------------------- callbacks (thin, guarded)


@guarded
def transcribe_callback(engines: Engines, values: Mapping[str, Any], progress=None):
    """Transcribe button: returns (text, language, segments, files, stats); warnings become toasts."""
    result = transcribe(engines, values, progress=progress)
    for message in result.warnings:
        warn(message)
    return result.text, result.language, result.segments, result.files, result.stats


@guarded
def refresh_models_callback(engines: Engines, current: str | None):
    choices = _model_choices(engines)
    ids = [mid for _, mid in choices]
    return gr.Dropdown(choices=choices, value=current if current in ids else engines.asr.default_model())


def _model_choices(engines: Engines) -> list[tuple[str, str]]:
    choices = engines.asr.list_models()
    default = engines.asr.default_model()
    if default not in [mid for _, mid in choices]:  # e.g. a .pt path from settings
        choices.append((default, default))
    return choices


# ---------------------------------------------------------------- layout


def build(engines: Engines) -> None:
    """Lay out the ASR tab and wire it to ``engines.asr``."""
    asr = engines.asr
    with gr.Row():
        with gr.Column(scale=3):
            uploads = gr.File(
                label="Audio files (WAV, MP3, FLAC, OGG, M4A)",
                file_count="multiple",
                file_types=["audio"],
                type="filepath",
                elem_id="asr-upload",
            )
            recording = gr.Audio(
                sources=["microphone", "upload"], type="filepath", label="Or record", elem_id="asr-mic"
            )
        with gr.Column(scale=2):
            with gr.Row():
                model = object_picker(
                    _model_choices(engines),
                    value=asr.default_model(),
                    label="Whisper model",
                    info="Sizes download on first use; bigger = better and slower",
                    elem_id="asr-model",
                    scale=3,
                )
                refresh = gr.Button("Refresh", size="sm", elem_id="asr-refresh-models")
            language = gr.Dropdown(language_choices(), value=AUTO, label="Language", elem_id="asr-language")
            task = gr.Radio(
                ["transcribe", "translate"],
                value="transcribe",
                label="Task",
                info="translate = English text from any language",
                elem_id="asr-task",
            )
            with gr.Row():
                words = gr.Checkbox(False, label="Word timestamps", elem_id="asr-word-timestamps")
                beam = gr.Number(
                    0, label="Beam size (0 = greedy)", precision=0, minimum=0, maximum=16, elem_id="asr-beam"
                )
            transcribe_btn = gr.Button("Transcribe", variant="primary", elem_id="asr-transcribe")
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label="Text", lines=8, buttons=["copy"], interactive=False, elem_id="asr-text")
            detected = gr.Textbox(label="Language", interactive=False, elem_id="asr-detected-language")
        with gr.Column(scale=2):
            files_out = gr.File(
                label="TXT, SRT, VTT, JSON", file_count="multiple", interactive=False, elem_id="asr-files"
            )
            stats = gr.Markdown(elem_id="asr-stats")
    segments = gr.Dataframe(
        headers=SEGMENT_HEADERS,
        datatype=["str", "number", "number", "str"],
        interactive=False,
        wrap=True,
        label="Segments",
        elem_id="asr-segments",
    )

    refresh.click(
        lambda cur: refresh_models_callback(engines, cur), inputs=model, outputs=model, api_visibility="private"
    )

    # The API's positional order is this order (unchanged for script users).
    form = Form(
        files=uploads,
        recording=recording,
        model=model,
        language=language,
        task=task,
        word_timestamps=words,
        beam_size=beam,
    )

    transcribe_btn.click(
        form.handler(functools.partial(transcribe_callback, engines), progress=gr.Progress()),
        inputs=form.inputs,
        outputs=[text, detected, segments, files_out, stats],
        api_name="asr_transcribe",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
