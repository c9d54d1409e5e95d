"""Eval tab: closed-loop TTS -> ASR evaluation, one module per sub-tab: Run (``pages.eval_run``),
Results (``eval_results``), Compare (``eval_compare``), Checkpoints (``eval_checkpoints``) and
Listening test (``eval_listening``); what they share is in ``eval_common``.

``build`` lays the sub-tabs out and wires the events that cross them.
"""

from __future__ import annotations

import gradio as gr

from engines import Engines
from pages import eval_checkpoints, eval_compare, eval_listening, eval_results, eval_run
from pages.eval_common import initial_choices, refresh_run_lists_callback, refresh_runs_callback


def build(engines: Engines) -> None:
    """Lay out the Eval tab and wire it to ``engines.eval``."""
    choices = initial_choices(engines)
    gr.Markdown(
        "Speak a sentence set with one or more systems (model × reference voice), transcribe it with "
        "Whisper (language forced) and score WER/CER, speaker similarity and real-time factor. "
        "Every run writes `workspace/reports/<run-id>/` (results.csv, summary.json, report.html, audio)."
        + ("\n\n**Tiny models**: the numbers measure plumbing, not quality." if engines.settings.tiny_models else "")
    )
    with gr.Tabs():
        with gr.Tab("Run", id="ev-tab-run"):
            run = eval_run.build(engines, choices)
        with gr.Tab("Results", id="ev-tab-results") as results_tab:
            results = eval_results.build(engines, choices, results_tab)
        with gr.Tab("Compare", id="ev-tab-compare"):
            compare = eval_compare.build(engines, choices)
        with gr.Tab("Checkpoints", id="ev-tab-checkpoints"):
            eval_checkpoints.build(engines, choices, run)
        with gr.Tab("Listening test", id="ev-tab-listen"):
            listening = eval_listening.build(engines, choices)

    # A finished run appears in the Results sub-tab's list.
    run.finished.then(
        lambda cur: refresh_runs_callback(engines, cur),
        inputs=results.runs,
        outputs=results.runs,
        api_visibility="private",
    )
    # Opening any run picker of Compare or Listening test refreshes all four (runs made since the tab was built).
    pickers = [compare.run_a, compare.run_b, compare.pair_run, listening.run]
    for picker in (compare.run_a, compare.pair_run, listening.run):
        picker.focus(
            lambda: refresh_run_lists_callback(engines, len(pickers)), outputs=pickers, api_visibility="private"
        )
