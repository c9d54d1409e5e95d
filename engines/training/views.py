"""What the Finetune tab and the API read about runs: the live status, the runs list, the metrics table
and the checkpoint table. Read-only: each view is built from the run folder's files, given the run's
status (which the process side decides: a dead worker means "crashed")."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines.core.errors import LabError
from engines.training.runs import (
    CRASHED,
    FAILED,
    RESUMABLE,
    RUN_FILE,
    RUNNING,
    RunStatus,
    RunSummary,
    checkpoint_files,
    checkpoint_step,
    find_run,
    log_tail,
    read_index,
    read_metrics,
    read_run,
)

if TYPE_CHECKING:
    import pandas as pd

# metrics.jsonl's fields, in the order of the table's columns
METRIC_COLUMNS = [
    "kind",
    "session",
    "epoch",
    "step",
    "loss",
    "loss_text_ce",
    "loss_mel_ce",
    "lr",
    "time",
    "step_time",
    "gpu_mem_gib",
]


def run_status(run_dir: Path, info: dict[str, Any], status: str, log_lines: int = 40) -> RunStatus:
    """The live view of one run (cheap: reads metrics.jsonl and the log's end).

    Args:
        run_dir: the run folder.
        info: its run.json.
        status: its status as the process side sees it (``RunProcesses.status_of``).
        log_lines: lines of train.log to include.
    """
    rows = read_metrics(run_dir)
    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    last = train[-1] if train else {}
    options = info.get("options", {})
    total = info.get("total_steps")
    step = int(last.get("step", 0))
    eta = None
    if status == RUNNING and total and len(train) >= 2:
        # Wall time between recent steps (includes data loading and evaluations), this session only.
        session = [r for r in train if r.get("session") == last.get("session")][-30:]
        gaps = [b["time"] - a["time"] for a, b in zip(session, session[1:]) if b["step"] > a["step"]]
        if gaps:
            eta = max(0.0, (total - step) * (sum(gaps) / len(gaps)))
    elapsed = float(info.get("elapsed_s") or 0.0)
    if status == RUNNING and info.get("session_started"):
        elapsed += max(0.0, time.time() - float(info["session_started"]))
    gpu = [r["gpu_mem_gib"] for r in train if r.get("gpu_mem_gib") is not None]
    eval_losses = [r["loss"] for r in evals if r.get("loss") is not None]
    return RunStatus(
        run_id=run_dir.name,
        status=status,
        dataset=info.get("dataset", ""),
        base_model=info.get("base_model", ""),
        device=info.get("device", ""),
        epoch=int(last.get("epoch", 0)),
        epochs=int(options.get("epochs", 0)),
        step=step,
        total_steps=total,
        eta_seconds=eta,
        train_loss=last.get("loss"),
        eval_loss=evals[-1].get("loss") if evals else None,
        best_eval_loss=min(eval_losses) if eval_losses else None,
        lr=last.get("lr"),
        gpu_memory_gib=max(gpu) if gpu else None,
        log_tail=log_tail(run_dir, log_lines),
        error=info.get("error") if status in (FAILED, CRASHED) else None,
        checkpoints=len(checkpoint_files(run_dir)),
        elapsed_seconds=round(elapsed, 1),
        resumable=status in RESUMABLE,
    )


def list_runs(runs_dir: Path, status_of: Callable[[str, dict[str, Any]], str]) -> list[RunSummary]:
    """All runs in ``runs_dir``, newest first (a folder that is not a readable run is left out).

    Args:
        runs_dir: the runs folder.
        status_of: a run's status from its id and run.json (``RunProcesses.status_of``).
    """
    out: list[RunSummary] = []
    if not runs_dir.is_dir():
        return out
    for folder in sorted(runs_dir.iterdir(), reverse=True):
        if not (folder / RUN_FILE).is_file():
            continue
        try:
            run_dir = find_run(runs_dir, folder.name)
            info = read_run(run_dir)
            st = run_status(run_dir, info, status_of(folder.name, info), log_lines=0)
        except LabError:
            continue
        o = info.get("options", {})
        settings = (
            f"{info.get('base_model', '?')}, {o.get('epochs')} ep, batch {o.get('batch_size')}"
            f"x{o.get('grad_accum')}, lr {o.get('learning_rate'):g}"
        )
        if int(info.get("world_size") or 1) > 1:
            settings += f", {info['world_size']} GPUs"
        out.append(
            RunSummary(
                run_id=folder.name,
                status=st.status,
                dataset=st.dataset,
                settings=settings,
                best_eval_loss=st.best_eval_loss,
                duration_seconds=st.elapsed_seconds,
                created=info.get("created", ""),
                step=st.step,
            )
        )
    return out


def metrics_table(run_dir: Path) -> pd.DataFrame:
    """Metrics as a DataFrame (``METRIC_COLUMNS``), one row per (kind, step): steps replayed after a crash
    replace the lost ones."""
    import pandas as pd

    rows = [r for r in read_metrics(run_dir) if r.get("kind") in ("train", "eval")]
    frame = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    if frame.empty:
        return frame
    return (
        frame.drop_duplicates(subset=["kind", "step"], keep="last").sort_values(["step", "kind"]).reset_index(drop=True)
    )


def checkpoint_table(run_dir: Path) -> list[dict[str, Any]]:
    """Per checkpoint: path, step, epoch, kind, train_loss, eval_loss (from checkpoints/index.json)."""
    index = read_index(run_dir)
    return [
        {"path": p, "step": checkpoint_step(p), **{k: v for k, v in index.get(p.name, {}).items() if k != "step"}}
        for p in checkpoint_files(run_dir)
    ]


def best_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the lowest evaluation loss, else the newest one."""
    infos = checkpoint_table(run_dir)
    scored = [i for i in infos if i.get("eval_loss") is not None]
    if scored:
        best: Path = min(scored, key=lambda i: (i["eval_loss"], -i["step"]))["path"]
        return best
    return infos[-1]["path"] if infos else None
