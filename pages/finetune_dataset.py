"""Finetune tab, sub-tab "1. Dataset": build, review, check and list datasets (``build(engines)``).

UI only: plain functions call ``engines.datasets``; ``callbacks(engines)`` returns the guarded
callables the events use (tests call them directly), so every failure reaches the user as a
``gr.Error`` with the engine's message.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from config import XTTS_LANGUAGES
from engines.datasets import ClipRow, DatasetOptions, DatasetReport, DatasetStats
from engines.errors import InputError
from pages.common import GPU_CONCURRENCY_ID, file_paths, guarded, notify, warn

log = logging.getLogger(__name__)

REPORT_COLUMNS = ["source", "status", "reason", "clips", "seconds"]
TABLE_COLUMNS = ["clip", "duration", "text", "speaker", "split", "flags"]
LIST_COLUMNS = ["name", "clips", "minutes", "language", "created", "speakers", "status"]
MISMATCH_COLUMNS = ["clip", "text", "asr text", "CER"]
CHOICE_LABELS = {"keep original": "keep", "take ASR": "asr", "edit": "edit"}
UPLOAD_HELP = "Audio files (WAV, MP3, FLAC, OGG, M4A; any rate or channels) and/or zips of them"
TRANSCRIPTS_HELP = (
    "Optional transcripts: `file|text` lines, LJSpeech `id|text|normalized`, or coqui "
    "`audio_file|text|speaker_name` with its header. Files listed there skip Whisper and are kept whole."
)


# ---------------------------------------------------------------- plain functions (no gradio events)


def language_choices() -> list[tuple[str, str]]:
    """(label, code) for the 17 XTTS languages."""
    return [(f"{name} ({code})", code) for code, name in XTTS_LANGUAGES.items()]


def whisper_choices(engines) -> list[tuple[str, str]]:
    return engines.asr.list_models()


def dataset_names(engines) -> list[str]:
    return [d.name for d in engines.datasets.list_datasets()]


def collect_sources(files: Any, folder: str | None) -> list[Path]:
    """Uploaded files, then the server folder (which must exist)."""
    paths = file_paths(files)
    folder = (folder or "").strip()
    if folder:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise InputError(f"Folder not found on the server: {folder}")
        paths.append(path)
    return paths


def _number(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(number) else number


def parse_speakers(text: str | None) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The speaker box: a default name, and/or ``source = speaker`` lines (an upload, a zip, a folder).

    Returns:
        (default speaker, (source, speaker) pairs).

    Raises:
        InputError: a line with an empty side, or two default names.
    """
    default, pairs = "", []
    for number, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if "=" in line:
            source, _, speaker = (part.strip() for part in line.partition("="))
            if not source or not speaker:
                raise InputError(f"Speakers, line {number}: write 'file name = speaker', got {line!r}.")
            pairs.append((source, speaker))
        elif default:
            raise InputError(f"Speakers, line {number}: one default name only (use 'file = speaker' for the rest).")
        else:
            default = line
    return default, tuple(pairs)


def build_options(
    model_id: str | None,
    min_clip: float,
    max_clip: float,
    silence_db: float,
    pad_ms: float,
    eval_share: float,
    speaker: str | None,
    speaker_from_folder: bool,
    overwrite: bool,
) -> DatasetOptions:
    """UI values -> DatasetOptions (empty numbers take the defaults)."""
    d = DatasetOptions()
    default, pairs = parse_speakers(speaker)
    return DatasetOptions(
        model_id=model_id or None,
        min_clip=_number(min_clip, d.min_clip),
        max_clip=_number(max_clip, d.max_clip),
        silence_db=_number(silence_db, d.silence_db),
        pad_ms=int(_number(pad_ms, d.pad_ms)),
        eval_share=_number(eval_share, d.eval_share),
        speaker=default,
        speakers=pairs,
        speaker_from_folder=bool(speaker_from_folder),
        overwrite=bool(overwrite),
    )


def run_build(
    engines,
    files: Any,
    folder: str | None,
    transcripts: Any,
    name: str,
    language: str,
    options: DatasetOptions,
    progress: Callable[..., Any] | None = None,
    log_lines: list[str] | None = None,
) -> DatasetReport:
    """Collect the inputs and build the dataset."""
    sources = collect_sources(files, folder)
    transcripts_path = file_paths(transcripts)[0] if transcripts else None
    lines = log_lines if log_lines is not None else []
    return engines.datasets.build(
        name,
        sources,
        language,
        transcripts=transcripts_path,
        options=options,
        progress=progress or (lambda *_a, **_k: None),
        log=lines.append,
    )


def report_frame(report: DatasetReport | None) -> pd.DataFrame:
    return pd.DataFrame(report.rows() if report else [], columns=REPORT_COLUMNS)


def table_frame(rows: list[ClipRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [[r.clip, r.duration, r.text, r.speaker, r.split, r.flags] for r in rows], columns=TABLE_COLUMNS
    )


def frame_rows(frame: Any) -> list[dict[str, Any]]:
    """The edited table as dicts (clip, text, speaker, split); blank rows (added by mistake) are ignored."""
    if frame is None:
        return []
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame, columns=TABLE_COLUMNS)
    rows = []
    for record in frame.to_dict("records"):
        clean = {k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in record.items()}
        if not str(clean.get("clip", "")).strip():
            continue
        rows.append(
            {
                "clip": str(clean["clip"]).strip(),
                "text": str(clean.get("text", "")),
                "speaker": str(clean.get("speaker", "")),
                "split": str(clean.get("split", "")),
            }
        )
    return rows


def stats_markdown(stats: DatasetStats) -> str:
    speakers = ", ".join(f"{k} ({v})" for k, v in sorted(stats.speakers.items())) or "none"
    text = (
        f"**{stats.clips} clips, {stats.minutes:.1f} min** of speech ({stats.train_clips} train / "
        f"{stats.eval_clips} eval). Speakers: {speakers}."
    )
    if stats.flagged:
        text += f"\n\n**{stats.flagged} clip(s) flagged**: see the flags column (re-cut, edit or delete them)."
    if stats.warning:
        text += f"\n\n⚠️ {stats.warning}"
    return text


def histogram_frame(stats: DatasetStats | None) -> pd.DataFrame:
    """Clips per 1-second duration bin (typed even when empty, so the plot's y axis stays numeric)."""
    bins = stats.histogram if stats else []
    return pd.DataFrame(
        {
            "duration": pd.Series([b for b, _ in bins], dtype="object"),
            "clips": pd.Series([n for _, n in bins], dtype="int64"),
        }
    )


def datasets_frame(engines) -> pd.DataFrame:
    rows = [
        [d.name, d.clips, d.minutes, d.language, d.created, ", ".join(d.speakers), d.status]
        for d in engines.datasets.list_datasets()
    ]
    return pd.DataFrame(rows, columns=LIST_COLUMNS)


def mismatch_frame(mismatches) -> pd.DataFrame:
    return pd.DataFrame([[m.clip, m.text, m.asr_text, round(m.cer, 3)] for m in mismatches], columns=MISMATCH_COLUMNS)


def _review_values(engines, name: str | None) -> tuple[Any, ...]:
    """table, stats markdown, histogram, clip picker update, player (cleared)."""
    if not name:
        return (
            table_frame([]),
            "Build or pick a dataset to review it.",
            histogram_frame(None),
            gr.update(choices=[], value=None),
            None,
        )
    rows = engines.datasets.load_table(name)
    stats = engines.datasets.stats(name)
    clips = [r.clip for r in rows]
    return (
        table_frame(rows),
        stats_markdown(stats),
        histogram_frame(stats),
        gr.update(choices=clips, value=clips[0] if clips else None),
        None,
    )


def _require(name: str | None, what: str = "a dataset") -> str:
    if not name:
        raise InputError(f"Pick {what} first.")
    return name


# ---------------------------------------------------------------- callbacks


def callbacks(engines) -> dict[str, Callable[..., Any]]:
    """The guarded callbacks the tab wires, by name (tests call them directly)."""

    def on_build(
        files,
        folder,
        transcripts,
        name,
        language,
        model_id,
        speaker,
        speaker_from_folder,
        overwrite,
        min_clip,
        max_clip,
        silence_db,
        pad_ms,
        eval_share,
        progress=gr.Progress(),
    ):
        options = build_options(
            model_id, min_clip, max_clip, silence_db, pad_ms, eval_share, speaker, speaker_from_folder, overwrite
        )
        lines: list[str] = []
        report = run_build(
            engines,
            files,
            folder,
            transcripts,
            name,
            language,
            options,
            progress=lambda frac, desc=None: progress(frac, desc=desc),
            log_lines=lines,
        )
        notify(f"Dataset '{report.name}': {report.clips} clips, {report.minutes:.1f} min.")
        for notice in report.notices:
            warn(notice)
        names = dataset_names(engines)
        return (
            report_frame(report),
            report.summary().replace("\n", "\n\n"),
            gr.update(choices=names, value=report.name),
            datasets_frame(engines),
            gr.update(choices=names),
        )

    def on_review(name):
        return _review_values(engines, name)

    def on_play(name, clip):
        if not name or not clip:
            return None
        return str(engines.datasets.clip_path(name, clip))

    def on_save(name, table):
        result = engines.datasets.save_table(_require(name), frame_rows(table))
        notify(f"Saved: {result.edited} edited, {result.deleted} deleted, {result.clips} clips left.")
        return (
            f"Saved: {result.edited} edited, {result.deleted} deleted, {result.clips} clips left.",
            *_review_values(engines, name),
        )

    def on_delete_clip(name, clip, table):
        if not clip:
            raise InputError("Pick the clip to delete.")
        rows = [r for r in frame_rows(table) if r["clip"] != clip]
        result = engines.datasets.save_table(_require(name), rows)
        return (
            f"Deleted {clip} ({result.clips} clips left; other edits in the table saved too).",
            *_review_values(engines, name),
        )

    def on_recut(name, clip, max_clip):
        if not clip:
            raise InputError("Pick the clip to re-cut.")
        new = engines.datasets.recut(_require(name), clip, _number(max_clip, 0.0) or None)
        return (f"Re-cut {clip} into {', '.join(new)}: check their texts.", *_review_values(engines, name))

    def on_validate(name, model_id, threshold, progress=gr.Progress()):
        report = engines.datasets.validate(
            _require(name),
            model_id=model_id or None,
            cer_threshold=_number(threshold, 0.0) or None,
            progress=lambda frac, desc=None: progress(frac, desc=desc),
            log=log.info,
        )
        message = (
            f"Re-transcribed {report.checked} clips with {report.model_id}: {len(report.mismatches)} "
            f"mismatch(es) over CER {report.threshold:g}."
        )
        clips = [m.clip for m in report.mismatches]
        return (
            mismatch_frame(report.mismatches),
            message,
            gr.update(choices=clips, value=clips[0] if clips else None),
            *_review_values(engines, name),
        )

    def on_choice(name, clip, choice, text):
        if not clip:
            raise InputError("Pick the mismatched clip to resolve.")
        row = engines.datasets.apply_choice(_require(name), clip, CHOICE_LABELS.get(choice, choice), text)
        return (f"{clip}: {choice} -> {row.text!r}", *_review_values(engines, name))

    def on_list():
        names = dataset_names(engines)
        return datasets_frame(engines), gr.update(choices=names), gr.update(choices=names)

    def on_open(name):
        """Page load / reload: fresh dataset lists, and the review of the chosen (or first) dataset."""
        names = dataset_names(engines)
        name = name if name in names else (names[0] if names else None)
        return (
            gr.update(choices=names, value=name),
            datasets_frame(engines),
            gr.update(choices=names),
            *_review_values(engines, name),
        )

    def on_delete(name, confirm):
        engines.datasets.delete(_require(name, "the dataset to delete"), confirm=bool(confirm))
        notify(f"Deleted dataset '{name}'.")
        names = dataset_names(engines)
        return (
            f"Deleted dataset '{name}'.",
            datasets_frame(engines),
            gr.update(choices=names, value=None),
            gr.update(choices=names, value=None),
            False,
        )

    def on_pick_row(table, evt: gr.SelectData):
        index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        if table is None or index is None or index >= len(table):
            return gr.update()
        return str(table.iloc[index]["clip"])

    names = {
        "build": on_build,
        "review": on_review,
        "play": on_play,
        "save": on_save,
        "delete_clip": on_delete_clip,
        "recut": on_recut,
        "validate": on_validate,
        "choice": on_choice,
        "list": on_list,
        "open": on_open,
        "delete": on_delete,
        "pick_row": on_pick_row,
    }
    return {key: guarded(fn) for key, fn in names.items()}


# ---------------------------------------------------------------- layout


def build(engines) -> None:
    """Build, review, check and manage datasets (inside the Finetune tab's "1. Dataset")."""
    cb = callbacks(engines)
    asr = engines.asr
    names = dataset_names(engines)
    gr.Markdown(
        "Turn raw recordings into a training dataset: clips of 1-11 s with their text, "
        "in coqui format (`metadata_train.csv` / `metadata_eval.csv`)."
    )
    with gr.Row():
        with gr.Column(scale=3):
            uploads = gr.File(label=UPLOAD_HELP, file_count="multiple", type="filepath", elem_id="ft-upload")
            folder = gr.Textbox(
                label="Or a folder on the server",
                placeholder="/data/recordings",
                info="Searched recursively",
                elem_id="ft-folder",
            )
            transcripts = gr.File(
                label="Transcripts file (optional)",
                file_count="single",
                type="filepath",
                file_types=[".csv", ".txt", ".tsv"],
                elem_id="ft-transcripts",
            )
            gr.Markdown(TRANSCRIPTS_HELP)
        with gr.Column(scale=2):
            name = gr.Textbox(
                label="Dataset name",
                placeholder="my-voice",
                info="Letters, digits, . _ - (no paths)",
                elem_id="ft-name",
            )
            language = gr.Dropdown(
                language_choices(),
                value=engines.settings.language if engines.settings.language in XTTS_LANGUAGES else "en",
                label="Language",
                elem_id="ft-language",
            )
            model = gr.Dropdown(
                whisper_choices(engines),
                value=asr.default_model(),
                label="Whisper model",
                info="Transcribes files without a transcript",
                elem_id="ft-whisper",
            )
            speaker = gr.Textbox(
                label="Speaker",
                lines=2,
                placeholder="Anna\nbob-interview.zip = Bob",
                info="A name for every file (default: the dataset name), and/or 'file, zip or folder = speaker' lines",
                elem_id="ft-speaker",
            )
            with gr.Row():
                from_folder = gr.Checkbox(False, label="Subfolder name = speaker", elem_id="ft-speaker-folders")
                overwrite = gr.Checkbox(False, label="Overwrite an existing dataset", elem_id="ft-overwrite")
            with gr.Accordion("Cutting and checks", open=False):
                d = DatasetOptions()
                min_clip = gr.Number(d.min_clip, label="Min clip (s)", minimum=0.3, elem_id="ft-min-clip")
                max_clip = gr.Number(d.max_clip, label="Max clip (s)", minimum=1, maximum=30, elem_id="ft-max-clip")
                silence = gr.Number(
                    d.silence_db,
                    label="Silence floor (dBFS)",
                    info="Files quieter than this are silent; above it, speech detection (VAD) decides.",
                    maximum=0,
                    elem_id="ft-silence",
                )
                pad = gr.Number(d.pad_ms, label="Padding (ms)", minimum=0, maximum=1000, precision=0, elem_id="ft-pad")
                share = gr.Slider(0.05, 0.5, value=d.eval_share, step=0.01, label="Eval share", elem_id="ft-eval-share")
            build_btn = gr.Button("Build dataset", variant="primary", elem_id="ft-build")
    summary = gr.Markdown(elem_id="ft-summary")
    report = gr.Dataframe(
        report_frame(None), label="Per-file report", interactive=False, wrap=True, elem_id="ft-report"
    )

    gr.Markdown("### Review")
    with gr.Row():
        review_name = gr.Dropdown(
            names, value=names[0] if names else None, label="Dataset", elem_id="ft-review-name", scale=3
        )
        review_refresh = gr.Button("Reload", size="sm", elem_id="ft-review-reload", scale=1)
    stats = gr.Markdown(elem_id="ft-stats")
    histogram = gr.BarPlot(
        histogram_frame(None),
        x="duration",
        y="clips",
        sort="x",
        label="Clip durations",
        x_title="duration",
        y_title="clips",
        height=240,
        elem_id="ft-histogram",
    )
    table = gr.Dataframe(
        table_frame([]),
        label="Clips: edit text, speaker or split; remove rows to delete clips",
        interactive=True,
        wrap=True,
        static_columns=[0, 1, 5],
        elem_id="ft-table",
    )
    with gr.Row():
        clip = gr.Dropdown([], label="Clip", elem_id="ft-clip", scale=3)
        player = gr.Audio(type="filepath", interactive=False, label="Playback", elem_id="ft-player", scale=3)
    with gr.Row():
        save_btn = gr.Button("Save edits", variant="primary", elem_id="ft-save")
        delete_clip_btn = gr.Button("Delete clip", elem_id="ft-delete-clip")
        recut_max = gr.Number(
            DatasetOptions().max_clip, label="Re-cut to at most (s)", minimum=1, elem_id="ft-recut-max"
        )
        recut_btn = gr.Button("Re-cut clip at pauses", elem_id="ft-recut")
    edit_status = gr.Markdown(elem_id="ft-edit-status")

    with gr.Accordion("Validate: re-transcribe every clip and compare", open=False):
        with gr.Row():
            val_model = gr.Dropdown(
                whisper_choices(engines), value=asr.default_model(), label="Whisper model", elem_id="ft-validate-model"
            )
            threshold = gr.Number(
                DatasetOptions().cer_threshold,
                label="Mismatch above CER",
                minimum=0.01,
                maximum=1,
                elem_id="ft-validate-threshold",
            )
            validate_btn = gr.Button("Validate (re-transcribe)", elem_id="ft-validate")
        val_status = gr.Markdown(elem_id="ft-validate-status")
        mismatches = gr.Dataframe(
            mismatch_frame([]), label="Mismatches", interactive=False, wrap=True, elem_id="ft-mismatches"
        )
        with gr.Row():
            mm_clip = gr.Dropdown([], label="Mismatched clip", elem_id="ft-mismatch-clip")
            choice = gr.Radio(list(CHOICE_LABELS), value="keep original", label="Resolve", elem_id="ft-choice")
            choice_text = gr.Textbox(label="Edited text (for 'edit')", elem_id="ft-choice-text")
            choice_btn = gr.Button("Apply", elem_id="ft-choice-apply")

    gr.Markdown("### Datasets")
    datasets = gr.Dataframe(datasets_frame(engines), label="Datasets", interactive=False, elem_id="ft-datasets")
    with gr.Row():
        list_refresh = gr.Button("Refresh", size="sm", elem_id="ft-datasets-refresh")
        delete_name = gr.Dropdown(names, value=None, label="Dataset to delete", elem_id="ft-delete-name")
        confirm = gr.Checkbox(False, label="Yes, delete it and its clips", elem_id="ft-delete-confirm")
        delete_btn = gr.Button("Delete dataset", variant="stop", elem_id="ft-delete")
    delete_status = gr.Markdown(elem_id="ft-delete-status")

    review_outputs = [table, stats, histogram, clip, player]
    build_btn.click(
        cb["build"],
        inputs=[
            uploads,
            folder,
            transcripts,
            name,
            language,
            model,
            speaker,
            from_folder,
            overwrite,
            min_clip,
            max_clip,
            silence,
            pad,
            share,
        ],
        outputs=[report, summary, review_name, datasets, delete_name],
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
        api_name="ft_build",
    ).success(cb["review"], inputs=[review_name], outputs=review_outputs)
    review_name.change(cb["review"], inputs=[review_name], outputs=review_outputs)
    open_outputs = [review_name, datasets, delete_name, *review_outputs]
    review_refresh.click(cb["open"], inputs=[review_name], outputs=open_outputs)
    root = gr.context.Context.root_block
    if root is not None:  # a browser refresh shows datasets built meanwhile (in any session)
        root.load(cb["open"], inputs=[review_name], outputs=open_outputs, show_progress="hidden")
    clip.change(cb["play"], inputs=[review_name, clip], outputs=[player])
    table.select(cb["pick_row"], inputs=[table], outputs=[clip])
    save_btn.click(cb["save"], inputs=[review_name, table], outputs=[edit_status, *review_outputs], api_name="ft_save")
    delete_clip_btn.click(cb["delete_clip"], inputs=[review_name, clip, table], outputs=[edit_status, *review_outputs])
    recut_btn.click(cb["recut"], inputs=[review_name, clip, recut_max], outputs=[edit_status, *review_outputs])
    validate_btn.click(
        cb["validate"],
        inputs=[review_name, val_model, threshold],
        outputs=[mismatches, val_status, mm_clip, *review_outputs],
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
    choice_btn.click(
        cb["choice"], inputs=[review_name, mm_clip, choice, choice_text], outputs=[val_status, *review_outputs]
    )
    list_refresh.click(cb["list"], outputs=[datasets, review_name, delete_name])
    delete_btn.click(
        cb["delete"],
        inputs=[delete_name, confirm],
        outputs=[delete_status, datasets, review_name, delete_name, confirm],
    )


__all__ = ["build", "build_options", "callbacks", "collect_sources", "frame_rows", "run_build"]
