"""What the Eval sub-tabs share: the pickers' choices, the Run form's values -> ``EvalConfig``, report
links and the progress line, watching a background evaluation job, and the callbacks two sub-tabs wire
(run lists, a run's systems).

Runs, resumes and checkpoint rankings are ``EvalJob``s of the engine: a button starts one and then only
watches it (``watch_job``), so a closed or reloaded tab ends the watching, never the run.

UI only, like every page module; the sub-tabs are ``pages.eval_run``, ``eval_results``, ``eval_compare``,
``eval_checkpoints`` and ``eval_listening``, laid out by ``pages.eval``.
"""

from __future__ import annotations

import html
import logging
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from engines import Engines
from engines.core.errors import InputError, LabError
from engines.core.names import is_folder_name
from engines.core.options import TTSOptions
from engines.eval import GROUND_TRUTH, EvalConfig, RunProgress, report, sentence_set_choices
from engines.eval.job import EvalJob, JobState
from pages.api import asr_model_id, tts_model_id
from pages.common import file_paths, generation_options, guarded
from rest.catalog import shown

log = logging.getLogger(__name__)

UPLOAD = "upload"  # the set choice meaning "the uploaded CSV/TXT"
FILE_ROUTE = "gradio_api/file="  # Gradio's file route (the launcher allows the workspace folder)


# ---------------------------------------------------------------- plain functions (no gradio)


def set_choices(engines: Engines) -> list[tuple[str, str]]:
    """Sentence sets for the picker: built-in sets, datasets' eval splits, then "uploaded file"."""
    return [*sentence_set_choices(engines.settings), ("Uploaded file (CSV with a 'text' column, or TXT)", UPLOAD)]


def voice_choices(engines: Engines, models: list[str] | None = None) -> list[tuple[str, str]]:
    """Saved voices and the built-in speakers of the chosen models, as (label, spec)."""
    out = [(f"Saved voice: {name}", f"voice:{name}") for name in engines.tts.list_voices()]
    seen: set[str] = set()
    for model_id in models or [engines.tts.default_model()]:
        try:
            speakers = engines.tts.speakers(model_id)
        except LabError:
            continue
        for name in speakers:
            if name not in seen:
                seen.add(name)
                out.append((f"Built-in speaker: {name}", f"speaker:{name}"))
    return out


def run_choices(engines: Engines) -> list[tuple[str, str]]:
    """(label, run id) of past runs, newest first."""
    out = []
    for r in engines.eval.list_runs():
        label = f"{r.run_id}" + (f" — {r.name}" if r.name else "") + f" — {r.state} {r.done}/{r.total}"
        out.append((label, r.run_id))
    return out


def run_systems(engines: Engines, run_id: str | None) -> list[str]:
    """The system names of a run, in the order its rows first name them."""
    if not run_id:
        return []
    _, rows, _ = engines.eval.load_run(run_id)
    return list(dict.fromkeys(r["system"] for r in rows))


@dataclass(frozen=True)
class InitialChoices:
    """The pickers' first choices, read once when the tab is built (several sub-tabs show them)."""

    sets: list[tuple[str, str]]  # sentence sets (set_choices)
    voices: list[tuple[str, str]]  # saved voices and the default model's built-in speakers
    first_speaker: str | None  # the voice preselected in the voice pickers ("speaker:<name>")
    runs: list[tuple[str, str]]  # past eval runs, newest first (run_choices)


def initial_choices(engines: Engines) -> InitialChoices:
    """Read the choices the sub-tabs start with; a broken default model leaves the voice list empty."""
    try:
        voices = voice_choices(engines, [engines.tts.default_model()])
    except Exception:  # noqa: BLE001 - a broken model must not stop the app from building
        log.warning("Could not list voices for the Eval tab", exc_info=True)
        voices = []
    return InitialChoices(
        sets=set_choices(engines),
        voices=voices,
        first_speaker=next((spec for _, spec in voices if spec.startswith("speaker:")), None),
        runs=run_choices(engines),
    )


def _opt_int(value: Any) -> int | None:
    """0, empty or negative -> None (no cap / greedy)."""
    if value is None or value == "":
        return None
    number = int(float(value))
    return number if number > 0 else None


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value] if value else []


def checked_sources(engines: Engines, values: Mapping[str, Any]) -> dict[str, Any]:
    """The Run and Rank forms' values with every source checked against what the pickers offer.

    The pickers take typed values (a script can name a dataset or model made after launch), and the engine's
    sentence sets, voices and models also accept server paths (for Python callers). From the page and its API
    only the listed forms get through: a sentence set ``builtin:<name>`` / ``dataset:<name>`` (or an upload),
    voices ``voice:<name>`` / ``speaker:<name>`` (or uploaded clips), and model ids from the catalogues.
    Anything else, a path above all, is refused before a file is opened.

    Raises:
        InputError: an unknown sentence set, voice or model (the message names no server folder).
    """
    out = dict(values)
    set_spec = values.get("set_spec")
    if set_spec and set_spec != UPLOAD:
        kind, _, name = str(set_spec).partition(":")
        if kind not in ("builtin", "dataset") or not is_folder_name(name.strip()):
            raise InputError(
                f"Unknown sentence set {shown(str(set_spec))}: pick a listed set (builtin:<name> or dataset:<name>), "
                "or 'upload' with a CSV/TXT file."
            )
    for voice in _listed(values.get("voices")):
        if not isinstance(voice, str) or not voice.strip().startswith(("voice:", "speaker:")):
            raise InputError(
                f"Unknown reference voice {shown(str(voice))}: pick a saved voice (voice:<name>) or a built-in "
                "speaker (speaker:<name>), or upload a clip."
            )
    out["models"] = [tts_model_id(engines, str(m)) for m in _listed(values.get("models"))]
    if values.get("asr_model") and values["asr_model"] != engines.asr.default_model():  # the owner's setting
        out["asr_model"] = asr_model_id(engines, str(values["asr_model"]))
    return out


def build_config(values: Mapping[str, Any], defaults: TTSOptions = TTSOptions()) -> EvalConfig:
    """UI values by name (the Run form's names; missing generation values keep ``defaults``) -> EvalConfig.

    Raises:
        InputError: no sentence set, an upload choice without a file, no voice.
    """
    set_spec = values.get("set_spec")
    if not set_spec:
        raise InputError("Pick a sentence set.")
    if set_spec == UPLOAD:
        uploaded = [str(p) for p in file_paths(values.get("upload"))]
        if not uploaded:
            raise InputError("Upload a CSV (with a 'text' column) or a TXT file (one sentence per line) first.")
        set_spec = uploaded[0]
    models, voices = values.get("models"), values.get("voices")
    model_ids = tuple(m for m in (models if isinstance(models, list | tuple) else [models] if models else []) if m)
    voice_specs = [v for v in (voices if isinstance(voices, list | tuple) else [voices] if voices else []) if v]
    voice_specs += [str(p) for p in file_paths(values.get("voice_files"))]
    folders = tuple(f"audio:{f}" for f in audio_folder_lines(values.get("audio_folders")))
    if not voice_specs and not (folders and not model_ids):
        raise InputError("Pick at least one reference voice: a saved voice, a built-in speaker, or upload a clip.")
    seed = values.get("seed")
    mos = values.get("mos")
    return EvalConfig(
        sentences=set_spec,
        models=model_ids + folders,
        voices=tuple(voice_specs),
        language=values.get("language") or None,
        max_sentences=_opt_int(values.get("max_sentences")),
        repeats=int(values.get("repeats") or 1),
        seed=int(seed if seed is not None else defaults.seed if defaults.seed is not None else 1234),
        generation=generation_options(values, defaults.language, defaults),
        asr_model=values.get("asr_model") or None,
        beam_size=_opt_int(values.get("beam_size")),
        asr_batch_size=int(values.get("batch_size") or 16),
        ground_truth=bool(values.get("ground_truth", True)),
        retakes=int(float(values.get("retakes") or 0)),  # the planner refuses values outside 0-10
        asr_pack=bool(values.get("asr_pack", False)),
        name=(values.get("name") or "").strip(),
        sim_encoder=values.get("sim_encoder") or None,
        executor="ray" if values.get("executor") == "ray" else "local",
        pipeline=values.get("executor") == "pipeline",
        mos=None if mos is None else tuple(mos if isinstance(mos, list | tuple) else [mos]),
    )


def audio_folder_lines(text: Any) -> list[str]:
    """The Run form's audio folders: one per line (blank lines and an "audio:" prefix ignored)."""
    lines = [line.strip().removeprefix("audio:").strip() for line in str(text or "").splitlines()]
    return [line for line in lines if line]


def file_url(path: Path) -> str:
    """A link Gradio's file route serves (the workspace is in the launcher's allowed_paths)."""
    return FILE_ROUTE + urllib.parse.quote(str(Path(path).resolve()))


def report_link(folder: Path | None) -> str:
    """HTML with a link opening report.html in a new tab (empty when there is no report yet)."""
    if folder is None or not (Path(folder) / "report.html").is_file():
        return "<span class='muted'>No report yet.</span>"
    return (
        f'<a id="ev-report-anchor" href="{html.escape(file_url(Path(folder) / "report.html"))}" '
        f'target="_blank" rel="noopener">Open report.html ({html.escape(Path(folder).name)})</a>'
    )


def run_files(folder: Path | None) -> list[str]:
    """report.html, results.csv and summary.json of a run (those present)."""
    if folder is None:
        return []
    return [
        str(Path(folder) / n)
        for n in ("report.html", "results.csv", "timings.csv", "summary.json")
        if (Path(folder) / n).is_file()
    ]


def progress_text(p: RunProgress) -> str:
    """The status line under the Run button."""
    word = {
        "running": "Running",
        "done": "Finished",
        "stopped": "Stopped (resume it from Results)",
        "failed": "Failed",
    }.get(p.state, p.state)
    text = f"**{word}** — {p.done}/{p.total} utterances · run `{p.run_id}`"
    if p.summary and p.summary.get("tiny"):
        text += "\n\n_" + p.summary.get("note", "") + "_"
    return text


def summary_frame(summary: dict[str, Any] | None) -> pd.DataFrame:
    """The summary table of a run (one row per system, 95% CIs)."""
    return pd.DataFrame(report.summary_rows(summary or {}))


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A table of the report's rows (breakdowns, comparisons, rankings)."""
    return pd.DataFrame(rows)


def job_text(state: JobState) -> str:
    """The status line of a background job: the run's line, and while it runs what it is doing now."""
    run = f" · run `{state.run_id}`" if state.run_id else ""
    if state.error:
        return f"**Failed**{run}: {state.error}"
    if state.progress is None:
        return f"**Preparing** — {state.desc}{run}"
    text = progress_text(state.progress)
    if state.stopping:
        text = text.replace("**Running**", "**Stopping** after the current utterance", 1)
    if not state.ended and state.desc:
        text += f"\n\nNow: {state.desc}"
    return text


def job_updates(state: JobState) -> tuple[str, Any, str, list[str]]:
    """(status line, summary table, report link, files) of a job; the last three stay as they are
    (``gr.update()``) until the run has a summary."""
    p = state.progress
    if p is None or p.summary is None:
        return job_text(state), gr.update(), gr.update(), gr.update()
    return job_text(state), summary_frame(p.summary), report_link(p.folder), run_files(p.folder)


def watch_job(job: EvalJob, progress=None, *, raise_error: bool = True) -> Iterator[JobState]:
    """A job's states until it ends (``EvalJob.watch``), driving ``progress`` (a gr.Progress) on the way.

    Closing this generator (Gradio does when the browser goes away) ends the watching only.

    Raises:
        What ended the job, when it failed and ``raise_error`` (the watcher that started it shows a
        gr.Error; a page opened later only shows the line).
    """
    for state in job.watch():
        if progress is not None and not state.ended:
            progress(state.fraction, desc=state.desc)
        yield state
    if raise_error and job.error is not None:
        raise job.error


# ---------------------------------------------------------------- callbacks (thin, guarded)


@guarded
def refresh_runs_callback(engines: Engines, current: str | None = None):
    """A run picker with the fresh run list, keeping ``current`` if it is still there (else the newest)."""
    choices = run_choices(engines)
    ids = [rid for _, rid in choices]
    return gr.Dropdown(choices=choices, value=current if current in ids else (ids[0] if ids else None))


@guarded
def refresh_run_lists_callback(engines: Engines, count: int) -> list[gr.Dropdown]:
    """``count`` run pickers with the fresh run list (their values are kept)."""
    choices = run_choices(engines)
    return [gr.Dropdown(choices=choices) for _ in range(count)]


@guarded
def systems_callback(engines: Engines, run_id: str | None):
    """Two system pickers for a run: the first real system, then the next other one."""
    names = run_systems(engines, run_id)
    first = next((n for n in names if n != GROUND_TRUTH), names[0] if names else None)
    second = next((n for n in names if n != first), None)
    return gr.Dropdown(choices=names, value=first), gr.Dropdown(choices=names, value=second)
