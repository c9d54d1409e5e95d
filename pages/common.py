"""Glue shared by the pages: engine errors become gr.Error, never a traceback in the browser."""

from __future__ import annotations

import functools
import inspect
import logging
import math
import re
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import ValidationError

from engines.core.errors import InputError, LabError
from engines.core.options import OPTION_RANGES, TTSOptions

log = logging.getLogger(__name__)

# Events that run a model share this id, so Gradio runs them one at a time (GPU serialised).
GPU_CONCURRENCY_ID = "gpu"


def _to_gr_error(exc: BaseException, where: str) -> gr.Error:
    """The gr.Error the user sees; logs one line for a user error, the traceback (once) for a real bug.

    Gradio prints the traceback of every error an event raises; ``print_exception=False`` stops that, so
    an expected mistake (bad input, missing weights, a full disk) is one log line, not two tracebacks.
    """
    if isinstance(exc, gr.Error):
        log.warning("%s: %s", where, exc.message)
        exc.print_exception = False
        return exc
    if isinstance(exc, LabError):
        log.warning("%s: %s", where, exc)
        return gr.Error(str(exc), print_exception=False)
    name = type(exc).__name__
    if "OutOfMemoryError" in name:
        log.warning("%s: %s: %s", where, name, exc)
        return gr.Error(
            "The GPU ran out of memory. Use shorter text, a smaller model or batch, or unload other models (System panel).",
            print_exception=False,
        )
    log.exception("Unexpected error in %s", where)
    return gr.Error(
        f"Unexpected error ({name}: {exc}). The app is still running; the console log has the details.",
        print_exception=False,
    )


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Gradio callback (function or generator) so every failure is a clear gr.Error.

    User errors (``LabError``, ``gr.Error``) are logged as one line naming the callback; anything else is a
    bug and logged with its traceback.
    """
    where = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "callback")
    check_text = _text_check(fn)
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                check_text(args, kwargs)
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every failure must reach the user as a message
                raise _to_gr_error(exc, where) from exc

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            check_text(args, kwargs)
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _to_gr_error(exc, where) from exc

    return wrapper


def _text_check(fn: Callable[..., Any]) -> Callable[[tuple, dict], None]:
    """A check that the parameters ``fn`` annotates as ``str`` (or ``str | None``) got text.

    A textbox or a dropdown that allows custom values hands a script's value through unchecked, so an API
    call with a number or a list there failed deep inside with an AttributeError; now it is a clear message.
    """
    try:
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an annotation we cannot resolve: no check, as before
        return lambda args, kwargs: None
    text = {name for name in signature.parameters if hints.get(name) in (str, str | None)}
    if not text:
        return lambda args, kwargs: None

    def check(args: tuple, kwargs: dict) -> None:
        try:
            bound = signature.bind_partial(*args, **kwargs)
        except TypeError:
            return  # Gradio's own call shape; the function will say what is wrong
        for name in text & bound.arguments.keys():
            value = bound.arguments[name]
            if value is not None and not isinstance(value, str):
                shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
                raise InputError(f"'{name}' must be text; got {type(value).__name__} {shown}.")

    return check


_PROCESSING = re.compile(r"input component at index (\d+).*?Expected an? `([^`]+)`", re.DOTALL)
NOT_UPLOADED = (
    "A file given to this action was never uploaded to this app (or is gone): upload it first (gradio_client's "
    "handle_file does) and pass the reference the upload returns."
)


def _input_error(block_fn: Any, inputs: list[Any], exc: Exception) -> gr.Error | None:
    """The gr.Error for a value Gradio refused before the callback ran (None: not an input error)."""
    from gradio.exceptions import ComponentProcessingError, InvalidPathError

    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, InvalidPathError | FileNotFoundError):
        return gr.Error(NOT_UPLOADED)
    if isinstance(exc, ComponentProcessingError):
        match = _PROCESSING.search(str(exc))
        if match is None:
            return gr.Error(f"A value of this action could not be read: {str(exc).splitlines()[0]}")
        index = int(match.group(1))
        block = block_fn.inputs[index]
        name = getattr(block, "label", None) or f"input {index + 1}"
        value = inputs[index] if index < len(inputs) else None
        kind = "number" if match.group(2).split(" |")[0] in ("float", "int") else match.group(2)
        return gr.Error(f"{name} must be a {kind}; got {value!r:.80}.")
    if isinstance(exc, ValidationError):  # a file input given a plain value: Gradio checks it with pydantic
        value = exc.errors(include_url=False)[0].get("input")
        index = next((i for i, given in enumerate(inputs) if given is value), None)
        block = block_fn.inputs[index] if index is not None and index < len(block_fn.inputs) else None
        name = (getattr(block, "label", None) if block is not None else None) or "A file input"
        return gr.Error(
            f"{name} must be a file uploaded to this app, passed as the reference the upload returns "
            f"(gradio_client's handle_file does both); got {value!r:.60}."
        )
    return None


def guard_inputs(demo: gr.Blocks) -> None:
    """Values Gradio refuses before a callback runs (a Dropdown value not offered, a slider given "hot", a file
    reference never uploaded) become clear messages and one log line.

    Gradio prints a full traceback for each and, for anything but a gr.Error, sends an empty message unless
    ``show_error`` is on (which would also show the text of real bugs).
    """
    original = demo.preprocess_data

    async def preprocess_data(block_fn: Any, inputs: list[Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(block_fn, inputs, *args, **kwargs)
        except Exception as exc:
            error = _input_error(block_fn, inputs, exc)
            if error is None:
                raise
            log.warning("%s: refused input: %s", getattr(block_fn, "api_name", None) or "event", error.message)
            error.print_exception = False
            raise error from None

    demo.preprocess_data = preprocess_data  # type: ignore[method-assign]


def object_picker(choices: Any = None, **kwargs: Any) -> gr.Dropdown:
    """A Dropdown of workspace objects (datasets, models, runs, checkpoints, voices, sentence sets).

    Gradio checks an event's Dropdown value against the choices the page was built with, so a script could not
    name a dataset or run made after launch ("not in the list of choices"). These pickers accept any value; the
    engines check names themselves, with messages that say what exists.
    """
    return gr.Dropdown(choices, allow_custom_value=True, **kwargs)


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
            # precision=None (no minimum either, below): Gradio's own rounding would fail on a non-number
            # with its generic error before ``generation_options`` could name the field.
            out["seed"] = gr.Number(
                -1 if defaults.seed is None else defaults.seed,
                label="Seed (-1 = random)",
                precision=None,
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
            precision=None,
            elem_id=f"{prefix}-max-tokens",
        )
    return out


# name -> how messages call the field
_FIELD_LABELS = {
    **{name: label for name, (label, _step, _info) in _SLIDERS.items()},
    "seed": "Seed",
    "max_audio_tokens": "Max audio tokens",
}


def _number(values: Mapping[str, Any], name: str, default: float | None, *, whole: bool = False) -> float | None:
    """One numeric field's value (None when empty).

    Raises:
        InputError: not a number, or not a whole number where one is needed; the message names the field.
    """
    raw = values.get(name, default)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    label = _FIELD_LABELS.get(name, name)
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise InputError(f"{label} must be a number; got {raw!r}.") from None
    if not math.isfinite(number):
        raise InputError(f"{label} must be a finite number; got {raw!r}.")
    if whole and not number.is_integer():
        raise InputError(f"{label} must be a whole number; got {raw!r}.")
    return number


def generation_options(values: Mapping[str, Any], language: str, defaults: TTSOptions = TTSOptions()) -> TTSOptions:
    """UI values (by name) -> TTSOptions; seed -1/empty = random, max tokens 0/empty = no cap.

    Names missing from ``values`` keep ``defaults``; ranges are checked by the engine.

    Raises:
        InputError: a value that is not a number (or a fractional seed or token cap), naming the field.
    """

    def number(name: str) -> float:
        value = _number(values, name, getattr(defaults, name))
        if value is None:
            raise InputError(f"{_FIELD_LABELS[name]} is empty; give a number.")
        return value

    seed = _number(values, "seed", defaults.seed, whole=True)
    tokens = _number(values, "max_audio_tokens", defaults.max_audio_tokens, whole=True)
    return TTSOptions(
        language=language,
        temperature=number("temperature"),
        top_k=int(number("top_k")),
        top_p=number("top_p"),
        repetition_penalty=number("repetition_penalty"),
        length_penalty=number("length_penalty"),
        speed=number("speed"),
        seed=None if seed is None or seed < 0 else int(seed),
        split_sentences=bool(values.get("split_sentences", defaults.split_sentences)),
        max_audio_tokens=None if tokens is None or tokens <= 0 else int(tokens),
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

    def handler(self, callback: Callable[..., Any], *, progress: gr.Progress | None = None) -> Callable[..., Any]:
        """The event function for ``inputs=form.inputs``: it calls ``callback(values_by_name)`` (plus
        ``progress=`` when given; generators stay generators, so Gradio streams them).

        Its signature names the form's fields, so the API page and ``gradio_client`` keyword calls show
        ``text=``, ``language=``, ... instead of ``param_0``. (A gr.Progress works from here: Gradio reaches
        it through the event's context, not through an argument.)
        """
        kwargs = {} if progress is None else {"progress": progress}
        if inspect.isgeneratorfunction(callback):

            def event(*values: Any) -> Any:
                yield from callback(self.values(values), **kwargs)
        else:

            def event(*values: Any) -> Any:
                return callback(self.values(values), **kwargs)

        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        event.__signature__ = inspect.Signature([inspect.Parameter(n, kind) for n in self.components])
        event.__name__ = getattr(callback, "__name__", None) or getattr(
            getattr(callback, "func", None), "__name__", "event"
        )
        return event
