"""Device choice in one place, and a summary of what the hardware holds."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch

from engines.core.errors import GPUOutOfMemoryError, InputError


def resolve_device(name: str = "auto") -> str:
    """Map a device setting to a torch device string.

    Args:
        name: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".

    Returns:
        The device to use.

    Raises:
        InputError: CUDA asked for but not available, or an unknown name.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"Device {name!r} was asked for but CUDA is not available; use 'auto' or 'cpu'.")
        return name
    raise InputError(f"Unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'.")


def gpu_memory(device: str) -> dict[str, float | str] | None:
    """Free/total/allocated GPU memory in GiB, or None on CPU."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(torch.device(device))
    gib = 1024**3
    return {
        "free_gib": round(free / gib, 2),
        "total_gib": round(total / gib, 2),
        "allocated_gib": round(torch.cuda.memory_allocated(torch.device(device)) / gib, 2),
        "name": torch.cuda.get_device_name(torch.device(device)),
    }


def free_memory() -> None:
    """Give cached GPU memory back after a model is unloaded."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextlib.contextmanager
def oom_guard(what: str, advice: str) -> Iterator[None]:
    """Turn a CUDA out-of-memory error into a GPUOutOfMemoryError that says what to lower."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        free_memory()
        raise GPUOutOfMemoryError(f"The GPU ran out of memory during {what}. {advice}") from exc


@functools.lru_cache(maxsize=1)
def torch_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "cuda": str(torch.version.cuda)}
