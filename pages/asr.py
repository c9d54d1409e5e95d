"""ASR tab: upload files or record -> Whisper text, segments, subtitles (TXT/SRT/VTT/JSON) and timing.

UI only: the callback is a thin, guarded wrapper around ``transcribe`` (a plain function tests call), which
calls ``engines.asr``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from config import XTTS_LANGUAGES
from engines.asr import (
    TINY_MODEL_ID,
    ASROptions,
    Transcript,
    check_options,
    safe_stem,
    save_outputs,
    whisper_languages,
)
from engines.errors import AudioError, InputError
from pages.common import GPU_CONCURRENCY_ID, guarded, warn

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


def build_options(language: str | None, task: str, word_timestamps: bool, beam_size: float | None) -> ASROptions:
    """UI values -> ASROptions (beam 0/empty/1 = greedy)."""
    beam = None if beam_size is None or beam_size == "" or int(beam_size) <= 1 else int(beam_size)
    return ASROptions(
        language=None if not language or language == AUTO else language,
        task=task or "transcribe",
        word_timestamps=bool(word_timestamps),
        beam_size=beam,
    )


def collect_inputs(files: Any, recording: str | None) -> list[tuple[Path, str]]:
    """(path, label) for each uploaded file, then the recording."""
    if isinstance(files, str | Path):
        files = [files]
    items = [(Path(getattr(f, "name", f)), Path(getattr(f, "name", f)).name) for f in (files or []) if f]
    if recording:
        items.append((Path(recording), RECORDING))
    return items


def stats_markdown(transcripts: list[Transcript], model_id: str) -> str:
    """Timing table: one row per file, plus a total when there are several."""
    rows = [(t.source or "?", t.audio_seconds, t.seconds, t.rtf, language_label(t.language)) for t in transcripts]
    if len(transcripts) > 1:
        audio = sum(t.audio_seconds for t in transcripts)
        seconds = sum(t.seconds for t in transcripts)
        rows.append(("**total**", audio, seconds, seconds / audio if audio else 0.0, ""))
    table = "| File | Audio duration | Processing time | RTF | Language |\n|---|---|---|---|---|\n"
    table += "\n".join(f"| {f} | {a:.2f} s | {s:.2f} s | {r:.3f} | {lang} |" for f, a, s, r, lang in rows)
    table += "\n\nRTF = processing time / audio duration (below 1 = faster than real time); model loading excluded."
    if model_id == TINY_MODEL_ID:
        table += "\n\n_Tiny random model: the text is gibberish; these numbers measure plumbing, not quality._"
    return table


def _unique_stem(folder: Path, label: str) -> str:
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{safe_stem(label)}"
    candidate, n = stem, 2
    while (folder / f"{candidate}.json").exists():
        candidate, n = f"{stem}-{n}", n + 1
    return candidate


def transcribe(
    engines,
    files: Any,
    recording: str | None,
    model_id: str | None,
    language: str | None,
    task: str,
    word_timestamps: bool,
    beam_size: float | None,
    progress=None,
) -> PageResult:
    """Transcribe every uploaded file and the recording; a file that cannot be decoded is skipped with a warning.

    Returns:
        The page's outputs (text, language, segment rows, download paths, stats) and the warnings to show.

    Raises:
        InputError: nothing to transcribe, bad options, or every file failed.
        MissingWeightsError: the model's weights are missing (nothing can be transcribed).
    """
    asr = engines.asr
    inputs = collect_inputs(files, recording)
    if not inputs:
        raise InputError("Nothing to transcribe: upload audio files (WAV, MP3, FLAC, OGG, M4A) or record one.")
    options = check_options(build_options(language, task, word_timestamps, beam_size))  # before any file work
    model_id = model_id or asr.default_model()
    asr.load(model_id, progress=progress)  # weights problems stop here, once, not per file
    several = len(inputs) > 1
    transcripts: list[Transcript] = []
    warnings: list[str] = []
    failures: list[str] = []
    outputs: list[str] = []
    for i, (path, label) in enumerate(inputs):
        if progress is not None:
            progress((i, len(inputs)), desc=f"Transcribing {label} ({i + 1}/{len(inputs)})")
        try:
            t = asr.transcribe_file(path, options, model_id)
        except AudioError as exc:  # this file only: say so and go on with the others
            message = str(exc) if label in str(exc) or path.name in str(exc) else f"{label}: {exc}"
            failures.append(message)
            warnings.append(f"Skipped {label}: {exc}")
            continue
        t.source = label
        if t.notice:
            warnings.append(t.notice.replace(path.name, label) if label == RECORDING else t.notice)
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
        stats=stats_markdown(transcripts, model_id),
        warnings=warnings,
        transcripts=transcripts,
    )


# ---------------------------------------------------------------- callbacks (thin, guarded)


@guarded
def transcribe_callback(
    engines,
    files: Any,
    recording: str | None,
    model_id: str | None,
    language: str | None,
    task: str,
    word_timestamps: bool,
    beam_size: float | None,
    progress=None,
):
    """Transcribe button: returns (text, language, segments, files, stats); warnings become toasts."""
    result = transcribe(
        engines, files, recording, model_id, language, task, word_timestamps, beam_size, progress=progress
    )
    for message in result.warnings:
        warn(message)
    return result.text, result.language, result.segments, result.files, result.stats


@guarded
def refresh_models_callback(engines, current: str | None):
    choices = _model_choices(engines)
    ids = [mid for _, mid in choices]
    return gr.Dropdown(choices=choices, value=current if current in ids else engines.asr.default_model())


def _model_choices(engines) -> list[tuple[str, str]]:
    choices = engines.asr.list_models()
    default = engines.asr.default_model()
    if default not in [mid for _, mid in choices]:  # e.g. a .pt path from settings
        choices.append((default, default))
    return choices


# ---------------------------------------------------------------- layout


def build(engines) -> None:
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
                model = gr.Dropdown(
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

    def _transcribe(files_v, recording_v, model_v, language_v, task_v, words_v, beam_v, progress=gr.Progress()):
        return transcribe_callback(
            engines, files_v, recording_v, model_v, language_v, task_v, words_v, beam_v, progress=progress
        )

    transcribe_btn.click(
        _transcribe,
        inputs=[uploads, recording, model, language, task, words, beam],
        outputs=[text, detected, segments, files_out, stats],
        api_name="asr_transcribe",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
