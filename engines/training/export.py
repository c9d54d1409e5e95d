"""A checkpoint of a run written out as a ready XTTS model folder (what the TTS and Eval pickers load)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engines.core.audio import write_json
from engines.core.errors import InputError, LabError
from engines.core.names import check_name
from engines.core.provenance import utc_now
from engines.training.runs import (
    CHECKPOINT_DIR,
    TRAINED_PREFIX,
    BaseModel,
    checkpoint_step,
    clip_seconds,
    read_dataset,
    read_index,
    read_run,
)
from engines.training.views import best_checkpoint

log = logging.getLogger(__name__)


def pick_checkpoint(run_dir: Path, checkpoint: Path | str | None) -> Path:
    """The checkpoint to export: the one named (a path or file name of this run), else the best.

    Raises:
        InputError: no checkpoint yet, or a checkpoint of another run.
    """
    run_id = run_dir.name
    if checkpoint is None:
        best = best_checkpoint(run_dir)
        if best is None:
            raise InputError(f"Run {run_id!r} has no checkpoint yet; train at least one epoch or save-every steps.")
        return best
    ckpt = Path(checkpoint)
    ckpt = ckpt if ckpt.is_absolute() else run_dir / CHECKPOINT_DIR / ckpt.name
    if ckpt.resolve().parent != (run_dir / CHECKPOINT_DIR).resolve() or not ckpt.is_file():
        raise InputError(f"{ckpt.name} is not a checkpoint of run {run_id!r}.")
    return ckpt


def export_run(
    run_dir: Path,
    checkpoint: Path | str | None,
    name: str | None,
    parent: Path,
    *,
    overwrite: bool,
    base_of: Callable[[dict[str, Any]], BaseModel],
    lock: threading.RLock,
) -> Path:
    """Write a ready XTTS model directory from a checkpoint (see ``TrainingEngine.export``).

    Args:
        run_dir: the run folder.
        checkpoint: a checkpoint path (or file name) of the run; None = best by eval loss, else latest.
        name: folder name (letters, digits, . _ -); None = "<dataset>-step<step>".
        parent: the folder the model folder goes in.
        overwrite: replace an existing folder of that name.
        base_of: the base model files a run trained from, from its run.json.
        lock: held while the model is in memory (one whole model at a time).

    Returns:
        The model directory.

    Raises:
        InputError: no checkpoint, a checkpoint of another run, a bad or taken name.
        MissingWeightsError: the base model files are gone.
        LabError: the checkpoint does not fit the base.
    """
    import torch

    run_id = run_dir.name
    info = read_run(run_dir)
    ckpt = pick_checkpoint(run_dir, checkpoint)
    step = checkpoint_step(ckpt)
    name = check_name(name or f"{info.get('dataset', 'voice')}-step{step}", "model")
    parent.mkdir(parents=True, exist_ok=True)
    target = parent / name
    if target.exists() and not overwrite:
        raise InputError(f"A model named {name!r} already exists in {parent}; pick another name.")
    base = base_of(info)

    with lock:  # not GPU work, but it holds a whole model in RAM: one at a time
        state = _inference_state(base.checkpoint)
        ckpt_state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
        trained = {k[len("xtts.") :]: v for k, v in ckpt_state["model"].items() if k.startswith(TRAINED_PREFIX)}
        wrong = [k for k, v in trained.items() if k not in state or state[k].shape != v.shape]
        if not trained or wrong:
            raise LabError(
                f"{ckpt.name} does not fit base {base.model_id!r} "
                f"({len(wrong)} mismatched GPT weights); was the base model replaced?"
            )
        state.update(trained)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
        try:
            torch.save({"model": state}, tmp / "model.pth")
            del state, ckpt_state, trained
            shutil.copy2(base.config, tmp / "config.json")
            shutil.copy2(base.vocab, tmp / "vocab.json")
            if base.speakers is not None:
                shutil.copy2(base.speakers, tmp / "speakers_xtts.pth")
            reference = reference_clip(Path(info["dataset_dir"]))
            if reference is not None:
                shutil.copy2(reference, tmp / "reference.wav")
            entry = read_index(run_dir).get(ckpt.name, {})
            write_json(
                tmp / "export.json",
                {
                    "run": run_id,
                    "checkpoint": ckpt.name,
                    "step": step,
                    "epoch": entry.get("epoch"),
                    "eval_loss": entry.get("eval_loss"),
                    "train_loss": entry.get("train_loss"),
                    "dataset": info.get("dataset"),
                    "language": info.get("language"),
                    "base_model": base.model_id,
                    "training_assets": str(base.dvae.parent),
                    "reference": reference.name if reference else None,
                    "exported": utc_now(),
                },
            )
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    log.info("Exported %s (%s) to %s", run_id, ckpt.name, target)
    return target


def reference_clip(dataset_dir: Path, max_seconds: float = 10.0) -> Path | None:
    """The dataset's longest clip under ``max_seconds`` (a good cloning reference)."""
    with contextlib.suppress(LabError):
        train, evals, _ = read_dataset(dataset_dir)
        timed = [(clip_seconds(r["audio_file"]), r["audio_file"]) for r in train + evals]
        fitting = [t for t in timed if 0 < t[0] <= max_seconds]
        if fitting:
            return Path(max(fitting)[1])
    return None


def _inference_state(model_path: Path) -> dict[str, Any]:
    """A model.pth as XTTS inference weights, via coqui's own conversion (strips the Trainer's "xtts."
    prefix, drops DVAE and mel-spectrogram keys, upgrades legacy checkpoints)."""
    from TTS.tts.models.xtts import Xtts

    # get_compatible_checkpoint_state_dict reads no model state: no need to build a 450 M-parameter model.
    state: dict[str, Any] = Xtts.get_compatible_checkpoint_state_dict(object.__new__(Xtts), model_path)
    return state
