"""Script endpoints: every action of the UI by name, for ``gradio_client`` and HTTP callers.

The UI's own events keep their names (``tts_generate``, ``ft_build``, ``train_start``, ``eval_run``, ...).
Those take dropdown values, which Gradio checks against the choices the page was built with, and some
act on the row a person clicked (session state a script does not have). The endpoints here take plain
names and ids instead, looked up when called, so a dataset, run or model made after the app started is
usable at once. They return JSON-friendly data; errors come back as the same messages the UI shows.

Each is declared with ``gr.api`` (typed by its signature: Gradio builds the API page from it).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import ConfigDict, TypeAdapter, ValidationError

from engines import Engines
from engines.core.errors import InputError
from pages.common import GPU_CONCURRENCY_ID, guarded
from rest.catalog import asr_models, shown


def _plain(value: Any) -> Any:
    """Dataclasses, paths and tuples as JSON-friendly values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def tts_model_id(engines: Engines, name: str | None) -> str | None:
    """A TTS model named by a script: a listed id or label ("" = the default, None). Never a path: anything
    not in the catalogue is "not found", and the message names no folder.

    Raises:
        InputError: an unknown model (the message lists the ids there are).
    """
    if not isinstance(name, str) or not name.strip():
        return None
    choices = engines.tts.list_models()
    for label, model_id in choices:
        if name.strip() in (model_id, label):
            return model_id
    raise InputError(
        f"Unknown TTS model {shown(name)}; models here: {', '.join(repr(m) for _, m in choices)} (tts_models lists them)."
    )


def asr_model_id(engines: Engines, name: str | None) -> str | None:
    """A Whisper model named by a script: a public id of ``rest.catalog.asr_models`` (or the engine id the ASR
    picker gives); "" = the default. Never a path outside the catalogue.

    Raises:
        InputError: an unknown model.
    """
    if not isinstance(name, str) or not name.strip():
        return None
    choices = asr_models(engines.asr)
    for public, model_id in choices:
        if name.strip() in (public, model_id):
            return model_id
    raise InputError(f"Unknown Whisper model {shown(name)}; models here: {', '.join(p for p, _ in choices)}.")


def endpoints(engines: Engines) -> dict[str, Any]:
    """name -> function of every script endpoint (``build`` registers them; tests call them directly)."""

    # ------------------------------------------------------------------ TTS

    def tts_models() -> list[dict]:
        """TTS models the picker offers now: [{"label", "id"}] (the base, the tiny one, workspace/models/*)."""
        return [{"label": label, "id": mid} for label, mid in engines.tts.list_models()]

    def tts_voices() -> list[str]:
        """Saved reference voices (workspace/voices/<name>/)."""
        return list(engines.tts.list_voices())

    def tts_speakers(model: str) -> list[str]:
        """Built-in speakers of a model ("" = the default model); empty until the base model is downloaded."""
        return list(engines.tts.speakers(tts_model_id(engines, model)))

    # ------------------------------------------------------------------ datasets

    def datasets_list() -> list[dict]:
        """Every dataset: name, clips, minutes, language, created, speakers, status."""
        return _plain(engines.datasets.list_datasets())

    def dataset_clips(name: str) -> list[dict]:
        """A dataset's clips as the review table shows them: clip, duration, text, speaker, split, flags."""
        return _plain(engines.datasets.load_table(name))

    def dataset_stats(name: str) -> dict:
        """Clip counts, seconds, split sizes, flagged clips, clips per speaker, length histogram, warning."""
        return _plain(engines.datasets.stats(name))

    def dataset_save(name: str, rows: list[dict]) -> dict:
        """Replace the clip table (edited texts/speakers/splits; clips left out are deleted)."""
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InputError(
                f"rows must be a list of objects like {{'clip': ..., 'text': ...}} (dataset_clips gives them); "
                f"got {type(rows).__name__}."
            )
        return _plain(engines.datasets.save_table(name, rows))

    def dataset_recut(name: str, clip: str, max_seconds: float = 0.0) -> list[str]:
        """Cut one clip again at its pauses (max_seconds 0 = the dataset's limit); returns the new clip names."""
        return list(engines.datasets.recut(name, clip, max_seconds or None))

    def dataset_validate(name: str, model: str = "", cer_threshold: float = 0.0) -> dict:
        """Re-transcribe every clip and list the ones whose text the ASR disagrees with (CER over the threshold)."""
        model_id = asr_model_id(engines, model)
        return _plain(engines.datasets.validate(name, model_id=model_id, cer_threshold=cer_threshold or None))

    def dataset_choice(name: str, clip: str, choice: str, text: str = "") -> dict:
        """Resolve a validation mismatch: choice "keep", "asr" (take the ASR's text) or "edit" (with text)."""
        return _plain(engines.datasets.apply_choice(name, clip, choice, text or None))

    def dataset_clip_audio(name: str, clip: str, audio: str = "original") -> str:
        """Train a cleaned clip on its original span ("original") or on the cleaned audio again ("cleaned")."""
        return engines.datasets.use_audio(name, clip, audio)

    def dataset_delete(name: str, confirm: bool = False) -> str:
        """Delete a dataset (confirm must be true; refused while a training run uses it)."""
        engines.datasets.delete(name, confirm=confirm)
        return f"Deleted dataset {name}."

    # ------------------------------------------------------------------ training

    def train_runs() -> list[dict]:
        """Training runs, newest first: run_id, status, dataset, settings, best eval loss, duration, steps."""
        return _plain(engines.training.list_runs())

    def train_status(run_id: str) -> dict:
        """One run's live state: status, epoch, step, losses, ETA, checkpoints, the log's last lines, error."""
        return _plain(engines.training.status(run_id))

    def train_checkpoints(run_id: str) -> list[dict]:
        """A run's checkpoints: file, step, epoch, kind, losses."""
        return _plain(engines.training.checkpoint_info(run_id))

    def train_start_run(
        dataset: str, base_model: str = "", preset: str = "quick", epochs: int = 0, batch_size: int = 0
    ) -> str:
        """Start a fine-tuning run on a dataset by name (made before or after launch); returns the run id.

        base_model "" = the default; preset "quick", "standard", ...; epochs / batch_size 0 = the preset's."""
        from engines.training.options import PRESETS, TrainOptions

        if preset not in PRESETS:
            raise InputError(f"Unknown preset {preset!r}; presets: {', '.join(PRESETS)}.")
        changes = {k: int(v) for k, v in (("epochs", epochs), ("batch_size", batch_size)) if v}
        base = tts_model_id(engines, base_model) or TrainOptions.base_model
        options = TrainOptions(dataset=dataset, base_model=base, **{**PRESETS[preset], **changes})
        return engines.training.start(options)

    def train_stop_run(run_id: str) -> dict:
        """Stop a running run (it saves a checkpoint first; resumable)."""
        return _plain(engines.training.stop(run_id))

    def train_resume_run(run_id: str) -> dict:
        """Resume a stopped, crashed or failed run from its last checkpoint."""
        return _plain(engines.training.resume(run_id))

    def train_export_run(run_id: str, checkpoint: str = "", name: str = "") -> str:
        """Export a checkpoint ("" = the best one) as workspace/models/<name>; returns the model folder."""
        return str(engines.training.export(run_id, checkpoint or None, name or None))

    def train_delete(run_id: str, confirm: bool = False) -> str:
        """Delete a training run and its checkpoints (confirm must be true; refused while it runs)."""
        if not confirm:
            raise InputError("Pass confirm=true to delete a training run and its checkpoints.")
        engines.training.delete_run(run_id)
        return f"Deleted training run {run_id}."

    # ------------------------------------------------------------------ evaluation

    def eval_runs() -> list[dict]:
        """Eval runs, newest first: run_id, name, created, state, done/total, sentence set, systems, report."""
        return _plain(engines.eval.list_runs())

    def eval_resume_run(run_id: str) -> dict:
        """Resume an interrupted eval run by id in the background; returns {"run_id", "state"} (poll eval_runs)."""
        state = engines.eval.start_resume(run_id).snapshot()
        return {"run_id": state.run_id or run_id, "state": state.state, "error": state.error}

    def eval_summary(run_id: str) -> dict:
        """A run's summary.json (per system: WER/CER/SIM/RTF with CIs, breakdowns, paired tests, ranking)."""
        _, _, summary = engines.eval.load_run(run_id)
        if summary is None:
            raise InputError(f"Run {run_id!r} has no summary yet (it has not finished a batch).")
        return summary

    def eval_results(run_id: str) -> list[dict]:
        """A run's results.csv rows (one per utterance)."""
        _, rows, _ = engines.eval.load_run(run_id)
        return _plain(rows)

    def eval_compare(run_a: str, run_b: str) -> list[dict]:
        """Two runs side by side, one row per system: n, corpus WER and CER, mean SIM and RTF of each."""
        return _plain(engines.eval.compare_runs(run_a, run_b))

    def eval_export_best(run_id: str, name: str = "") -> str:
        """Export the best checkpoint of a checkpoint-ranking run as a model; returns the model folder."""
        return str(engines.eval.export_best(run_id, name or None))

    def eval_listening_create(
        run_id: str, system_a: str, system_b: str, mode: str = "ab+mos", max_items: int = 20, seed: int = 0
    ) -> str:
        """A blind listening test on two systems of a run; returns its test id."""
        return engines.eval.create_listening_test(
            run_id, system_a, system_b, mode=mode, max_items=int(max_items), seed=int(seed)
        )

    def eval_listening_plan(run_id: str, test_id: str) -> dict:
        """A listening test's trials (clip paths relative to the run folder, sides as played)."""
        return engines.eval.listening_plan(run_id, test_id)

    def eval_listening_answer(
        run_id: str,
        test_id: str,
        index: int,
        preference: str = "",
        mos1: float = 0.0,
        mos2: float = 0.0,
        listener: str = "",
    ) -> dict:
        """Record one trial: preference "1", "2" or "same"; mos1/mos2 from 1 to 5 (0 = not given)."""
        return engines.eval.record_listening(
            run_id,
            test_id,
            int(index),
            preference=preference or None,
            mos1=mos1 or None,
            mos2=mos2 or None,
            listener=listener,
        )

    def eval_listening_summary(run_id: str, test_id: str) -> dict:
        """Preference shares and MOS per system, with bootstrap CIs."""
        return engines.eval.listening_summary(run_id, test_id)

    return {name: fn for name, fn in locals().items() if callable(fn) and not name.startswith("_")}


# Endpoints that load or run a model queue behind the one GPU slot, like the UI's model events.
_GPU = {"dataset_recut", "dataset_validate", "train_export_run", "eval_export_best"}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def typed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its arguments checked against its annotations first (pydantic, lax: "3" is an int, NaN is
    refused), so a script sending a list where a name goes gets "'name': Input should be a valid string",
    not an AttributeError from deep inside. The signature Gradio reads is unchanged."""
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    config = ConfigDict(allow_inf_nan=False)
    adapters = {name: TypeAdapter(hints[name], config=config) for name in signature.parameters if name in hints}

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InputError(f"{fn.__name__}: {exc}.") from None
        for name, value in bound.arguments.items():
            if name not in adapters:
                continue
            try:
                bound.arguments[name] = adapters[name].validate_python(value)
            except ValidationError as exc:
                message = exc.errors(include_url=False)[0]["msg"]
                raise InputError(f"'{name}': {message}; got {_shown(value)}.") from None
        return fn(*bound.args, **bound.kwargs)

    return wrapper


def build(engines: Engines) -> None:
    """Register the script endpoints on the Blocks being built (call inside ``with gr.Blocks()``)."""
    for name, fn in endpoints(engines).items():
        kwargs: dict[str, Any] = {"concurrency_id": GPU_CONCURRENCY_ID, "concurrency_limit": 1} if name in _GPU else {}
        gr.api(guarded(typed(fn)), api_name=name, **kwargs)


__all__ = ["build", "endpoints"]
