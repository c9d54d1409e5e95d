"""What a fine-tuning run is asked to do: ``TrainOptions``, the presets and the memory estimate."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, fields
from typing import Any

from engines.core.errors import InputError

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050  # GPTTrainer's input rate (XTTS audio.sample_rate)

CODE_STRIDE = 1024  # audio samples per GPT audio token (XTTS gpt_code_stride_len)


@dataclass(frozen=True)
class TrainOptions:
    """One fine-tuning run's settings (see ``PRESETS`` for sensible sets)."""

    dataset: str = ""  # dataset folder name under settings.datasets_dir
    base_model: str = "xtts_v2"  # "xtts_v2", "tiny" (tiny mode) or a model dir (folder under workspace/models)
    epochs: int = 10  # passes over the training clips
    batch_size: int = 4  # clips per step; 1 allowed; VRAM grows with it
    grad_accum: int = 1  # steps whose gradients add up before one update (effective batch = batch x accum)
    learning_rate: float = 5e-6  # AdamW learning rate (coqui's XTTS recipe uses 5e-6)
    max_audio_seconds: float = 11.0  # longer clips are left out of training (coqui's limit is ~11.6 s)
    save_every: int = 1000  # checkpoint every N steps (there is always one at each epoch end)
    eval_every: int | None = None  # evaluate every N steps; None = at each epoch end only
    seed: int = 1  # seeds the data order and conditioning slices
    keep_checkpoints: int = 3  # newest checkpoints kept on disk (the best-eval one is always kept)
    gpus: str = "1"  # "1" = one process (the device setting's GPU, or CPU); "N" or "0,1" = DDP, one process per GPU


# Presets fill every field but dataset and base model. VRAM figures: see ``estimate_vram_gib``.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "epochs": 5,
        "batch_size": 2,
        "grad_accum": 1,
        "learning_rate": 5e-6,
        "max_audio_seconds": 11.0,
        "save_every": 500,
        "eval_every": None,
        "seed": 1,
        "keep_checkpoints": 2,
    },
    "standard": {
        "epochs": 10,
        "batch_size": 4,
        "grad_accum": 2,
        "learning_rate": 5e-6,
        "max_audio_seconds": 11.0,
        "save_every": 1000,
        "eval_every": None,
        "seed": 1,
        "keep_checkpoints": 3,
    },
    "thorough": {
        "epochs": 20,
        "batch_size": 6,
        "grad_accum": 4,
        "learning_rate": 4e-6,
        "max_audio_seconds": 11.0,
        "save_every": 1000,
        "eval_every": None,
        "seed": 1,
        "keep_checkpoints": 5,
    },
}


def preset_options(name: str, **overrides: Any) -> TrainOptions:
    """TrainOptions from a preset, with dataset/base model (and any field) given by the caller.

    Args:
        name: "quick", "standard" or "thorough".
        **overrides: TrainOptions fields to set on top (dataset, base_model, ...).

    Returns:
        The options.

    Raises:
        InputError: unknown preset.
    """
    if name not in PRESETS:
        raise InputError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    return TrainOptions(**{**PRESETS[name], **overrides})


def estimate_vram_gib(
    batch_size: int,
    max_audio_seconds: float = 11.0,
    *,
    gpt_params: float = 441.0e6,
    layers: int = 30,
    width: int = 1024,
    heads: int = 16,
    max_text_tokens: int = 200,
) -> float:
    """Upper-bound GPU memory estimate for fine-tuning (fp32 AdamW), defaults = XTTS v2's GPT.

    This is a reasoned estimate, not a measurement: the trained GPT (441 M parameters in XTTS v2)
    needs 16 bytes per parameter (weights, gradients, two AdamW moments) = 7.1 GB; the frozen parts
    (HiFi-GAN decoder, speaker encoder, DVAE) and the CUDA context add ~1.2 GB. Activations per clip
    follow the transformer rule ``layers x seq x width x (34 + 5 x heads x seq / width)`` bytes (at
    16 bit; doubled for fp32), with ``seq`` = 32 conditioning latents + text tokens + audio codes (one
    per 1024 samples at 22.05 kHz): about 1.9 GiB per clip with 11 s clips and 200 text tokens. Real
    batches are padded to their longest clip, so typical use is lower. With XTTS v2 and 11 s clips:

    - quick (batch 2): ~11.6 GiB — a 12 GB card is tight, 16 GB is comfortable
    - standard (batch 4): ~15.4 GiB — a 16 GB card is tight, 24 GB is comfortable
    - thorough (batch 6): ~19.3 GiB — needs a 24 GB card

    Lowering ``max_audio_seconds`` or the batch size lowers it; gradient accumulation does not cost memory.

    Args:
        batch_size: clips per step.
        max_audio_seconds: longest training clip.
        gpt_params: trainable parameters.
        layers / width / heads: the GPT's shape (from the base model's config.json).
        max_text_tokens: longest text in tokens.

    Returns:
        GiB.
    """
    fixed = gpt_params * 16 + 1.25e9
    seq = 32 + max_text_tokens + math.ceil(max_audio_seconds * SAMPLE_RATE / CODE_STRIDE) + 4
    per_clip = layers * seq * width * (34 + 5 * heads * seq / width) * 2
    return round((fixed + batch_size * per_clip) / 2**30, 1)


def options_from_dict(data: dict[str, Any]) -> TrainOptions:
    """TrainOptions from a run.json ``options`` dict, ignoring unknown keys (older/newer versions)."""
    known = {f.name for f in fields(TrainOptions)}
    return TrainOptions(**{k: v for k, v in data.items() if k in known})


# --------------------------------------------------------------------------- several GPUs (DDP)


def parse_gpus(value: str | int | None) -> tuple[int, ...] | None:
    """The ``gpus`` option's syntax alone: None for one process, else the indices (see ``select_gpus``).

    Raises:
        InputError: not a count or an index list, or a GPU named twice.
    """
    text = re.sub(r"\s+", "", str(value if value is not None else "")) or "1"
    allowed = 'GPUs must be 1, a count such as 2, or a list of GPU indices such as "0,1"'
    if re.fullmatch(r"\d+", text):
        count = int(text)
        if count < 1:
            raise InputError(f"Invalid training setting: {allowed} (got {text!r}).")
        return None if count == 1 else tuple(range(count))
    if re.fullmatch(r"\d+(,\d+)+", text):
        indices = tuple(int(i) for i in text.split(","))
        if len(set(indices)) != len(indices):
            raise InputError(f"Invalid training setting: GPU list {text!r} names a GPU twice.")
        return indices
    raise InputError(
        f"Invalid training setting: {allowed} (got {text!r}); to train on one chosen GPU, set GPUs to 1 "
        "and the device setting to cuda:N."
    )


def select_gpus(value: str | int | None, visible: int, device: str) -> tuple[int, ...] | None:
    """The GPUs a run trains on, from the ``gpus`` option (the one guard for it).

    Args:
        value: "1" (or empty) = one process, exactly the single-process launch; "N" = GPUs 0..N-1;
            "a,b,..." = those GPU indices (torch's numbering in the app's process: positions in
            CUDA_VISIBLE_DEVICES when it is set).
        visible: CUDA devices the app sees (``torch.cuda.device_count()``).
        device: the resolved device setting ("cpu", "cuda", "cuda:N").

    Returns:
        None for one process, else the indices (two or more) for ``trainer.distribute``.

    Raises:
        InputError: not a count or an index list, duplicates, DDP without CUDA, or more GPUs than visible.
    """
    indices = parse_gpus(value)
    if indices is None:
        return None
    if device == "cpu" or visible == 0:
        why = "the device setting is 'cpu'" if device == "cpu" else "no CUDA GPU is visible to this app"
        raise InputError(
            f"Training on {len(indices)} GPUs needs CUDA, but {why}: coqui's trainer.distribute runs one process "
            "per GPU and synchronizes them over NCCL, which has no CPU mode. Set GPUs to 1."
        )
    too_high = [i for i in indices if i >= visible]
    if too_high:
        raise InputError(
            f"Invalid training setting: GPU {too_high[0]} asked for, but this app sees {visible} CUDA "
            f"device(s) (indices 0..{visible - 1})."
        )
    return indices


@dataclass(frozen=True)
class RankPlan:
    """What one training process of a (possibly distributed) run does."""

    world_size: int  # training processes, one per GPU (1 = no DDP)
    rank: int  # this process's index; it uses cuda:<rank> of its CUDA_VISIBLE_DEVICES
    batch_per_rank: int  # clips per step in this process (the batch size setting is per GPU)
    global_batch: int  # clips per optimizer update over all ranks: batch x accumulation x world size
    writes: bool  # writes run.json, config.json, metrics.jsonl and checkpoints (rank 0 only)
    seed: int  # the same on every rank: identical initial weights; the sampler gives each rank other clips
    sharded: bool  # DistributedSampler: each epoch is shuffled and rank r takes every world_size-th clip
    clips_per_rank: int | None  # training clips this rank sees per epoch (the sampler pads to equal shares)
    steps_per_epoch: int | None  # batches per epoch, the same on every rank (ranks stay in step)


def rank_plan(options: TrainOptions, world_size: int, rank: int, train_clips: int | None = None) -> RankPlan:
    """The per-rank configuration of a run (pure: no CUDA needed).

    Args:
        options: the run's options.
        world_size: number of training processes (1 without DDP).
        rank: this process's rank, 0..world_size-1.
        train_clips: usable training clips, for the per-epoch counts (None = unknown).

    Raises:
        InputError: world size below 1 or rank out of range.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"Invalid rank {rank} for a world size of {world_size}.")
    clips = None if train_clips is None else -(-train_clips // world_size)
    return RankPlan(
        world_size=world_size,
        rank=rank,
        batch_per_rank=options.batch_size,
        global_batch=options.batch_size * options.grad_accum * world_size,
        writes=rank == 0,
        seed=options.seed,
        sharded=world_size > 1,
        clips_per_rank=clips,
        steps_per_epoch=None if clips is None else -(-clips // options.batch_size),
    )
