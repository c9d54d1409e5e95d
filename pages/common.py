"""Glue shared by the pages: engine errors become gr.Error, never a traceback in the browser."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from engines.errors import LabError

log = logging.getLogger(__name__)

# Events that run a model share this id, so Gradio runs them one at a time (GPU serialised).
GPU_CONCURRENCY_ID = "gpu"


def _to_gr_error(exc: BaseException) -> gr.Error:
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, LabError):
        return gr.Error(str(exc))
    name = type(exc).__name__
    if "OutOfMemoryError" in name:
        return gr.Error(
            "The GPU ran out of memory. Use shorter text, a smaller model or batch, or unload other models (System panel)."
        )
    log.exception("Unexpected error in a UI callback")
    return gr.Error(f"Unexpected error ({name}: {exc}). The app is still running; the console log has the details.")


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Gradio callback (function or generator) so every failure is a clear gr.Error."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every failure must reach the user as a message
                raise _to_gr_error(exc) from exc

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _to_gr_error(exc) from exc

    return wrapper


def file_paths(files: Any) -> list[Path]:
    """Paths from a gr.File value (one, several, or None; items are paths or objects with .name)."""
    if not files:
        return []
    if isinstance(files, str | Path):
        files = [files]
    return [Path(getattr(f, "name", f)) for f in files if f]


def notify(message: str) -> None:
    """Info toast for the user (also logged)."""
    log.info("%s", message)
    gr.Info(message)


def warn(message: str) -> None:
    log.warning("%s", message)
    gr.Warning(message)
