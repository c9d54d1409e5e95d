"""Finetune tab, "2. Train": settings and presets, start/stop/resume, live view, runs list, export.

UI only: the plain functions below call ``engines.training`` (tests call them directly); the
callbacks are thin guarded wrappers. The Start button's inputs travel by name (``pages.common.Form``):
``dataset``, ``base``, the ``PRESET_FIELDS`` and ``gpus``. Training runs in its own process, so the live view is a
``gr.Timer`` reading the run folder every 2 s: refreshing the browser or restarting the app shows the
running (or latest) run again.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from engines import Engines
from engines.core.errors import InputError
from engines.training.engine import METRICS_FILE, PRESETS, RunStatus, TrainOptions, estimate_vram_gib
from pages.common import Form, guarded, notify, object_picker
from rest.catalog import shown

log = logging.getLogger(__name__)

PRESET_FIELDS = (
    "epochs",
    "batch_size",
    "grad_accum",
    "learning_rate",
    "max_audio_seconds",
    "save_every",
    "eval_every",
    "seed",
)
BEST = "best (lowest eval loss)"
RUN_COLUMNS = ["run", "status", "dataset", "settings", "best eval loss", "duration", "steps"]
REFRESH_SECONDS = 2.0


# ---------------------------------------------------------------- plain functions (no gradio events)


def preset_values(name: str) -> dict[str, Any]:
    """A preset's field values by name (the PRESET_FIELDS, in that order; eval-every None shows as 0 = each epoch).

    Raises:
        InputError: no preset of that name.
    """
    if name not in PRESETS:
        raise InputError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    values = PRESETS[name]
    return {f: 0 if values[f] is None and f == "eval_every" else values[f] for f in PRESET_FIELDS}


def build_options(values: Mapping[str, Any], keep_checkpoints: int = 3) -> TrainOptions:
    """The Start form's values (by name: ``dataset``, ``base`` and the PRESET_FIELDS) -> TrainOptions.

    Eval-every 0/empty = at each epoch end. The engine validates ranges.

    Raises:
        InputError: a whole-number field is empty.
    """

    def whole(name: str, label: str) -> int:
        value = values.get(name)
        if value is None or value == "":
            raise InputError(f"Enter a value for {label}.")
        return int(value)

    eval_every = values.get("eval_every")
    return TrainOptions(
        dataset=(values.get("dataset") or "").strip(),
        base_model=(values.get("base") or "").strip(),
        epochs=whole("epochs", "epochs"),
        batch_size=whole("batch_size", "batch size"),
        grad_accum=whole("grad_accum", "gradient accumulation"),
        learning_rate=float(values.get("learning_rate") or 0),
        max_audio_seconds=float(values.get("max_audio_seconds") or 0),
        save_every=whole("save_every", "save every"),
        eval_every=None if eval_every in (None, "") or int(eval_every) <= 0 else int(eval_every),
        seed=whole("seed", "seed"),
        keep_checkpoints=keep_checkpoints,
        gpus=str(values.get("gpus") or "1").strip(),  # the engine validates it (count, list, CUDA)
    )


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _fmt_loss(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def status_markdown(st: RunStatus | None, tiny: bool = False) -> str:
    """The live status panel."""
    if st is None:
        return "No training run yet. Pick a dataset and a preset, then **Start training**."
    total = st.total_steps or "?"
    lines = [
        f"**Run** `{st.run_id}` — **{st.status.upper()}** · dataset `{st.dataset}` · base `{st.base_model}` · "
        f"{st.device or '?'}",
        f"Epoch **{st.epoch}/{st.epochs}** · step **{st.step}/{total}** · ETA {_fmt_seconds(st.eta_seconds)} · "
        f"elapsed {_fmt_seconds(st.elapsed_seconds)}",
        f"Train loss {_fmt_loss(st.train_loss)} · eval loss {_fmt_loss(st.eval_loss)} "
        f"(best {_fmt_loss(st.best_eval_loss)}) · learning rate {st.lr if st.lr is not None else '–'} · "
        f"checkpoints {st.checkpoints}"
        + (f" · GPU memory {st.gpu_memory_gib:.1f} GiB" if st.gpu_memory_gib is not None else ""),
    ]
    if st.status == "crashed":
        lines.append(
            "The training process died without finishing (killed, out of RAM, machine restarted). "
            "**Resume** continues from the last checkpoint."
        )
    if st.error:
        lines.append(f"**Error:** {st.error}")
    if tiny:
        lines.append("_Tiny-model mode: losses measure plumbing, not voice quality._")
    return "\n\n".join(lines)


def plot_frame(engines: Engines, run_id: str | None) -> pd.DataFrame | None:
    """Train and eval loss against the global step, for gr.LinePlot (columns step, loss, series).

    None when there is nothing to plot: Gradio 6's LinePlot draws no lines after it once held an empty
    DataFrame, while None clears it cleanly. Both series are always present: the plot fixes its colours
    when it first draws and later swaps only the data, so eval loss, first logged at an epoch end, would
    otherwise be drawn without a colour (invisible); a series with no value yet gets one row with a NaN
    loss, which draws nothing.
    """
    if not run_id:
        return None
    frame = engines.training.metrics(run_id)
    if frame.empty:
        return None
    out = frame[["step", "loss", "kind"]].rename(columns={"kind": "series"}).dropna(subset=["loss"])
    out["series"] = out["series"].map({"train": "train loss", "eval": "eval loss"})
    if out.empty:
        return None
    missing = [name for name in ("train loss", "eval loss") if name not in set(out["series"])]
    placeholder = pd.DataFrame({"step": out["step"].iloc[0], "loss": float("nan"), "series": missing})
    return pd.concat([out, placeholder], ignore_index=True) if missing else out.reset_index(drop=True)


def runs_frame(engines: Engines) -> pd.DataFrame:
    """The runs table."""
    rows = [
        [
            r.run_id,
            r.status,
            r.dataset,
            r.settings,
            _fmt_loss(r.best_eval_loss),
            _fmt_seconds(r.duration_seconds),
            r.step,
        ]
        for r in engines.training.list_runs()
    ]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def checkpoint_choices(engines: Engines, run_id: str | None) -> list[tuple[str, str]]:
    """(label, value) for the export checkpoint dropdown: best first, then each checkpoint, newest first."""
    if not run_id:
        return [(BEST, BEST)]
    choices = [(BEST, BEST)]
    for info in reversed(engines.training.checkpoint_info(run_id)):
        eval_loss = info.get("eval_loss")
        label = f"{info['path'].name} — step {info['step']}, epoch {info.get('epoch', '?')}" + (
            f", eval loss {eval_loss:.4f}" if eval_loss is not None else ""
        )
        choices.append((label, info["path"].name))
    return choices


def view_of(engines: Engines, run_id: str | None) -> tuple[str | None, RunStatus | None]:
    """The run to show: the given one if it still exists, else the running or latest run."""
    if run_id:
        try:
            return run_id, engines.training.status(run_id)
        except InputError:
            pass  # deleted meanwhile: fall back
    latest = engines.training.latest_run()
    return latest, (engines.training.status(latest) if latest else None)


def suggestion_markdown(engines: Engines, base: str | None, batch_size: float | None, max_audio: float | None) -> str:
    """Device note, suggested batch size on GPU, and the VRAM estimate for XTTS v2 at these settings."""
    training = engines.training
    audio = float(max_audio or 11.0)
    try:
        batch = max(1, int(batch_size or 1))
    except (TypeError, ValueError):
        batch = 1
    estimate = estimate_vram_gib(batch, audio)
    try:
        suggested = training.suggest_batch_size(options=TrainOptions(base_model=base or "", max_audio_seconds=audio))
    except Exception:  # noqa: BLE001 - a hint must never break the page
        suggested = None
    if suggested is None:
        where = "Training runs on the **CPU**: fine for the tiny model, far too slow for real XTTS (use a GPU)."
    else:
        where = f"Suggested batch size for the free GPU memory: **{suggested}** (an estimate)."
    return (
        f"{where} With XTTS v2, batch {batch} and {audio:g} s clips need about **{estimate:.0f} GiB** of GPU "
        "memory (upper-bound estimate; gradient accumulation costs none)."
    )


def listed_base(engines: Engines, values: Mapping[str, Any]) -> Mapping[str, Any]:
    """``values`` when its base is one the picker offers (or empty: the default).

    The picker takes typed values so a script can name a model exported after launch, but the trainer also
    loads any folder a Python caller names: from the page and its API a base must be a listed model id, never a
    server path (loading a checkpoint runs code from it).

    Raises:
        InputError: a base that is not listed (the message names no folder).
    """
    base = values.get("base")
    if base is None or (isinstance(base, str) and not base.strip()):
        return values
    listed = [model_id for _, model_id in engines.training.base_models()]
    if not isinstance(base, str) or base.strip() not in listed:
        raise InputError(f"Unknown base model {shown(str(base))}; bases here: {', '.join(map(repr, listed))}.")
    return values


def start(engines: Engines, values: Mapping[str, Any]) -> str:
    """Start a run from the Start form's values (by name, see ``build_options``); returns its id."""
    return engines.training.start(build_options(listed_base(engines, values)))


def export(engines: Engines, run_id: str | None, checkpoint: str | None, name: str | None) -> Path:
    """Export the selected run's checkpoint into workspace/models."""
    if not run_id:
        raise InputError("Select a run in the runs table first.")
    ckpt = None if not checkpoint or checkpoint == BEST else checkpoint
    return engines.training.export(run_id, ckpt, (name or "").strip() or None)


def delete(engines: Engines, run_id: str | None, confirmed: bool) -> None:
    """Delete the selected run (only with the confirmation ticked)."""
    if not run_id:
        raise InputError("Select a run in the runs table first.")
    if not confirmed:
        raise InputError(f"Tick 'Yes, delete' to delete run {run_id!r} and its checkpoints.")
    engines.training.delete_run(run_id)


# ---------------------------------------------------------------- callbacks (thin, guarded)


def _live(engines: Engines, run_id: str | None, signature: dict | None = None, force: bool = False) -> tuple:
    """Outputs of the live view: run id, status, plot, log, runs table, signature, dataset choices.

    The plot, the runs table and the dataset choices are sent only when what they show changed (a redraw
    every 2 s would flicker and reset the user's selection); ``force`` sends plot and table. A dataset built
    in "1. Dataset" shows up in the dropdown within one refresh.
    """
    training = engines.training
    run_id, st = view_of(engines, run_id)
    runs_dir = training.runs_dir
    count = sum(1 for _ in runs_dir.iterdir()) if runs_dir.is_dir() else 0
    metrics_file = training.run_dir(run_id) / METRICS_FILE if run_id else None
    size = metrics_file.stat().st_size if metrics_file is not None and metrics_file.is_file() else 0
    new = {
        "run": run_id,
        "status": st.status if st else None,
        "runs": count,
        "checkpoints": st.checkpoints if st else 0,
        "metrics": size,
        "datasets": training.list_datasets(),
    }
    old = signature if isinstance(signature, dict) else {}
    runs_changed = force or any(new[k] != old.get(k) for k in ("run", "status", "runs", "checkpoints"))
    plot_changed = force or any(new[k] != old.get(k) for k in ("run", "metrics"))
    datasets = gr.update(choices=new["datasets"]) if new["datasets"] != old.get("datasets") else gr.update()
    tiny = bool(getattr(engines.settings, "tiny_models", False))
    return (
        run_id,
        status_markdown(st, tiny),
        plot_frame(engines, run_id) if plot_changed else gr.update(),
        st.log_tail if st else "",
        runs_frame(engines) if runs_changed else gr.update(),
        new,
        datasets,
    )


@guarded
def refresh_callback(engines: Engines, run_id: str | None, signature: Any):
    return _live(engines, run_id, signature)


@guarded
def preset_callback(name: str):
    """Preset radio: the PRESET_FIELDS' values, in that order (the event's outputs)."""
    return list(preset_values(name).values())


@guarded
def suggestion_callback(engines: Engines, base: str | None, batch_size: float | None, max_audio: float | None):
    """Base, batch size or max audio changed: the device and VRAM hint."""
    return suggestion_markdown(engines, base, batch_size, max_audio)


@guarded
def refresh_choices_callback(engines: Engines, current_dataset: str | None, current_base: str | None):
    """The ↻ button: fresh dataset and base-model lists, keeping the current picks where they still exist."""
    names = engines.training.list_datasets()
    choices, default_base = _base_choices(engines)
    values = [v for _, v in choices]
    return (
        gr.update(choices=names, value=current_dataset if current_dataset in names else (names[0] if names else None)),
        gr.update(choices=choices, value=current_base if current_base in values else default_base),
    )


@guarded
def start_callback(engines: Engines, values: Mapping[str, Any]):
    """Start button: the form's values by name (see ``build_options``)."""
    run_id = start(engines, values)
    notify(f"Training run {run_id} started.")
    return _live(engines, run_id, force=True)


def vocabulary_markdown(engines: Engines, values: Mapping[str, Any]) -> str:
    """The coverage report of the dataset's text by the base's vocabulary (what Start would extend, and why)."""
    report = engines.training.vocabulary(build_options(listed_base(engines, values)))
    verdict = (
        "**Start will extend the vocabulary** (a copy of the base in the run folder; see docs/new-language.md)."
        if report.needs_extension
        else "The base's vocabulary covers this dataset: Start trains from the base itself."
    )
    return report.summary().replace("\n", "  \n") + "  \n" + verdict


@guarded
def vocabulary_callback(engines: Engines, values: Mapping[str, Any]) -> str:
    """Check vocabulary button."""
    return vocabulary_markdown(engines, values)


@guarded
def stop_callback(engines: Engines, run_id: str | None):
    active = engines.training.active_run()
    if not active:
        raise InputError("No training run is running.")
    engines.training.stop(active)
    notify(f"Run {active} stopped; its checkpoints are kept. Resume continues from the last one.")
    return _live(engines, active, force=True)


@guarded
def resume_callback(engines: Engines, run_id: str | None):
    run_id, st = view_of(engines, run_id)
    if st is None:
        raise InputError("No run to resume.")
    engines.training.resume(run_id)
    notify(f"Run {run_id} resumed from its last checkpoint.")
    return _live(engines, run_id, force=True)


@guarded
def select_callback(engines: Engines, table: pd.DataFrame, evt: gr.SelectData):
    row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
    run_id = str(table.iloc[int(row)]["run"])
    choices = checkpoint_choices(engines, run_id)
    live = list(_live(engines, run_id, force=True))
    live[4] = gr.update()  # the table was just clicked: redrawing it would drop the highlight
    return (run_id, f"Selected run `{run_id}`.", gr.update(choices=choices, value=BEST), *live)


@guarded
def export_callback(engines: Engines, run_id: str | None, checkpoint: str | None, name: str | None):
    path = export(engines, run_id, checkpoint, name)
    notify(f"Exported to {path}: pick '{path.name}' in the TTS and Eval model lists.")
    return f"Exported **{path.name}** to `{path}` (config.json, model.pth, vocab.json, reference.wav, export.json)."


@guarded
def delete_callback(engines: Engines, run_id: str | None, confirmed: bool):
    delete(engines, run_id, confirmed)
    notify(f"Run {run_id} deleted.")
    return (None, "Run deleted.", gr.update(choices=[(BEST, BEST)], value=BEST), False, runs_frame(engines))


# ---------------------------------------------------------------- layout


def _base_choices(engines: Engines) -> tuple[list[tuple[str, str]], str]:
    training = engines.training
    choices: list[tuple[str, str]] = []
    if getattr(engines, "tts", None) is not None:
        try:
            choices = list(engines.tts.list_models())
        except Exception:  # noqa: BLE001 - fall back to the training engine's own list
            choices = []
    if not choices:
        choices = training.base_models()
    default = training.default_base()
    if default not in [value for _, value in choices]:
        choices.insert(0, (default, default))
    return choices, default


def build(engines: Engines) -> None:
    """The "2. Train" sub-tab (called inside the Finetune tab)."""
    if getattr(engines, "training", None) is None:
        gr.Markdown("Training is not available (no training engine).")
        return
    training = engines.training
    datasets = training.list_datasets()
    bases, default_base = _base_choices(engines)
    defaults = preset_values("standard")

    gr.Markdown(
        "Fine-tune XTTS's GPT on a dataset from **1. Dataset**. Training runs in its own process: you can "
        "close the browser; Stop keeps the checkpoints and Resume continues from the last one. "
        "Export writes a model folder that the TTS and Eval tabs list."
    )
    with gr.Row():
        dataset = object_picker(
            datasets,
            value=datasets[0] if datasets else None,
            label="Dataset",
            elem_id="tr-dataset",
            scale=3,
        )
        refresh_lists = gr.Button("↻", elem_id="tr-refresh", scale=0, min_width=40)
        base = object_picker(
            bases,
            value=default_base,
            label="Base model",
            elem_id="tr-base",
            scale=3,
            info="XTTS v2, or a fine-tuned model to continue training that voice",
        )
        preset = gr.Radio(list(PRESETS), value="standard", label="Preset", elem_id="tr-preset", scale=3)
    with gr.Row():
        epochs = gr.Number(defaults["epochs"], label="Epochs", precision=0, minimum=1, elem_id="tr-epochs")
        batch = gr.Number(defaults["batch_size"], label="Batch size", precision=0, minimum=1, elem_id="tr-batch")
        accum = gr.Number(
            defaults["grad_accum"], label="Gradient accumulation", precision=0, minimum=1, elem_id="tr-accum"
        )
        lr = gr.Number(defaults["learning_rate"], label="Learning rate", elem_id="tr-lr")
    with gr.Row():
        max_audio = gr.Number(
            defaults["max_audio_seconds"], label="Max audio length (s)", minimum=1, elem_id="tr-max-audio"
        )
        save_every = gr.Number(
            defaults["save_every"], label="Save every (steps)", precision=0, minimum=1, elem_id="tr-save-every"
        )
        eval_every = gr.Number(
            defaults["eval_every"],
            label="Eval every (steps; 0 = each epoch)",
            precision=0,
            minimum=0,
            elem_id="tr-eval-every",
        )
        seed = gr.Number(defaults["seed"], label="Seed", precision=0, elem_id="tr-seed")
        gpus = gr.Textbox(
            TrainOptions().gpus,
            label="GPUs",
            info='1 = one process; 2, 4 or a list like "0,1" = one process per GPU (DDP, CUDA only)',
            max_lines=1,
            elem_id="tr-gpus",
        )
    suggestion = gr.Markdown(
        suggestion_markdown(engines, default_base, defaults["batch_size"], defaults["max_audio_seconds"]),
        elem_id="tr-suggest",
    )
    with gr.Row():
        start_btn = gr.Button("Start training", variant="primary", elem_id="tr-start")
        stop_btn = gr.Button("Stop", variant="stop", elem_id="tr-stop")
        resume_btn = gr.Button("Resume", elem_id="tr-resume")
        vocab_btn = gr.Button("Check vocabulary", elem_id="tr-vocab")
    vocab_report = gr.Markdown(elem_id="tr-vocab-report")

    view_run = gr.State(None)  # the run the live view shows
    signature = gr.State(None)  # what the runs table was last built from
    status = gr.Markdown(status_markdown(None), elem_id="tr-status")
    plot = gr.LinePlot(
        None,
        x="step",
        y="loss",
        color="series",
        title="Loss",
        x_title="step",
        y_title="loss",
        height=300,
        elem_id="tr-loss-plot",
    )
    log_box = gr.Textbox(
        label="Log (last lines of train.log)",
        lines=12,
        max_lines=12,
        autoscroll=True,
        interactive=False,
        elem_id="tr-log",
    )

    gr.Markdown("### Runs")
    runs = gr.Dataframe(runs_frame(engines), headers=RUN_COLUMNS, interactive=False, wrap=True, elem_id="tr-runs")
    selected = gr.State(None)  # the run picked in the table (export / delete target)
    selected_note = gr.Markdown("Click a run to export or delete it.", elem_id="tr-selected")
    with gr.Row():
        checkpoint = object_picker([(BEST, BEST)], value=BEST, label="Checkpoint", elem_id="tr-checkpoint", scale=3)
        export_name = gr.Textbox(
            label="Model name",
            placeholder="e.g. my-voice (empty = <dataset>-step<N>)",
            elem_id="tr-export-name",
            scale=3,
        )
        export_btn = gr.Button("Export model", variant="primary", elem_id="tr-export", scale=1)
    export_note = gr.Markdown(elem_id="tr-export-result")
    with gr.Row():
        confirm = gr.Checkbox(
            False, label="Yes, delete the selected run and its checkpoints", elem_id="tr-delete-confirm"
        )
        delete_btn = gr.Button("Delete run", variant="stop", elem_id="tr-delete")

    # The preset's fields by name (PRESET_FIELDS order: preset_callback returns its values in it).
    preset_fields = dict(
        epochs=epochs,
        batch_size=batch,
        grad_accum=accum,
        learning_rate=lr,
        max_audio_seconds=max_audio,
        save_every=save_every,
        eval_every=eval_every,
        seed=seed,
    )
    # The train_start API's positional order is this order (unchanged for script users).
    # gpus last: not a preset field (it is the hardware, not the recipe).
    form = Form(dataset=dataset, base=base, **{name: preset_fields[name] for name in PRESET_FIELDS}, gpus=gpus)
    live_outputs = [view_run, status, plot, log_box, runs, signature, dataset]

    preset.change(
        preset_callback,
        inputs=preset,
        outputs=[preset_fields[name] for name in PRESET_FIELDS],
        show_progress="hidden",
        api_visibility="private",
    )
    for trigger in (base.change, batch.change, max_audio.change):
        trigger(
            lambda b, n, a: suggestion_callback(engines, b, n, a),
            inputs=[base, batch, max_audio],
            outputs=suggestion,
            show_progress="hidden",
            api_visibility="private",
        )

    refresh_lists.click(
        lambda d, b: refresh_choices_callback(engines, d, b),
        inputs=[dataset, base],
        outputs=[dataset, base],
        show_progress="hidden",
        api_visibility="private",
    )

    start_btn.click(
        form.handler(functools.partial(start_callback, engines)),
        inputs=form.inputs,
        outputs=live_outputs,
        api_name="train_start",
    )
    vocab_btn.click(
        form.handler(functools.partial(vocabulary_callback, engines)),
        inputs=form.inputs,
        outputs=vocab_report,
        api_name="train_vocabulary",
    )
    stop_btn.click(lambda r: stop_callback(engines, r), inputs=view_run, outputs=live_outputs, api_name="train_stop")
    resume_btn.click(
        lambda r: resume_callback(engines, r), inputs=view_run, outputs=live_outputs, api_name="train_resume"
    )

    timer = gr.Timer(REFRESH_SECONDS)
    timer.tick(
        lambda r, s: refresh_callback(engines, r, s),
        inputs=[view_run, signature],
        outputs=live_outputs,
        show_progress="hidden",
        queue=False,
        api_visibility="private",
    )
    root = gr.context.Context.root_block
    if root is not None:  # on page load (and browser refresh) show the running or latest run at once
        root.load(
            lambda: refresh_callback(engines, None, None),
            outputs=live_outputs,
            show_progress="hidden",
            api_visibility="private",
        )

    def on_select(table: pd.DataFrame, evt: gr.SelectData):  # the annotation makes Gradio pass the event
        return select_callback(engines, table, evt)

    runs.select(
        on_select,
        inputs=runs,
        outputs=[selected, selected_note, checkpoint, *live_outputs],
        api_visibility="private",
    )
    export_btn.click(
        lambda r, c, n: export_callback(engines, r, c, n),
        inputs=[selected, checkpoint, export_name],
        outputs=export_note,
        api_name="train_export",
    )
    delete_btn.click(
        lambda r, c: delete_callback(engines, r, c),
        inputs=[selected, confirm],
        outputs=[selected, selected_note, checkpoint, confirm, runs],
        api_visibility="private",
    )


__all__ = [
    "build",
    "build_options",
    "preset_values",
    "status_markdown",
    "plot_frame",
    "runs_frame",
    "checkpoint_choices",
    "export",
    "delete",
    "start",
]
