"""Eval tab, "Compare" sub-tab: two runs side by side, or two systems of one run (paired bootstrap)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd

from engines import Engines
from engines.core.errors import InputError
from engines.eval import paired_comparison, report
from pages.common import guarded, object_picker
from pages.eval_common import InitialChoices, rows_frame, systems_callback

# ---------------------------------------------------------------- plain functions (no gradio)


def paired_frame(engines: Engines, run_id: str | None, system_a: str | None, system_b: str | None) -> pd.DataFrame:
    """A paired comparison of two systems of one run."""
    if not run_id or not system_a or not system_b:
        raise InputError("Pick a run and two of its systems.")
    if system_a == system_b:
        raise InputError("Pick two different systems.")
    cfg, rows, _ = engines.eval.load_run(run_id)
    seed = int(cfg["config"].get("seed", 0))
    result = paired_comparison(rows, system_a, system_b, int(cfg["config"].get("bootstrap", 1000)), seed)
    return rows_frame(report.paired_rows({"paired": [result]}))


# ---------------------------------------------------------------- callbacks (thin, guarded)


@guarded
def compare_callback(engines: Engines, run_a: str | None, run_b: str | None) -> pd.DataFrame:
    if not run_a or not run_b:
        raise InputError("Pick two runs to compare.")
    return rows_frame(engines.eval.compare_runs(run_a, run_b))


@guarded
def paired_callback(engines: Engines, run_id: str | None, system_a: str | None, system_b: str | None) -> pd.DataFrame:
    return paired_frame(engines, run_id, system_a, system_b)


# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class CompareTab:
    """What the Eval tab refreshes of the Compare sub-tab."""

    run_a: gr.Dropdown  # "Run A" of the side-by-side comparison
    run_b: gr.Dropdown  # "Run B"
    pair_run: gr.Dropdown  # the run of the paired comparison


def build(engines: Engines, choices: InitialChoices) -> CompareTab:
    """Lay out the Compare sub-tab (inside the caller's ``gr.Tab``) and wire it."""
    runs0 = choices.runs
    gr.Markdown(
        "Two runs side by side (systems matched by name), or two systems of one run on the same "
        "sentences (paired bootstrap)."
    )
    with gr.Row():
        cmp_a = object_picker(runs0, label="Run A", elem_id="ev-cmp-a")
        cmp_b = object_picker(runs0, label="Run B", elem_id="ev-cmp-b")
        cmp_btn = gr.Button("Compare runs", elem_id="ev-cmp-btn")
    cmp_df = gr.Dataframe(interactive=False, wrap=True, elem_id="ev-cmp-table")
    with gr.Row():
        pair_run = object_picker(runs0, label="Run", elem_id="ev-pair-run")
        pair_a = gr.Dropdown([], label="System A", elem_id="ev-pair-a")
        pair_b = gr.Dropdown([], label="System B", elem_id="ev-pair-b")
        pair_btn = gr.Button("Paired comparison", elem_id="ev-pair-btn")
    pair_df = gr.Dataframe(interactive=False, wrap=True, elem_id="ev-pair-table")

    cmp_btn.click(
        lambda a, b: compare_callback(engines, a, b), inputs=[cmp_a, cmp_b], outputs=cmp_df, api_visibility="private"
    )
    pair_run.change(
        lambda r: systems_callback(engines, r), inputs=pair_run, outputs=[pair_a, pair_b], api_visibility="private"
    )
    pair_btn.click(
        lambda r, a, b: paired_callback(engines, r, a, b),
        inputs=[pair_run, pair_a, pair_b],
        outputs=pair_df,
        api_visibility="private",
    )
    return CompareTab(run_a=cmp_a, run_b=cmp_b, pair_run=pair_run)
