"""How many clips per step fit in free GPU memory, from the base model's GPT shape and ``estimate_vram_gib``."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from engines.core.errors import LabError
from engines.training.base import BaseResolver, read_model_args
from engines.training.options import TrainOptions, estimate_vram_gib


@dataclass(frozen=True)
class GptShape:
    """The trained GPT's size, as the memory estimate needs it (defaults: XTTS v2)."""

    params: float = 441.0e6  # trainable parameters
    layers: int = 30  # gpt_layers
    width: int = 1024  # gpt_n_model_channels
    heads: int = 16  # gpt_n_heads

    @classmethod
    def from_model_args(cls, args: dict[str, Any]) -> GptShape:
        """From a config.json's ``model_args`` (parameters: 12 x layers x width², +17% embeddings and heads).

        Raises:
            KeyError: a shape field is missing.
        """
        layers, width = int(args["gpt_layers"]), int(args["gpt_n_model_channels"])
        return cls(params=12 * layers * width**2 * 1.17, layers=layers, width=width, heads=int(args["gpt_n_heads"]))


def gpt_shape(bases: BaseResolver, model_id: str) -> GptShape:
    """The GPT shape of a base; XTTS v2's when the base cannot be resolved or read."""
    with contextlib.suppress(LabError, OSError, ValueError):
        return GptShape.from_model_args(read_model_args(bases.resolve(model_id).config))
    return GptShape()


def batch_for_memory(free_gib: float, max_audio_seconds: float, shape: GptShape) -> int:
    """The batch size (1..32) whose estimate fits in 90% of ``free_gib`` (the rest: fragmentation)."""

    def estimate(batch: int) -> float:
        return estimate_vram_gib(
            batch, max_audio_seconds, gpt_params=shape.params, layers=shape.layers, width=shape.width, heads=shape.heads
        )

    one, two = estimate(1), estimate(2)
    per_clip, fixed = two - one, one - (two - one)
    usable = free_gib * 0.9
    return int(max(1, min(32, (usable - fixed) // max(per_clip, 1e-3))))


def suggest_batch_size(free_gib: float, options: TrainOptions, bases: BaseResolver) -> int:
    """A batch size for ``options`` (its base model's GPT, its max audio length) in ``free_gib``."""
    return batch_for_memory(free_gib, options.max_audio_seconds, gpt_shape(bases, options.base_model))
