"""Finetune tab, sub-tab "1. Dataset": build, review, check and list datasets (``build(engines)``).

UI only: plain functions call ``engines.datasets``; the events call the module's guarded
``<action>_callback(engines, ...)`` functions (tests call them directly), so every failure reaches the
user as a ``gr.Error`` with the engine's message. The Build button's inputs travel by name
(``pages.common.Form``): ``files``, ``folder``, ``transcripts``, ``name``, ``language`` and the
``build_options`` names.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from config import XTTS_LANGUAGES
from engines import Engines
from engines.cleanup.engine import CleanupOptions, SourceCleaner
from engines.core.errors import InputError
from engines.core.progress import ProgressFn, no_progress
from engines.datasets import ClipRow, DatasetOptions, DatasetReport, DatasetStats, DroppedRow
from engines.datasets.build import ORIGINALS
from pages.common import GPU_CONCURRENCY_ID, Form, file_paths, guarded, notify, warn

log = logging.getLogger(__name__)

REPORT_COLUMNS = list(DatasetReport.ROW_HEADERS)
# the scores are shown for sorting and review; save_table reads only clip, text, speaker and split
TABLE_COLUMNS = ["clip", "duration", "text", "speaker", "split", "flags", "sim", "sig", "bak", "ovrl", "cps"]
LIST_COLUMNS = ["name", "clips", "minutes", "language", "created", "speakers", "status"]
MISMATCH_COLUMNS = ["clip", "text", "asr text", "CER"]
DROPPED_COLUMNS = ["clip", "reason", "duration", "text", "speaker", "source", "sim", "bak", "cps"]
TARGET_LABELS = {
    "The main voice of each speaker (most speech)": "dominant",
    "The voice of my reference clips": "reference",
    "Every voice, each as its own speaker": "all",
}
QUALITY_LABELS = {"Drop (restorable below)": "drop", "Flag only": "flag"}
# the screening thresholds, by option name (the Build form and "Apply thresholds" share them)
THRESHOLD_NAMES = ("min_similarity", "min_bak", "min_sig", "min_ovrl", "dnsmos_min_seconds", "cps_ratio")
SCORE_CHOICES = [
    ("speaker similarity", "sim"),
    ("DNSMOS overall", "ovrl"),
    ("DNSMOS background", "bak"),
    ("DNSMOS signal", "sig"),
    ("chars per second", "cps"),
    ("duration", "duration"),
]
CHOICE_LABELS = {"keep original": "keep", "take ASR": "asr", "edit": "edit"}
UPLOAD_HELP = "Audio files (WAV, MP3, FLAC, OGG, M4A; any rate or channels) and/or zips of them"
TRANSCRIPTS_HELP = (
    "Optional transcripts: `file|text` lines, LJSpeech `id|text|normalized`, or coqui "
    "`audio_file|text|speaker_name` with its header. Files listed there skip Whisper and are kept whole."
)


# ---------------------------------------------------------------- plain functions (no gradio events)


def language_choices() -> list[tuple[str, str]]:
    """(label, code): the 17 XTTS languages, then the others Whisper knows (a language to teach XTTS); any other
    ISO 639 code may be typed, with a transcripts file."""
    from engines.asr.options import whisper_languages

    others = sorted((name.title(), code) for code, name in whisper_languages().items() if code not in XTTS_LANGUAGES)
    return [(f"{name} ({code})", code) for code, name in XTTS_LANGUAGES.items()] + [
        (f"{name} ({code}) - new to XTTS", code) for name, code in others if code != "zh"
    ]


def whisper_choices(engines: Engines) -> list[tuple[str, str]]:
    return engines.asr.list_models()


def dataset_names(engines: Engines) -> list[str]:
    return [d.name for d in engines.datasets.list_datasets()]


def collect_sources(files: Any, folder: str | None, server_folder: Callable[[str], Path]) -> list[Path]:
    """Uploaded files, then the server folder as ``server_folder`` (the engine's guard) resolves it.

    Raises:
        InputError: the folder is outside the allowed server folders, or the feature is off.
    """
    paths = file_paths(files)
    folder = (folder or "").strip()
    if folder:
        paths.append(server_folder(folder))
    return paths


def folder_help(roots: tuple[Path, ...]) -> str:
    """The server-folder box's help: where folders may be, or why the box is off."""
    if not roots:
        return (
            "Off: this app can be reached from other machines, so it reads no server folder unless the "
            "server_folders setting names some. Upload files or a zip instead."
        )
    return (
        "Searched recursively. Allowed: folders inside " + ", ".join(str(r) for r in roots) + " (relative = under them)"
    )


def _number(value: Any, default: float, name: str = "This field") -> float:
    """An optional number field: empty = its default; a value that is not a finite number is refused (a NaN used
    to become the default silently)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number; got {value!r}.") from None
    if not math.isfinite(number):
        raise InputError(f"{name} must be a finite number; got {value!r}.")
    return number


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


def _choice(value: Any, labels: Mapping[str, str], default: str) -> str:
    """A radio's value: its label or its option value (API callers send either); empty = the default."""
    if not value:
        return default
    return labels.get(str(value), str(value))


def build_options(values: Mapping[str, Any]) -> DatasetOptions:
    """The Build form's values (by name: model_id, min_clip, max_clip, silence_db, pad_ms, eval_share,
    speaker, speaker_from_folder, overwrite; screening: target, reference_clips, quality_action and the
    ``THRESHOLD_NAMES``) -> DatasetOptions; empty or missing values take the defaults.

    Raises:
        InputError: the speaker box is malformed (``parse_speakers``).
    """
    d = DatasetOptions()
    default, pairs = parse_speakers(values.get("speaker"))
    return DatasetOptions(
        target=_choice(values.get("target"), TARGET_LABELS, d.target),
        reference_clips=tuple(str(p) for p in file_paths(values.get("reference_clips"))),
        quality_action=_choice(values.get("quality_action"), QUALITY_LABELS, d.quality_action),
        **{k: _number(values.get(k), getattr(d, k), k) for k in THRESHOLD_NAMES},
        model_id=values.get("model_id") or None,
        min_clip=_number(values.get("min_clip"), d.min_clip, "min_clip"),
        max_clip=_number(values.get("max_clip"), d.max_clip, "max_clip"),
        silence_db=_number(values.get("silence_db"), d.silence_db, "silence_db"),
        pad_ms=int(_number(values.get("pad_ms"), d.pad_ms, "pad_ms")),
        eval_share=_number(values.get("eval_share"), d.eval_share, "eval_share"),
        speaker=default,
        speakers=pairs,
        speaker_from_folder=bool(values.get("speaker_from_folder", d.speaker_from_folder)),
        overwrite=bool(values.get("overwrite", d.overwrite)),
    )


def run_build(
    engines,
    values: Mapping[str, Any],
    progress: ProgressFn | None = None,
    log_lines: list[str] | None = None,
) -> DatasetReport:
    """Collect the Build form's inputs and build the dataset.

    Args:
        engines: the container; ``engines.datasets`` does the work.
        values: by name: ``name`` and ``language`` (required), ``files`` (uploads), ``folder`` (on the
            server), ``transcripts`` (a file) and the ``build_options`` names.
        progress: ``progress(fraction, desc=...)`` (a gr.Progress passes straight through); default none.
        log_lines: collects the per-file status lines.

    Raises:
        InputError and the other engine errors (the callback turns them into gr.Error).
    """
    options = build_options(values)  # a malformed box fails before any file is looked at
    cleanup = source_cleaner(engines, values)  # an unavailable step is refused before any work
    sources = collect_sources(values.get("files"), values.get("folder"), engines.datasets.server_folder)
    transcripts = values.get("transcripts")
    lines = log_lines if log_lines is not None else []
    return engines.datasets.build(
        values["name"],
        sources,
        values["language"],
        transcripts=file_paths(transcripts)[0] if transcripts else None,
        options=options,
        progress=progress or no_progress,
        log_fn=lines.append,
        cleanup=cleanup,
    )


def source_cleaner(engines: Engines, values: Mapping[str, Any]) -> SourceCleaner | None:
    """The clean-up the Build form asks for (``separate`` music, ``denoise``), or None.

    Raises:
        MissingWeightsError: a chosen step cannot run here (Demucs not downloaded, DeepFilterNet's platform).
    """
    options = CleanupOptions(denoise=bool(values.get("denoise")), separate=bool(values.get("separate")))
    return SourceCleaner(engines.cleanup, options) if options.steps else None


def report_frame(report: DatasetReport | None) -> pd.DataFrame:
    return pd.DataFrame(report.rows() if report else [], columns=REPORT_COLUMNS)


def table_frame(rows: list[ClipRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [[r.clip, r.duration, r.text, r.speaker, r.split, r.flags, r.sim, r.sig, r.bak, r.ovrl, r.cps] for r in rows],
        columns=TABLE_COLUMNS,
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


def datasets_frame(engines: Engines) -> pd.DataFrame:
    rows = [
        [d.name, d.clips, d.minutes, d.language, d.created, ", ".join(d.speakers), d.status]
        for d in engines.datasets.list_datasets()
    ]
    return pd.DataFrame(rows, columns=LIST_COLUMNS)


def mismatch_frame(mismatches) -> pd.DataFrame:
    return pd.DataFrame([[m.clip, m.text, m.asr_text, round(m.cer, 3)] for m in mismatches], columns=MISMATCH_COLUMNS)


def _review_values(engines: Engines, name: str | None) -> tuple[Any, ...]:
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


def dropped_frame(rows: list[DroppedRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [[r.clip, r.reason, r.duration, r.text, r.speaker, r.source, r.sim, r.bak, r.cps] for r in rows],
        columns=DROPPED_COLUMNS,
    )


def score_frame(bins: list[tuple[str, int]]) -> pd.DataFrame:
    """Clips (kept and dropped) per bin of one score (typed even when empty, like ``histogram_frame``)."""
    return pd.DataFrame(
        {
            "score": pd.Series([b for b, _ in bins], dtype="object"),
            "clips": pd.Series([n for _, n in bins], dtype="int64"),
        }
    )


def _screening_values(engines: Engines, name: str | None, column: str | None) -> tuple[Any, ...]:
    """dropped table, dropped-clip picker, score histogram, then the dataset's thresholds and quality action."""
    if not name:
        return (
            dropped_frame([]),
            gr.update(choices=[], value=[]),
            score_frame([]),
            *[gr.update()] * (len(THRESHOLD_NAMES) + 1),
        )
    rows = engines.datasets.dropped_table(name)
    limits = engines.datasets.info(name).get("settings") or {}
    d = DatasetOptions()
    return (
        dropped_frame(rows),
        gr.update(choices=[r.clip for r in rows], value=[]),
        score_frame(engines.datasets.score_histogram(name, column or "sim")),
        *[limits.get(k, getattr(d, k)) for k in THRESHOLD_NAMES],
        limits.get("quality_action", d.quality_action),
    )


def _require(name: str | None, what: str = "a dataset") -> str:
    if not name:
        raise InputError(f"Pick {what} first.")
    return name


# ---------------------------------------------------------------- callbacks


@guarded
def build_callback(engines: Engines, values: Mapping[str, Any], progress: ProgressFn | None = None):
    """Build button: the form's values by name (see ``run_build``).

    Returns:
        (per-file report, summary, review picker, datasets table, delete picker).
    """
    report = run_build(engines, values, progress=progress)
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


@guarded
def review_callback(engines: Engines, name: str | None):
    """Review picker: table, stats, histogram, clip picker, player (cleared)."""
    return _review_values(engines, name)


@guarded
def play_callback(engines: Engines, name: str | None, clip: str | None):
    """The clip, and the same span of the original recording when a clean-up ran (None otherwise)."""
    if not name or not clip:
        return None, None
    path = engines.datasets.clip_path(name, clip)
    original = path.parent.parent / ORIGINALS / path.name
    return str(path), (str(original) if original.is_file() else None)


@guarded
def clip_audio_callback(engines: Engines, name: str | None, clip: str | None, which: str):
    """'Train on the original' / 'Train on the cleaned audio': undo or redo a clean-up for the picked clip."""
    if not clip:
        raise InputError("Pick a clip first (click its row or choose it under Clip).")
    now = engines.datasets.use_audio(_require(name), clip, which)
    message = (
        f"{clip} now trains on its original audio (the clean-up is undone for it; 'Train on the cleaned audio' "
        "takes it back)."
        if now == "original"
        else f"{clip} trains on its cleaned audio again."
    )
    notify(message)
    return (message, *_review_values(engines, name))


@guarded
def save_callback(engines: Engines, name: str | None, table: Any):
    result = engines.datasets.save_table(_require(name), frame_rows(table))
    notify(f"Saved: {result.edited} edited, {result.deleted} deleted, {result.clips} clips left.")
    return (
        f"Saved: {result.edited} edited, {result.deleted} deleted, {result.clips} clips left.",
        *_review_values(engines, name),
    )


@guarded
def delete_clip_callback(engines: Engines, name: str | None, clip: str | None, table: Any):
    if not clip:
        raise InputError("Pick the clip to delete.")
    rows = [r for r in frame_rows(table) if r["clip"] != clip]
    result = engines.datasets.save_table(_require(name), rows)
    return (
        f"Deleted {clip} ({result.clips} clips left; other edits in the table saved too).",
        *_review_values(engines, name),
    )


@guarded
def recut_callback(engines: Engines, name: str | None, clip: str | None, max_clip: Any):
    if not clip:
        raise InputError("Pick the clip to re-cut.")
    new = engines.datasets.recut(_require(name), clip, _number(max_clip, 0.0) or None)
    return (f"Re-cut {clip} into {', '.join(new)}: check their texts.", *_review_values(engines, name))


@guarded
def validate_callback(
    engines, name: str | None, model_id: str | None, threshold: Any, progress: ProgressFn | None = None
):
    """Validate button: re-transcribe every clip; returns (mismatches, message, mismatch picker, *review)."""
    report = engines.datasets.validate(
        _require(name),
        model_id=model_id or None,
        cer_threshold=_number(threshold, 0.0) or None,
        progress=progress,
        log_fn=log.info,
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


@guarded
def choice_callback(engines: Engines, values: Mapping[str, Any]):
    """Apply button: the form's values by name: ``name`` (dataset), ``clip``, ``choice`` (a CHOICE_LABELS
    label or value) and ``text`` (for "edit")."""
    clip, choice = values.get("clip"), values.get("choice")
    if not clip:
        raise InputError("Pick the mismatched clip to resolve.")
    name = _require(values.get("name"))
    row = engines.datasets.apply_choice(name, clip, CHOICE_LABELS.get(choice, choice), values.get("text"))
    return (f"{clip}: {choice} -> {row.text!r}", *_review_values(engines, name))


@guarded
def screening_callback(engines: Engines, name: str | None, column: str | None):
    """Review picker / histogram column: dropped list, its picker, score histogram, thresholds, quality action."""
    return _screening_values(engines, name, column)


@guarded
def restore_callback(engines: Engines, name: str | None, clips: Any, column: str | None = None):
    """Restore button: the picked dropped clips go back into the training lists (the user's decision)."""
    picked = [clips] if isinstance(clips, str) else list(clips or [])
    if not picked:
        raise InputError("Pick the dropped clip(s) to restore.")
    back = engines.datasets.restore(_require(name), picked)
    return (
        f"Restored {', '.join(back)}: back in the training lists (a rebuild keeps this decision).",
        *_review_values(engines, name),
        *_screening_values(engines, name, column),
    )


@guarded
def drop_clip_callback(engines: Engines, name: str | None, clip: str | None, column: str | None = None):
    """Drop button: the picked clip leaves the training lists for the dropped list (wav kept, restorable)."""
    if not clip:
        raise InputError("Pick the clip to drop.")
    engines.datasets.drop(_require(name), [clip])
    return (
        f"Dropped {clip} (restorable from the dropped list).",
        *_review_values(engines, name),
        *_screening_values(engines, name, column),
    )


@guarded
def thresholds_callback(engines: Engines, values: Mapping[str, Any]):
    """Apply-thresholds button: by name ``name``, the ``THRESHOLD_NAMES``, ``quality_action``, ``column``.

    Every automatic decision is made again from the stored scores (hand decisions stand).
    """
    name = _require(values.get("name"))
    changes: dict[str, Any] = {k: _number(values.get(k), math.nan) for k in THRESHOLD_NAMES}
    changes = {k: v for k, v in changes.items() if not math.isnan(v)}
    if values.get("quality_action"):
        changes["quality_action"] = _choice(values["quality_action"], QUALITY_LABELS, "drop")
    kept, dropped = engines.datasets.apply_thresholds(name, **changes)
    return (
        f"Thresholds applied: {kept} clips in the training lists, {dropped} dropped.",
        *_review_values(engines, name),
        *_screening_values(engines, name, values.get("column")),
    )


@guarded
def list_callback(engines: Engines):
    names = dataset_names(engines)
    return datasets_frame(engines), gr.update(choices=names), gr.update(choices=names)


@guarded
def open_callback(engines: Engines, name: str | None):
    """Page load / reload: fresh dataset lists, and the review of the chosen (or first) dataset."""
    names = dataset_names(engines)
    name = name if name in names else (names[0] if names else None)
    return (
        gr.update(choices=names, value=name),
        datasets_frame(engines),
        gr.update(choices=names),
        *_review_values(engines, name),
    )


@guarded
def delete_callback(engines: Engines, name: str | None, confirm: bool):
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


@guarded
def pick_row_callback(table: pd.DataFrame | None, evt: gr.SelectData):  # the annotation makes Gradio pass the event
    index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
    if table is None or index is None or index >= len(table):
        return gr.update()
    return str(table.iloc[index]["clip"])


# ---------------------------------------------------------------- layout


def _threshold_inputs(prefix: str) -> list[gr.Number]:
    """The screening thresholds' boxes, in ``THRESHOLD_NAMES`` order."""
    d = DatasetOptions()
    specs = {
        "min_similarity": ("Min speaker similarity", 0.0, 0.99, "Resemblyzer cosine to the target voice"),
        "min_bak": ("Min DNSMOS BAK", 1.0, 5.0, "background: under it, noise or music"),
        "min_sig": ("Min DNSMOS SIG", 1.0, 5.0, "speech signal: under it, distorted"),
        "min_ovrl": ("Min DNSMOS OVRL", 1.0, 5.0, "overall quality"),
        "dnsmos_min_seconds": ("DNSMOS drops from (s)", 0.0, 30.0, "shorter clips are only flagged: unreliable"),
        "cps_ratio": ("Speaking-rate factor", 1.05, 5.0, "chars/s this far from the median: text misaligned"),
    }
    return [
        gr.Number(
            getattr(d, k),
            label=label,
            minimum=low,
            maximum=high,
            info=info,
            elem_id=f"{prefix}-{k.replace('_', '-')}",
        )
        for k, (label, low, high, info) in specs.items()
    ]


def build(engines: Engines) -> None:
    """Build, review, check and manage datasets (inside the Finetune tab's "1. Dataset")."""
    asr = engines.asr
    names = dataset_names(engines)
    gr.Markdown(
        "Turn raw recordings into a training dataset: clips of 1-11 s with their text, "
        "in coqui format (`metadata_train.csv` / `metadata_eval.csv`)."
    )
    with gr.Row():
        with gr.Column(scale=3):
            uploads = gr.File(label=UPLOAD_HELP, file_count="multiple", type="filepath", elem_id="ft-upload")
            roots = engines.datasets.server_roots
            folder = gr.Textbox(
                label="Or a folder on the server",
                placeholder=str(roots[0] / "recordings") if roots else "",
                info=folder_help(roots),
                interactive=bool(roots),  # off when exposed without server_folders (the engine refuses too)
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
                allow_custom_value=True,  # any ISO 639 code, with a transcripts file (docs/new-language.md)
                info="Another language than XTTS's 17: XTTS learns it when you train (docs/new-language.md)",
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
            with gr.Accordion("Clean up audio (optional)", open=False):
                cleanup_state = engines.cleanup.available()
                gr.Markdown(
                    "Run before cutting: the cleaned audio is what gets cut, scored and trained on; each clip's "
                    "original span is kept beside it (play both in the review), and dataset.json records the "
                    "models and their hashes. "
                    + " ".join(f"*{step}*: {reason}" for step, reason in cleanup_state.items() if reason)
                )
                with gr.Row():
                    separate = gr.Checkbox(
                        False,
                        label="Separate the voice from music (Hybrid Demucs; download it in the System panel)",
                        elem_id="ft-separate",
                    )
                    denoise = gr.Checkbox(False, label="Remove background noise (DeepFilterNet3)", elem_id="ft-denoise")
            with gr.Accordion("Speaker and quality screening", open=False):
                gr.Markdown(
                    "Every clip is scored: speaker similarity to the target voice (Resemblyzer), DNSMOS "
                    "(noise, music, distortion), speaking rate and language. Clips of another speaker are "
                    "dropped; clips under the quality thresholds are dropped or flagged. Every drop is listed "
                    "with its reason and score in the review below, and can be restored."
                )
                target = gr.Radio(
                    list(TARGET_LABELS.items()), value=d.target, label="Target speaker", elem_id="ft-target"
                )
                references = gr.File(
                    label="Reference clips of the target speaker (for 'my reference clips')",
                    file_count="multiple",
                    type="filepath",
                    elem_id="ft-reference",
                )
                quality = gr.Radio(
                    list(QUALITY_LABELS.items()),
                    value=d.quality_action,
                    label="Clips under the quality thresholds",
                    elem_id="ft-quality-action",
                )
                build_limits = _threshold_inputs("ft-build")
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
        original_player = gr.Audio(
            type="filepath",
            interactive=False,
            label="Before clean-up (when one ran)",
            elem_id="ft-player-original",
            scale=3,
        )
    with gr.Row():
        save_btn = gr.Button("Save edits", variant="primary", elem_id="ft-save")
        delete_clip_btn = gr.Button("Delete clip", elem_id="ft-delete-clip")
        recut_max = gr.Number(
            DatasetOptions().max_clip, label="Re-cut to at most (s)", minimum=1, elem_id="ft-recut-max"
        )
        recut_btn = gr.Button("Re-cut clip at pauses", elem_id="ft-recut")
    with gr.Row():  # a clean-up is the user's choice for the build; each clip can still go back to its original
        original_btn = gr.Button("Train on the original (undo clean-up)", elem_id="ft-use-original", size="sm")
        cleaned_btn = gr.Button("Train on the cleaned audio", elem_id="ft-use-cleaned", size="sm")
    edit_status = gr.Markdown(elem_id="ft-edit-status")

    with gr.Accordion("Screening: dropped clips, thresholds, scores", open=True):
        gr.Markdown(
            "Clips kept out of the training lists, with why and the score that decided it. Restore puts a clip "
            "back (a rebuild keeps your decision); Drop moves the clip picked above here. Apply thresholds "
            "keeps or drops every automatically decided clip by new numbers in one step."
        )
        dropped = gr.Dataframe(
            dropped_frame([]), label="Dropped clips", interactive=False, wrap=True, elem_id="ft-dropped"
        )
        with gr.Row():
            dropped_pick = gr.Dropdown(
                [], value=[], multiselect=True, label="Dropped clips to restore", elem_id="ft-dropped-pick", scale=3
            )
            restore_btn = gr.Button("Restore", elem_id="ft-restore", scale=1)
            drop_btn = gr.Button("Drop the clip picked above", elem_id="ft-drop-clip", scale=1)
        with gr.Row():
            review_limits = _threshold_inputs("ft-review")
        with gr.Row():
            review_quality = gr.Radio(
                list(QUALITY_LABELS.items()),
                value=DatasetOptions().quality_action,
                label="Clips under the quality thresholds",
                elem_id="ft-review-quality-action",
            )
            apply_btn = gr.Button("Apply thresholds", elem_id="ft-apply-thresholds")
        screen_status = gr.Markdown(elem_id="ft-screen-status")
        column = gr.Dropdown(SCORE_CHOICES, value="sim", label="Histogram of", elem_id="ft-score-column")
        scores = gr.BarPlot(
            score_frame([]),
            x="score",
            y="clips",
            sort="x",
            label="Clips per score (kept and dropped)",
            x_title="score",
            y_title="clips",
            height=240,
            elem_id="ft-score-histogram",
        )

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

    # The ft_build API's positional order is this order (unchanged for script users).
    build_form = Form(
        files=uploads,
        folder=folder,
        transcripts=transcripts,
        name=name,
        language=language,
        model_id=model,
        speaker=speaker,
        speaker_from_folder=from_folder,
        overwrite=overwrite,
        min_clip=min_clip,
        max_clip=max_clip,
        silence_db=silence,
        pad_ms=pad,
        eval_share=share,
        # screening (appended: the positional order above stays as it was)
        target=target,
        reference_clips=references,
        quality_action=quality,
        **dict(zip(THRESHOLD_NAMES, build_limits)),
        # clean-up (appended likewise)
        separate=separate,
        denoise=denoise,
    )
    thresholds_form = Form(
        name=review_name, **dict(zip(THRESHOLD_NAMES, review_limits)), quality_action=review_quality, column=column
    )
    choice_form = Form(name=review_name, clip=mm_clip, choice=choice, text=choice_text)

    def _validate(name_v, model_v, threshold_v, progress=gr.Progress()):
        return validate_callback(engines, name_v, model_v, threshold_v, progress=progress)

    def _review(name_v):
        return review_callback(engines, name_v)

    def _open(name_v):
        return open_callback(engines, name_v)

    review_outputs = [table, stats, histogram, clip, player]
    screening_outputs = [dropped, dropped_pick, scores, *review_limits, review_quality]

    def _screening(name_v, column_v):
        return screening_callback(engines, name_v, column_v)

    open_outputs = [review_name, datasets, delete_name, *review_outputs]
    # Only ft_build and ft_save are API endpoints; the other events are the page's own (private).
    build_btn.click(
        build_form.handler(functools.partial(build_callback, engines), progress=gr.Progress()),
        inputs=build_form.inputs,
        outputs=[report, summary, review_name, datasets, delete_name],
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
        api_name="ft_build",
    ).success(_review, inputs=[review_name], outputs=review_outputs, api_visibility="private").success(
        _screening, inputs=[review_name, column], outputs=screening_outputs, api_visibility="private"
    )
    review_name.change(_review, inputs=[review_name], outputs=review_outputs, api_visibility="private").success(
        _screening, inputs=[review_name, column], outputs=screening_outputs, api_visibility="private"
    )
    column.change(_screening, inputs=[review_name, column], outputs=screening_outputs, api_visibility="private")
    review_refresh.click(_open, inputs=[review_name], outputs=open_outputs, api_visibility="private").success(
        _screening, inputs=[review_name, column], outputs=screening_outputs, api_visibility="private"
    )
    restore_btn.click(
        lambda n, c, col: restore_callback(engines, n, c, col),
        inputs=[review_name, dropped_pick, column],
        outputs=[screen_status, *review_outputs, *screening_outputs],
        api_visibility="private",
    )
    drop_btn.click(
        lambda n, c, col: drop_clip_callback(engines, n, c, col),
        inputs=[review_name, clip, column],
        outputs=[screen_status, *review_outputs, *screening_outputs],
        api_visibility="private",
    )
    apply_btn.click(
        thresholds_form.handler(functools.partial(thresholds_callback, engines)),
        inputs=thresholds_form.inputs,
        outputs=[screen_status, *review_outputs, *screening_outputs],
        api_visibility="private",
    )
    root = gr.context.Context.root_block
    if root is not None:  # a browser refresh shows datasets built meanwhile (in any session)
        root.load(_open, inputs=[review_name], outputs=open_outputs, show_progress="hidden", api_visibility="private")
    clip.change(
        lambda n, c: play_callback(engines, n, c),
        inputs=[review_name, clip],
        outputs=[player, original_player],
        api_visibility="private",
    )
    table.select(pick_row_callback, inputs=[table], outputs=[clip], api_visibility="private")
    save_btn.click(
        lambda name, table: save_callback(engines, name, table),  # API keywords: name, table
        inputs=[review_name, table],
        outputs=[edit_status, *review_outputs],
        api_name="ft_save",
    )
    for button, which in ((original_btn, "original"), (cleaned_btn, "cleaned")):
        button.click(
            functools.partial(clip_audio_callback, engines, which=which),
            inputs=[review_name, clip],
            outputs=[edit_status, *review_outputs],
            api_visibility="private",
        )
    delete_clip_btn.click(
        lambda n, c, t: delete_clip_callback(engines, n, c, t),
        inputs=[review_name, clip, table],
        outputs=[edit_status, *review_outputs],
        api_visibility="private",
    )
    recut_btn.click(
        lambda n, c, m: recut_callback(engines, n, c, m),
        inputs=[review_name, clip, recut_max],
        outputs=[edit_status, *review_outputs],
        api_visibility="private",
    )
    validate_btn.click(
        _validate,
        inputs=[review_name, val_model, threshold],
        outputs=[mismatches, val_status, mm_clip, *review_outputs],
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
        api_visibility="private",
    )
    choice_btn.click(
        choice_form.handler(functools.partial(choice_callback, engines)),
        inputs=choice_form.inputs,
        outputs=[val_status, *review_outputs],
        api_visibility="private",
    )
    list_refresh.click(
        lambda: list_callback(engines), outputs=[datasets, review_name, delete_name], api_visibility="private"
    )
    delete_btn.click(
        lambda n, c: delete_callback(engines, n, c),
        inputs=[delete_name, confirm],
        outputs=[delete_status, datasets, review_name, delete_name, confirm],
        api_visibility="private",
    )


__all__ = [
    "build",
    "build_callback",
    "build_options",
    "choice_callback",
    "collect_sources",
    "delete_callback",
    "folder_help",
    "delete_clip_callback",
    "drop_clip_callback",
    "dropped_frame",
    "frame_rows",
    "list_callback",
    "open_callback",
    "pick_row_callback",
    "play_callback",
    "recut_callback",
    "restore_callback",
    "review_callback",
    "run_build",
    "save_callback",
    "score_frame",
    "screening_callback",
    "thresholds_callback",
    "validate_callback",
]
