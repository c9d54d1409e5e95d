"""Eval tab, "Checkpoints" sub-tab: rank a training run's checkpoints on one sentence set (the
``eval_rank_checkpoints`` API) and export the best as a model."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import gradio as gr
import pandas as pd

from engines import Engines
from engines.core.errors import InputError
from engines.eval import report
from pages.common import GPU_CONCURRENCY_ID, Form, guarded, notify, object_picker
from pages.eval_common import (
    InitialChoices,
    build_config,
    checked_sources,
    job_text,
    report_link,
    rows_frame,
    watch_job,
)
from pages.eval_run import RunTab

# ---------------------------------------------------------------- plain functions (no gradio)


def training_run_choices(engines: Engines) -> list[tuple[str, str]]:
    """(label with status, run id) of the training runs (none when training is unavailable)."""
    training = getattr(engines, "training", None)
    if training is None:
        return []
    out = []
    for r in training.list_runs():
        run_id = getattr(r, "run_id", r)
        status = getattr(r, "status", "")
        out.append((f"{run_id} ({status})" if status else str(run_id), str(run_id)))
    return out


def ranking_outputs(summary: dict[str, Any] | None) -> tuple[pd.DataFrame, str]:
    """Ranking table and plot (HTML img) of a checkpoint-ranking run."""
    if not summary:
        return pd.DataFrame(), ""
    img = report.plot_ranking(summary)
    return rows_frame(report.ranking_rows(summary)), (
        f"<img alt='ranking' style='max-width:100%' src='{img}'>" if img else ""
    )


# ---------------------------------------------------------------- callbacks (thin, guarded)


@guarded
def rank_callback(engines: Engines, values: Mapping[str, Any], progress=None) -> Iterator[tuple]:
    """Rank a training run's checkpoints: ``values`` by the Rank form's names; the other generation
    settings are the app's defaults. The ranking is a background job (a closed tab ends only the watching).
    Yields (progress line, table, plot, report link, eval run id) until it ends."""
    training_run = values.get("training_run")
    if not training_run:
        raise InputError("Pick a training run from the Finetune tab.")
    values = checked_sources(engines, values)
    base = build_config(
        {**values, "models": [], "repeats": 1, "batch_size": 16, "name": f"checkpoints-{training_run}"},
        engines.settings.generation,
    )
    include_base = values.get("include_base")
    include = engines.tts.default_model() if include_base else None
    job = engines.eval.start_rank_checkpoints(training_run, base, include_base_model=include)
    for state in watch_job(job, progress):
        p = state.progress
        if p is None or p.summary is None:
            yield job_text(state), gr.update(), gr.update(), gr.update(), gr.update()
        else:
            table, plot = ranking_outputs(p.summary)
            yield job_text(state), table, plot, report_link(p.folder), p.run_id


@guarded
def export_best_callback(engines: Engines, run_id: str | None, name: str | None) -> str:
    if not run_id:
        raise InputError("Rank the checkpoints of a training run first.")
    folder = engines.eval.export_best(run_id, (name or "").strip() or None)
    notify(f"Exported the best checkpoint as {folder.name}; it is now in the TTS and Eval model lists.")
    return f"Exported to `{folder}`."


@guarded
def refresh_training_runs_callback(engines: Engines):
    return gr.Dropdown(choices=training_run_choices(engines))


# ---------------------------------------------------------------- layout


def build(engines: Engines, choices: InitialChoices, run: RunTab) -> None:
    """Lay out the Checkpoints sub-tab (inside the caller's ``gr.Tab``); the language, token cap and
    ASR settings are the Run sub-tab's (``run``)."""
    sets = choices.sets
    gr.Markdown(
        "Evaluate every saved checkpoint of a training run on the same sentences and rank them "
        "(lowest corpus WER/CER first, then highest SIM). Checkpoints are exported to "
        "`workspace/cache/eval-checkpoints/` for this."
    )
    with gr.Row():
        ck_run = object_picker(training_run_choices(engines), label="Training run", elem_id="ev-ck-run", scale=3)
        ck_refresh = gr.Button("Refresh", size="sm")
    with gr.Row():
        ck_set = object_picker(sets, value=sets[0][1] if sets else None, label="Sentence set", elem_id="ev-ck-set")
        ck_upload = gr.File(label="Upload CSV/TXT", file_types=[".csv", ".txt"], type="filepath")
        ck_max = gr.Number(10, label="Max sentences (0 = all)", precision=0, minimum=0)
    with gr.Row():
        ck_voices = object_picker(
            choices.voices,
            value=[choices.first_speaker] if choices.first_speaker else [],
            multiselect=True,
            label="Reference voices",
            elem_id="ev-ck-voice",
        )
        ck_voice_files = gr.File(
            label="…or upload reference clips", file_count="multiple", file_types=["audio"], type="filepath"
        )
        ck_include = gr.Checkbox(False, label="Also evaluate the base model")
    ck_btn = gr.Button("Rank checkpoints", variant="primary", elem_id="ev-ck-btn")
    ck_progress = gr.Markdown()
    ck_table = gr.Dataframe(label="Ranking", interactive=False, wrap=True, elem_id="ev-ck-table")
    ck_plot = gr.HTML()
    ck_link = gr.HTML()
    ck_run_id = gr.State(None)
    with gr.Row():
        ck_name = gr.Textbox(label="Export the best checkpoint as (model name)", placeholder="my-voice-best")
        ck_export = gr.Button("Export best", elem_id="ev-ck-export")
    ck_export_msg = gr.Markdown()

    ck_refresh.click(lambda: refresh_training_runs_callback(engines), outputs=ck_run, api_visibility="private")
    # The API's positional order is this order (unchanged for script users).
    form = Form(
        training_run=ck_run,
        set_spec=ck_set,
        upload=ck_upload,
        language=run.language,
        max_sentences=ck_max,
        voices=ck_voices,
        voice_files=ck_voice_files,
        max_audio_tokens=run.max_audio_tokens,
        asr_model=run.asr_model,
        beam_size=run.beam_size,
        include_base=ck_include,
    )

    ck_btn.click(
        form.handler(functools.partial(rank_callback, engines), progress=gr.Progress()),
        inputs=form.inputs,
        outputs=[ck_progress, ck_table, ck_plot, ck_link, ck_run_id],
        api_name="eval_rank_checkpoints",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
    ck_export.click(
        lambda r, n: export_best_callback(engines, r, n),
        inputs=[ck_run_id, ck_name],
        outputs=ck_export_msg,
        api_visibility="private",
    )
