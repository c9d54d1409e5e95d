"""Glue shared by the pages: engine errors become gr.Error, never a traceback in the browser."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from engines.errors import LabError
from engines.options import OPTION_RANGES, TTSOptions

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


# ----- generation settings: one widget set for every page, built from OPTION_RANGES -----

# name -> (label, slider step, info); the order is the layout order, three per row.
_SLIDERS: dict[str, tuple[str, float, str | None]] = {
    "temperature": ("Temperature", 0.05, "Lower = steadier, flatter; higher = livelier, riskier"),
    "top_k": ("Top-k", 1, None),
    "top_p": ("Top-p", 0.05, None),
    "repetition_penalty": ("Repetition penalty", 0.5, None),
    "length_penalty": ("Length penalty", 0.5, "Only matters with beam search"),
    "speed": ("Speed", 0.05, None),
}
GENERATION_INPUTS = (*_SLIDERS, "seed", "split_sentences", "max_audio_tokens")


def generation_controls(
    defaults: TTSOptions, prefix: str, *, max_tokens_default: int = 0, split: bool = True, seed: bool = True
) -> dict[str, gr.components.Component]:
    """Lay out the generation-setting widgets (inside the caller's container).

    Args:
        defaults: the values shown first (``settings.generation``).
        prefix: elem_id prefix, e.g. ``"tts"`` -> ``tts-temperature``.
        max_tokens_default: the "max audio tokens" box's start value (0 = no cap).
        split: show the "split into sentences" checkbox.
        seed: show the seed box (-1 = random); a page with its own seed rule passes False.

    Returns:
        name -> component, for ``GENERATION_INPUTS`` (less the boxes switched off).
    """
    out: dict[str, gr.components.Component] = {}
    names = list(_SLIDERS)
    for row in range(0, len(names), 3):
        with gr.Row():
            for name in names[row : row + 3]:
                label, step, info = _SLIDERS[name]
                low, high = OPTION_RANGES[name]
                out[name] = gr.Slider(
                    low,
                    high,
                    value=getattr(defaults, name),
                    step=step,
                    label=label,
                    info=info,
                    elem_id=f"{prefix}-{name.replace('_', '-')}",
                )
    with gr.Row():
        if seed:
            out["seed"] = gr.Number(
                -1 if defaults.seed is None else defaults.seed,
                label="Seed (-1 = random)",
                precision=0,
                elem_id=f"{prefix}-seed",
            )
        if split:
            out["split_sentences"] = gr.Checkbox(
                defaults.split_sentences,
                label="Split into sentences",
                info="One generation per sentence, joined with a short pause",
                elem_id=f"{prefix}-split",
            )
        out["max_audio_tokens"] = gr.Number(
            max_tokens_default,
            label="Max audio tokens per sentence (0 = no cap)",
            precision=0,
            minimum=0,
            elem_id=f"{prefix}-max-tokens",
        )
    return out


def generation_options(values: Mapping[str, Any], language: str, defaults: TTSOptions = TTSOptions()) -> TTSOptions:
    """UI values (by name) -> TTSOptions; seed -1/empty = random, max tokens 0/empty = no cap.

    Names missing from ``values`` keep ``defaults``; ranges are checked by the engine.
    """
    seed = values.get("seed", defaults.seed)
    tokens = values.get("max_audio_tokens", defaults.max_audio_tokens)
    return TTSOptions(
        language=language,
        temperature=float(values.get("temperature", defaults.temperature)),
        top_k=int(values.get("top_k", defaults.top_k)),
        top_p=float(values.get("top_p", defaults.top_p)),
        repetition_penalty=float(values.get("repetition_penalty", defaults.repetition_penalty)),
        length_penalty=float(values.get("length_penalty", defaults.length_penalty)),
        speed=float(values.get("speed", defaults.speed)),
        seed=None if seed is None or seed == "" or int(seed) < 0 else int(seed),
        split_sentences=bool(values.get("split_sentences", defaults.split_sentences)),
        max_audio_tokens=None if not tokens or int(tokens) <= 0 else int(tokens),
    )


class Form:
    """The named input components of one event: Gradio gets them as a list (the API's positional order),
    the callback gets their values as a dict by name, so no callback repeats a 20-name parameter list."""

    def __init__(self, **components: gr.components.Component) -> None:
        self.components = components

    @property
    def inputs(self) -> list[gr.components.Component]:
        return list(self.components.values())

    def values(self, args: tuple[Any, ...]) -> dict[str, Any]:
        """Positional event values -> {name: value}."""
        return dict(zip(self.components, args, strict=True))
