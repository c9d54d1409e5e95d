"""Eval tab, "Results" sub-tab: a past run's tables, report and files, each utterance's alignment, and
resuming a stopped run (the ``eval_resume`` API)."""

from __future__ import annotations

import html
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from engines import Engines
from engines.core.errors import InputError
from engines.eval import report
from pages.common import GPU_CONCURRENCY_ID, guarded, object_picker
from pages.eval_common import (
    InitialChoices,
    job_updates,
    refresh_runs_callback,
    report_link,
    rows_frame,
    run_choices,
    run_files,
    summary_frame,
    watch_job,
)

# ---------------------------------------------------------------- plain functions (no gradio)


def utterance_choices(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label with system, sentence, WER and flags; key) of each utterance of a run."""

    def fmt(x: float | None) -> str:
        return "n/a" if x is None or not math.isfinite(x) else f"{x * 100:.0f}%"

    return [
        (
            f"{r['system']} · {r['sentence_id']}"
            + (f" r{r['repeat']}" if r["repeat"] else "")
            + f" · WER {fmt(r['wer'])}"
            + (f" · {r['flags']}" if r["flags"] else ""),
            r["key"],
        )
        for r in rows
    ]


def utterance_view(engines: Engines, run_id: str, key: str | None) -> tuple[str, str | None]:
    """(alignment HTML with texts, audio path) of one utterance of a run."""
    if not run_id or not key:
        return "", None
    _, rows, _ = engines.eval.load_run(run_id)
    row = next((r for r in rows if r["key"] == key), None)
    if row is None:
        raise InputError(f"Utterance {key!r} is not in run {run_id}.")
    folder = engines.eval.run_dir(run_id)
    texts = (
        f"<p><b>{html.escape(row['system'])}</b> · {html.escape(row['sentence_id'])} · WER "
        f"{row['wer'] * 100:.1f}% · CER {row['cer'] * 100:.1f}% · S/D/I {row['substitutions']}/{row['deletions']}/"
        f"{row['insertions']}</p><p>REF: {html.escape(row['ref_text'])}<br>HYP: "
        f"{html.escape(row['hyp_text']) or '(empty)'}<br><small>normalized ({html.escape(row['normalizer'])}): "
        f"{html.escape(row['ref_norm'])} → {html.escape(row['hyp_norm'])}</small></p>"
    )
    style = (
        "<style>table.align td{padding:1px 4px;font-family:monospace}table.align td.sub{background:#fff1c1}"
        "table.align td.del{background:#ffd7d5}table.align td.ins{background:#d3f4ff}</style>"
    )
    audio = folder / row["audio_file"] if row["audio_file"] else None
    body = f"<div style='overflow-x:auto'>{style}{texts}{report.alignment_view(row)}</div>"
    return body, str(audio) if audio and audio.is_file() else None


def run_view(
    engines, run_id: str | None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, str, list[str], list[tuple[str, str]], str]:
    """Everything the Results sub-tab shows for a run."""
    empty = pd.DataFrame()
    if not run_id:
        return empty, empty, empty, empty, report_link(None), [], [], ""
    cfg, rows, summary = engines.eval.load_run(run_id)
    folder = engines.eval.run_dir(run_id)
    listed = next((r for r in engines.eval.list_runs() if r.run_id == run_id), None)
    state = listed.state if listed else "?"
    info = f"Run `{run_id}` · {state} · {len(rows)} utterance(s) · sentences `{cfg['config']['sentences']}`"
    if listed and listed.state == "failed" and listed.message:
        info += f"\n\n**Failed:** {html.escape(listed.message)}"
    if summary and summary.get("note"):
        info += f"\n\n_{summary['note']}_"
    return (
        summary_frame(summary),
        rows_frame(report.breakdown_rows(summary or {}, "by_language")),
        rows_frame(report.breakdown_rows(summary or {}, "by_length")),
        rows_frame(report.paired_rows(summary or {})),
        report_link(folder),
        run_files(folder),
        utterance_choices(rows),
        info,
    )


# ---------------------------------------------------------------- callbacks (thin, guarded)


@guarded
def resume_callback(engines: Engines, run_id: str | None, progress=None) -> Iterator[tuple]:
    """Resume button: finish a stopped run as a background job (like Run: a closed tab ends only the
    watching; the Run sub-tab shows it after a reload) -> (progress line, summary, report link, files) per
    update until it ends."""
    if not run_id:
        raise InputError("Pick a run to resume.")
    job = engines.eval.start_resume(run_id)
    for state in watch_job(job, progress):
        yield job_updates(state)


@guarded
def open_results_callback(engines: Engines, current: str | None):
    """Opening the Results sub-tab: fresh run list, and the selected (else newest) run shown."""
    choices = run_choices(engines)
    ids = [rid for _, rid in choices]
    run_id = current if current in ids else (ids[0] if ids else None)
    s, by_lang, by_len, paired, link, files, utts, info = run_view(engines, run_id)
    return (
        gr.Dropdown(choices=choices, value=run_id),
        s,
        by_lang,
        by_len,
        paired,
        link,
        files,
        gr.Dropdown(choices=utts, value=None),
        info,
    )


@guarded
def run_view_callback(engines: Engines, run_id: str | None):
    s, by_lang, by_len, paired, link, files, utts, info = run_view(engines, run_id)
    return s, by_lang, by_len, paired, link, files, gr.Dropdown(choices=utts, value=None), info


@guarded
def utterance_callback(engines: Engines, run_id: str | None, key: str | None):
    return utterance_view(engines, run_id, key)


# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class ResultsTab:
    """What the other sub-tabs use of the Results sub-tab."""

    runs: gr.Dropdown  # the past-runs picker (refreshed when a run from the Run sub-tab ends)


def build(engines: Engines, choices: InitialChoices, tab: gr.Tab) -> ResultsTab:
    """Lay out the Results sub-tab inside ``tab`` (the caller's ``gr.Tab``; selecting it reloads the view)."""
    runs0 = choices.runs
    with gr.Row():
        runs_dd = object_picker(
            runs0, value=runs0[0][1] if runs0 else None, label="Past runs", elem_id="ev-runs", scale=4
        )
        refresh_btn = gr.Button("Refresh", size="sm", elem_id="ev-refresh")
        resume_btn = gr.Button("Resume", size="sm", elem_id="ev-resume")
    run_info = gr.Markdown(elem_id="ev-run-info")
    with gr.Row():
        res_link = gr.HTML(elem_id="ev-res-link")
        res_files = gr.File(label="Files", file_count="multiple", interactive=False, elem_id="ev-res-files")
    res_summary = gr.Dataframe(label="Summary", interactive=False, wrap=True, elem_id="ev-res-summary")
    res_paired = gr.Dataframe(label="Paired comparisons (A − B)", interactive=False, wrap=True)
    with gr.Row():
        res_lang = gr.Dataframe(label="By language", interactive=False, wrap=True)
        res_len = gr.Dataframe(label="By sentence length", interactive=False, wrap=True)
    utt_dd = object_picker([], label="Utterance (alignment view)", elem_id="ev-utterance")
    with gr.Row():
        utt_html = gr.HTML(elem_id="ev-alignment")
        utt_audio = gr.Audio(type="filepath", interactive=False, label="Audio", elem_id="ev-utt-audio")

    view_outputs = [res_summary, res_lang, res_len, res_paired, res_link, res_files, utt_dd, run_info]
    refresh_btn.click(
        lambda cur: refresh_runs_callback(engines, cur), inputs=runs_dd, outputs=runs_dd, api_visibility="private"
    )
    runs_dd.change(
        lambda r: run_view_callback(engines, r), inputs=runs_dd, outputs=view_outputs, api_visibility="private"
    )
    tab.select(
        lambda r: open_results_callback(engines, r),
        inputs=runs_dd,
        outputs=[runs_dd, *view_outputs],
        api_visibility="private",
    )

    def _resume(run_id, progress=gr.Progress()):
        yield from resume_callback(engines, run_id, progress=progress)

    resume_btn.click(
        _resume,
        inputs=runs_dd,
        outputs=[run_info, res_summary, res_link, res_files],
        api_name="eval_resume",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
    utt_dd.change(
        lambda r, k: utterance_callback(engines, r, k),
        inputs=[runs_dd, utt_dd],
        outputs=[utt_html, utt_audio],
        api_visibility="private",
    )
    return ResultsTab(runs=runs_dd)
