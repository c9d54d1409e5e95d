"""Checkpoint ranking: every checkpoint of a training run becomes a model folder, evaluated side by side.

Exports are cached in workspace/cache/eval-checkpoints/<run>/ and redone only when a checkpoint file
changed (path, size, mtime recorded in ``.source.json``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from config import Settings
from engines.core.audio import write_json
from engines.core.errors import InputError
from engines.core.names import slug
from engines.core.progress import ProgressFn
from engines.eval.config import EvalConfig


def require_training(training: Any) -> Any:
    """The training engine, or a message saying fine-tuning is not available."""
    if training is None:
        raise InputError("Fine-tuning is not available in this app, so there are no checkpoints to rank.")
    return training


def export_checkpoints(
    settings: Settings, training: Any, training_run: str, progress: ProgressFn | None = None
) -> list[tuple[str, str]]:
    """Export every checkpoint of a training run to workspace/cache/eval-checkpoints (reused when present).

    Returns:
        (model folder, checkpoint file) per checkpoint, oldest first.

    Raises:
        InputError: no training engine, unknown run, or a run without checkpoints.
    """
    training = require_training(training)
    checkpoints = [Path(p) for p in training.checkpoints(training_run)]
    if not checkpoints:
        raise InputError(f"Training run {training_run!r} has no saved checkpoints yet.")
    cache = settings.workspace_sub("cache", "eval-checkpoints", slug(training_run, 80))
    out = []
    for i, ckpt in enumerate(checkpoints):
        dest = cache / slug(ckpt.stem, 60)
        stamp = dest / ".source.json"
        want = {"checkpoint": str(ckpt), "mtime_ns": ckpt.stat().st_mtime_ns, "size": ckpt.stat().st_size}
        fresh = False
        if stamp.is_file():
            try:
                fresh = json.loads(stamp.read_text(encoding="utf-8")) == want and (dest / "model.pth").is_file()
            except (OSError, json.JSONDecodeError):
                fresh = False
        if not fresh:
            if progress:
                progress(i / len(checkpoints), desc=f"Exporting checkpoint {ckpt.name}")
            dest = Path(training.export(training_run, ckpt, dest.name, dest_dir=cache, overwrite=True))
            write_json(dest / ".source.json", want)
        out.append((str(dest.resolve()), str(ckpt)))
    return out


def ranking_config(
    base: EvalConfig, training_run: str, pairs: list[tuple[str, str]], include_base_model: str | None = None
) -> EvalConfig:
    """One eval run with a system per checkpoint (and optionally a reference model); ``base.models`` is ignored."""
    models = tuple(m for m, _ in pairs) + ((include_base_model,) if include_base_model else ())
    return dataclasses.replace(
        base,
        models=models,
        checkpoints=tuple(pairs),
        training_run=training_run,
        name=base.name or f"checkpoints-{training_run}",
    )


def best_checkpoint(run_id: str, summary: dict[str, Any] | None) -> dict[str, Any]:
    """The best-ranked checkpoint entry of a checkpoint-ranking run's summary.

    Raises:
        InputError: the run did not rank checkpoints, or has no ranked checkpoint.
    """
    if not summary or not summary.get("training_run"):
        raise InputError(f"Run {run_id!r} did not rank the checkpoints of a training run.")
    ranked = [e for e in summary.get("ranking", []) if e.get("checkpoint")]
    if not ranked:
        raise InputError(f"Run {run_id!r} has no scored checkpoint yet.")
    return ranked[0]
