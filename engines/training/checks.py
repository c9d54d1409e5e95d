"""What a run needs before its worker is spawned: sane options, a dataset with usable clips, a base model
whose GPT holds the clips, and GPUs for a multi-GPU run. Nothing is written or started here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engines.core.errors import InputError
from engines.core.names import check_name
from engines.core.options import OPTION_RANGES
from engines.training.base import BaseResolver, read_model_args
from engines.training.options import CODE_STRIDE, SAMPLE_RATE, TrainOptions, parse_gpus, select_gpus
from engines.training.runs import BaseModel, clip_seconds, read_dataset

SEED_RANGE = OPTION_RANGES["seed"]  # numpy's and torch's seeds: 32 bits
MAX_EPOCHS = 10_000  # more is a typo (10**9 would run for years), not a plan


def validate_run(
    options: TrainOptions, datasets_dir: Path, bases: BaseResolver, device_setting: str
) -> tuple[Path, BaseModel, dict[str, Any]]:
    """Check options, dataset and base before anything is spawned.

    Args:
        options: what to train.
        datasets_dir: where datasets are (``options.dataset`` is a folder in it).
        bases: resolves ``options.base_model``.
        device_setting: the app's device setting ("auto", "cpu", "cuda", "cuda:N").

    Returns:
        (dataset folder, resolved base, facts: gpus, language, clip counts, GPT limits).

    Raises:
        InputError: a bad value (the message names the allowed range), no dataset, no clips.
        MissingWeightsError: base files missing.
    """
    checks = [
        (1 <= options.epochs <= MAX_EPOCHS, f"epochs must be from 1 to {MAX_EPOCHS}"),
        (options.batch_size >= 1, "batch size must be at least 1"),
        (options.grad_accum >= 1, "gradient accumulation must be at least 1"),
        (0 < options.learning_rate < 1, "learning rate must be between 0 and 1 (XTTS: around 5e-6)"),
        (1.0 <= options.max_audio_seconds, "max audio length must be at least 1 s"),
        (options.save_every >= 1, "save-every must be at least 1 step"),
        (options.eval_every is None or options.eval_every >= 1, "eval-every must be empty (each epoch) or >= 1"),
        (options.keep_checkpoints >= 1, "keep at least 1 checkpoint"),
        (SEED_RANGE[0] <= options.seed <= SEED_RANGE[1], f"seed must be from {SEED_RANGE[0]} to {SEED_RANGE[1]}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(f"Invalid training setting: {message}.")
    if not options.dataset:
        raise InputError("Choose a dataset to train on (build one in '1. Dataset').")
    dataset_dir = datasets_dir / check_name(options.dataset, "dataset")
    if not dataset_dir.is_dir():
        raise InputError(f"Dataset {options.dataset!r} not found (datasets_list lists them).")
    base = bases.resolve(options.base_model)
    train, evals, language = read_dataset(dataset_dir)
    if not train or not evals:
        raise InputError(
            f"Dataset {options.dataset!r} has no clips to train on (train: {len(train)}, eval: {len(evals)}); "
            "it needs at least one training and one evaluation clip."
        )
    model_args = read_model_args(base.config)
    max_tokens = int(model_args.get("gpt_max_audio_tokens") or 605)
    limit = (max_tokens - 3) * CODE_STRIDE / SAMPLE_RATE
    if options.max_audio_seconds > limit:
        raise InputError(
            f"Max audio length {options.max_audio_seconds:g} s is more than this base model's GPT holds "
            f"({limit:.1f} s); lower it."
        )
    fitting = sum(1 for row in train if clip_seconds(row["audio_file"]) <= options.max_audio_seconds)
    if fitting == 0:
        raise InputError(
            f"All {len(train)} training clips are longer than the max audio length "
            f"({options.max_audio_seconds:g} s): raise it, or re-cut the dataset into shorter clips."
        )
    facts = {
        "gpus": machine_gpus(options, device_setting),
        "language": language,
        "train_clips": len(train),
        "eval_clips": len(evals),
        "train_clips_fitting": fitting,
        "model_args": model_args,
    }
    return dataset_dir, base, facts


def machine_gpus(options: TrainOptions, device_setting: str) -> tuple[int, ...] | None:
    """``select_gpus`` against this machine (a count of 1 never touches CUDA)."""
    from engines.core.device import resolve_device

    if parse_gpus(options.gpus) is None:  # one process: nothing to check against the hardware
        return None
    import torch

    device = resolve_device(device_setting)
    return select_gpus(options.gpus, torch.cuda.device_count() if torch.cuda.is_available() else 0, device)
