"""Eval tab, "Listening test" sub-tab: a blind A/B preference and/or MOS test on two systems of a run."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

from engines import Engines
from engines.core.errors import InputError
from engines.eval import report
from pages.common import Form, guarded, object_picker
from pages.eval_common import InitialChoices, systems_callback

PREFERENCES = {"Clip 1": "1", "Clip 2": "2", "About the same": "same"}  # the radio's labels -> the engine's answers

# ---------------------------------------------------------------- plain functions (no gradio)


def listening_trial(engines: Engines, state: dict[str, Any] | None) -> tuple[str, str | None, str | None, str]:
    """(sentence markdown, clip 1 path, clip 2 path, position text) of the current trial."""
    if not state:
        return "Start a test first.", None, None, ""
    plan = engines.eval.listening_plan(state["run_id"], state["test_id"])
    trials = plan["trials"]
    index = int(state["index"])
    if index >= len(trials):
        return (
            "**Done — thank you.** The results are below and saved under the run.",
            None,
            None,
            f"{len(trials)}/{len(trials)}",
        )
    trial = trials[index]
    folder = engines.eval.run_dir(state["run_id"])
    return (
        f"**Sentence:** {trial['text']}",
        str(folder / trial["clip1"]),
        str(folder / trial["clip2"]),
        f"Trial {index + 1} of {len(trials)}",
    )


def listening_summary_markdown(engines: Engines, state: dict[str, Any] | None) -> str:
    """Preference shares and MOS with 95% CIs (systems unblinded only here, after answering)."""
    if not state:
        return ""
    s = engines.eval.listening_summary(state["run_id"], state["test_id"])
    lines = [f"**{s['answered']} of {s['trials']} trials answered** (test `{s['test_id']}`, mode {s['mode']})"]
    if "preference" in s:
        lines.append("\n| preferred | share [95% CI] |\n|---|---|")
        for name, est in s["preference"].items():
            lines.append(f"| {name} | {report._pct(est)} |")
    if "mos" in s:
        lines.append("\n| system | MOS [95% CI] | ratings |\n|---|---|---|")
        for name, est in s["mos"].items():
            lines.append(f"| {name} | {report._val(est, 2)} | {est['n']} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- callbacks (thin, guarded)


@guarded
def start_listening_callback(engines: Engines, values: Mapping[str, Any]):
    """Start button, the Start form's values by name (run_id, system_a, system_b, mode, max_items)
    -> (state, sentence, clip 1, clip 2, position, summary)."""
    run_id = values.get("run_id")
    if not run_id:
        raise InputError("Pick a run.")
    test_id = engines.eval.create_listening_test(
        run_id,
        values.get("system_a"),
        values.get("system_b"),
        mode=values.get("mode"),
        max_items=int(values.get("max_items") or 20),
        seed=0,
    )
    state = {"run_id": run_id, "test_id": test_id, "index": 0}
    text, c1, c2, pos = listening_trial(engines, state)
    return state, text, c1, c2, pos, listening_summary_markdown(engines, state)


@guarded
def answer_callback(engines: Engines, values: Mapping[str, Any]):
    """Submit button, the Answer form's values by name (state, preference, mos1, mos2): record the
    answer, go on -> (state, sentence, clip 1, clip 2, position, summary, cleared preference)."""
    state = values.get("state")
    if not state:
        raise InputError("Start a test first.")
    plan = engines.eval.listening_plan(state["run_id"], state["test_id"])
    if int(state["index"]) >= len(plan["trials"]):
        raise InputError("The test is finished.")
    pref = PREFERENCES.get(values.get("preference") or "", None)
    mode = plan["mode"]
    engines.eval.record_listening(
        state["run_id"],
        state["test_id"],
        int(state["index"]),
        preference=pref if "ab" in mode else None,
        mos1=values.get("mos1") if "mos" in mode else None,
        mos2=values.get("mos2") if "mos" in mode else None,
    )
    state = {**state, "index": int(state["index"]) + 1}
    text, c1, c2, pos = listening_trial(engines, state)
    return state, text, c1, c2, pos, listening_summary_markdown(engines, state), None


# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class ListeningTab:
    """What the Eval tab refreshes of the Listening test sub-tab."""

    run: gr.Dropdown  # the run whose systems are tested


def build(engines: Engines, choices: InitialChoices) -> ListeningTab:
    """Lay out the Listening test sub-tab (inside the caller's ``gr.Tab``) and wire it."""
    gr.Markdown(
        "A blind test: the same sentences from two systems, clips in random order. Systems are "
        "revealed only in the results below."
    )
    with gr.Row():
        ls_run = object_picker(choices.runs, label="Run", elem_id="ev-ls-run")
        ls_a = gr.Dropdown([], label="System A", elem_id="ev-ls-a")
        ls_b = gr.Dropdown([], label="System B", elem_id="ev-ls-b")
        ls_mode = gr.Radio(
            [("A/B preference + MOS", "ab+mos"), ("A/B preference", "ab"), ("MOS 1-5", "mos")],
            value="ab+mos",
            label="Mode",
        )
        ls_items = gr.Number(20, label="Trials", precision=0, minimum=1)
    ls_start = gr.Button("Start test", elem_id="ev-ls-start")
    ls_state = gr.State(None)
    ls_pos = gr.Markdown(elem_id="ev-ls-pos")
    ls_text = gr.Markdown()
    with gr.Row():
        ls_clip1 = gr.Audio(type="filepath", interactive=False, label="Clip 1")
        ls_clip2 = gr.Audio(type="filepath", interactive=False, label="Clip 2")
    with gr.Row():
        ls_pref = gr.Radio(list(PREFERENCES), label="Which sounds better?", elem_id="ev-ls-pref")
        ls_mos1 = gr.Slider(1, 5, 3, step=1, label="Clip 1 quality (1 bad – 5 excellent)")
        ls_mos2 = gr.Slider(1, 5, 3, step=1, label="Clip 2 quality (1 bad – 5 excellent)")
    ls_submit = gr.Button("Submit and next", variant="primary", elem_id="ev-ls-submit")
    ls_summary = gr.Markdown(elem_id="ev-ls-summary")

    trial_outputs = [ls_state, ls_text, ls_clip1, ls_clip2, ls_pos, ls_summary]
    ls_run.change(lambda r: systems_callback(engines, r), inputs=ls_run, outputs=[ls_a, ls_b], api_visibility="private")
    start_form = Form(run_id=ls_run, system_a=ls_a, system_b=ls_b, mode=ls_mode, max_items=ls_items)
    ls_start.click(
        start_form.handler(functools.partial(start_listening_callback, engines)),
        inputs=start_form.inputs,
        outputs=trial_outputs,
        api_visibility="private",
    )
    answer_form = Form(state=ls_state, preference=ls_pref, mos1=ls_mos1, mos2=ls_mos2)
    ls_submit.click(
        answer_form.handler(functools.partial(answer_callback, engines)),
        inputs=answer_form.inputs,
        outputs=[*trial_outputs, ls_pref],
        api_visibility="private",
    )
    return ListeningTab(run=ls_run)
