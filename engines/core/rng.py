"""A thread's own torch random stream: ``private_rng(seed)`` makes every torch random call of the calling thread
draw from its own seeded ``torch.Generator`` instead of torch's one process-wide generator.

Why: XTTS samples with the process-wide generator (``seed_everything`` seeds it; transformers' ``generate`` takes
no generator). Anything another thread does with that generator meanwhile (``torch.manual_seed``, ``fork_rng``,
the random initialisation of a model being built, Whisper's sampled fallback) shifts the synthesis' stream, and
the same seed no longer gives the same audio. Inside ``private_rng`` none of that reaches the shared generator.

How: a ``TorchFunctionMode``, which torch keeps per thread. Random functions called without a generator get the
block's own one (one per device, all seeded with ``seed``); a generator seeded like the global one draws the same
numbers, so results equal those of ``torch.manual_seed(seed)`` then the same calls. Random draws made inside C++
(dropout in training mode, for instance) are not seen; inference code has none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

# torch's random functions (and torch.nn.init's) that take a generator= keyword
_RANDOM = frozenset(
    {
        "bernoulli",
        "bernoulli_",
        "binomial",
        "cauchy_",
        "exponential_",
        "geometric_",
        "kaiming_normal_",
        "kaiming_uniform_",
        "log_normal_",
        "multinomial",
        "normal",
        "normal_",
        "orthogonal_",
        "poisson",
        "rand",
        "rand_like",
        "randint",
        "randint_like",
        "randn",
        "randn_like",
        "random_",
        "randperm",
        "sparse_",
        "trunc_normal_",
        "uniform_",
        "xavier_normal_",
        "xavier_uniform_",
    }
)


def _device_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.device:
    """Where a random call draws: its first tensor's device, else its ``device=`` (factory functions), else CPU."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device
    device = kwargs.get("device")
    return torch.device(device) if device is not None else torch.device("cpu")


class _PrivateGenerators(TorchFunctionMode):
    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed
        self.generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        gen = self.generators.get(device)
        if gen is None:
            gen = self.generators[device] = torch.Generator(device=device)
            gen.manual_seed(self.seed)
        return gen

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = dict(kwargs or {})
        if getattr(func, "__name__", "") in _RANDOM and kwargs.get("generator") is None:
            kwargs["generator"] = self.generator(_device_of(args, kwargs))
        return func(*args, **kwargs)


@contextlib.contextmanager
def private_rng(seed: int) -> Iterator[None]:
    """Inside the block, this thread's torch random calls draw from generators seeded with ``seed``; torch's
    process-wide generator is neither read nor moved (other threads keep their streams).

    Args:
        seed: the seed of the block's generators (one per device the block draws on).
    """
    with _PrivateGenerators(int(seed)):
        yield
