"""Eval tab: closed-loop TTS -> ASR evaluation (Run / Results / Compare / Checkpoints / Listening test).

UI only: plain functions below turn UI values into ``engines.evaluation`` calls (tests call them
directly); the callbacks are thin guarded wrappers; ``build`` lays the tab out.
"""

from __future__ import annotations

import html
import logging
import math
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from config import XTTS_LANGUAGES
from engines import report
from engines.errors import InputError, LabError
from engines.evaluation import GROUND_TRUTH, EvalConfig, RunProgress, sentence_set_choices
from engines.options import TTSOptions
from pages.common import (
    GENERATION_INPUTS,
    GPU_CONCURRENCY_ID,
    Form,
    file_paths,
    generation_controls,
    generation_options,
    guarded,
    notify,
)

log = logging.getLogger(__name__)

UPLOAD = "upload"  # the set choice meaning "the uploaded CSV/TXT"
FILE_ROUTE = "gradio_api/file="  # Gradio's file route (the launcher allows the workspace folder)


# ---------------------------------------------------------------- plain functions (no gradio)


def set_choices(engines) -> list[tuple[str, str]]:
    """Sentence sets for the picker: built-in sets, datasets' eval splits, then "uploaded file"."""
    return [*sentence_set_choices(engines.settings), ("Uploaded file (CSV with a 'text' column, or TXT)", UPLOAD)]


def voice_choices(engines, models: list[str] | None = None) -> list[tuple[str, str]]:
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


def _opt_int(value: Any) -> int | None:
    """0, empty or negative -> None (no cap / greedy)."""
    if value is None or value == "":
        return None
    number = int(float(value))
    return number if number > 0 else None


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
    if not voice_specs:
        raise InputError("Pick at least one reference voice: a saved voice, a built-in speaker, or upload a clip.")
    seed = values.get("seed")
    return EvalConfig(
        sentences=set_spec,
        models=model_ids,
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
        name=(values.get("name") or "").strip(),
    )


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
        str(Path(folder) / n) for n in ("report.html", "results.csv", "summary.json") if (Path(folder) / n).is_file()
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
    return pd.DataFrame(report.summary_rows(summary or {}))


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def run_choices(engines) -> list[tuple[str, str]]:
    """(label, run id) of past runs, newest first."""
    out = []
    for r in engines.evaluation.list_runs():
        label = f"{r.run_id}" + (f" — {r.name}" if r.name else "") + f" — {r.state} {r.done}/{r.total}"
        out.append((label, r.run_id))
    return out


def utterance_choices(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    def fmt(x: float | None) -> str:
        return "n/a" if x is None or not math.isfinite(x) else f"{x * 100:.0f}%"

    return [
        (
            f"{r['system']} · {r['sentence_id']}"
            + (f" r{r['repeat']}" if r["repeat"] else "")
            + f" · WER {fmt(r['wer'])}"
            + (f" · {r['flags']}" if r["flags"] else ""),
            r["key"],
        )
        for r in rows
    ]


def utterance_view(engines, run_id: str, key: str | None) -> tuple[str, str | None]:
    """(alignment HTML with texts, audio path) of one utterance of a run."""
    if not run_id or not key:
        return "", None
    _, rows, _ = engines.evaluation.load_run(run_id)
    row = next((r for r in rows if r["key"] == key), None)
    if row is None:
        raise InputError(f"Utterance {key!r} is not in run {run_id}.")
    folder = engines.evaluation.run_dir(run_id)
    texts = (
        f"<p><b>{html.escape(row['system'])}</b> · {html.escape(row['sentence_id'])} · WER "
        f"{row['wer'] * 100:.1f}% · CER {row['cer'] * 100:.1f}% · S/D/I {row['substitutions']}/{row['deletions']}/"
        f"{row['insertions']}</p><p>REF: {html.escape(row['ref_text'])}<br>HYP: "
        f"{html.escape(row['hyp_text']) or '(empty)'}<br><small>normalized ({html.escape(row['normalizer'])}): "
        f"{html.escape(row['ref_norm'])} → {html.escape(row['hyp_norm'])}</small></p>"
    )
    style = (
        "<style>table.align td{padding:1px 4px;font-family:monospace}table.align td.sub{background:#fff1c1}"
        "table.align td.del{background:#ffd7d5}table.align td.ins{background:#d3f4ff}</style>"
    )
    audio = folder / row["audio_file"] if row["audio_file"] else None
    body = f"<div style='overflow-x:auto'>{style}{texts}{report.alignment_view(row)}</div>"
    return body, str(audio) if audio and audio.is_file() else None


def run_view(
    engines, run_id: str | None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, str, list[str], list[tuple[str, str]], str]:
    """Everything the Results sub-tab shows for a run."""
    empty = pd.DataFrame()
    if not run_id:
        return empty, empty, empty, empty, report_link(None), [], [], ""
    cfg, rows, summary = engines.evaluation.load_run(run_id)
    folder = engines.evaluation.run_dir(run_id)
    state = next((r.state for r in engines.evaluation.list_runs() if r.run_id == run_id), "?")
    info = f"Run `{run_id}` · {state} · {len(rows)} utterance(s) · sentences `{cfg['config']['sentences']}`" + (
        f"\n\n_{summary['note']}_" if summary and summary.get("note") else ""
    )
    return (
        summary_frame(summary),
        _frame(report.breakdown_rows(summary or {}, "by_language")),
        _frame(report.breakdown_rows(summary or {}, "by_length")),
        _frame(report.paired_rows(summary or {})),
        report_link(folder),
        run_files(folder),
        utterance_choices(rows),
        info,
    )


def run_systems(engines, run_id: str | None) -> list[str]:
    if not run_id:
        return []
    _, rows, _ = engines.evaluation.load_run(run_id)
    return list(dict.fromkeys(r["system"] for r in rows))


def paired_frame(engines, run_id: str | None, system_a: str | None, system_b: str | None) -> pd.DataFrame:
    """A paired comparison of two systems of one run."""
    from engines.evaluation import paired_comparison

    if not run_id or not system_a or not system_b:
        raise InputError("Pick a run and two of its systems.")
    if system_a == system_b:
        raise InputError("Pick two different systems.")
    cfg, rows, _ = engines.evaluation.load_run(run_id)
    seed = int(cfg["config"].get("seed", 0))
    result = paired_comparison(rows, system_a, system_b, int(cfg["config"].get("bootstrap", 1000)), seed)
    return _frame(report.paired_rows({"paired": [result]}))


def training_run_choices(engines) -> list[tuple[str, str]]:
    training = getattr(engines, "training", None)
    if training is None:
        return []
    out = []
    for r in training.list_runs():
        run_id = getattr(r, "run_id", r)
        status = getattr(r, "status", "")
        out.append((f"{run_id} ({status})" if status else str(run_id), str(run_id)))
    return out


def ranking_outputs(summary: dict[str, Any] | None) -> tuple[pd.DataFrame, str]:
    """Ranking table and plot (HTML img) of a checkpoint-ranking run."""
    if not summary:
        return pd.DataFrame(), ""
    img = report.plot_ranking(summary)
    return _frame(report.ranking_rows(summary)), (
        f"<img alt='ranking' style='max-width:100%' src='{img}'>" if img else ""
    )


def listening_trial(engines, state: dict[str, Any] | None) -> tuple[str, str | None, str | None, str]:
    """(sentence markdown, clip 1 path, clip 2 path, position text) of the current trial."""
    if not state:
        return "Start a test first.", None, None, ""
    plan = engines.evaluation.listening_plan(state["run_id"], state["test_id"])
    trials = plan["trials"]
    index = int(state["index"])
    if index >= len(trials):
        return (
            "**Done — thank you.** The results are below and saved under the run.",
            None,
            None,
            f"{len(trials)}/{len(trials)}",
        )
    trial = trials[index]
    folder = engines.evaluation.run_dir(state["run_id"])
    return (
        f"**Sentence:** {trial['text']}",
        str(folder / trial["clip1"]),
        str(folder / trial["clip2"]),
        f"Trial {index + 1} of {len(trials)}",
    )


def listening_summary_markdown(engines, state: dict[str, Any] | None) -> str:
    """Preference shares and MOS with 95% CIs (systems unblinded only here, after answering)."""
    if not state:
        return ""
    s = engines.evaluation.listening_summary(state["run_id"], state["test_id"])
    lines = [f"**{s['answered']} of {s['trials']} trials answered** (test `{s['test_id']}`, mode {s['mode']})"]
    if "preference" in s:
        lines.append("\n| preferred | share [95% CI] |\n|---|---|")
        for name, est in s["preference"].items():
            lines.append(f"| {name} | {report._pct(est)} |")
    if "mos" in s:
        lines.append("\n| system | MOS [95% CI] | ratings |\n|---|---|---|")
        for name, est in s["mos"].items():
            lines.append(f"| {name} | {report._val(est, 2)} | {est['n']} |")
    return "\n".join(lines)


def _summary_ready(p: RunProgress) -> tuple[str, Any, str, list[str]]:
    if p.summary is None:
        return progress_text(p), gr.update(), gr.update(), gr.update()
    return progress_text(p), summary_frame(p.summary), report_link(p.folder), run_files(p.folder)


# ---------------------------------------------------------------- callbacks (thin, guarded)


@guarded
def run_callback(engines, values: Mapping[str, Any], progress=None) -> Iterator[tuple]:
    config = build_config(values, engines.settings.generation)
    for p in engines.evaluation.iter_run(config, progress=progress):
        yield _summary_ready(p)


@guarded
def resume_callback(engines, run_id: str | None, progress=None) -> Iterator[tuple]:
    if not run_id:
        raise InputError("Pick a run to resume.")
    for p in engines.evaluation.iter_resume(run_id, progress=progress):
        yield _summary_ready(p)


@guarded
def stop_callback(engines) -> str:
    if engines.evaluation.stop():
        return "**Stopping** after the current utterance; finished ones are kept (resume from Results)."
    return "Nothing is running."


@guarded
def refresh_runs_callback(engines, current: str | None = None):
    choices = run_choices(engines)
    ids = [rid for _, rid in choices]
    return gr.Dropdown(choices=choices, value=current if current in ids else (ids[0] if ids else None))


@guarded
def open_results_callback(engines, current: str | None):
    """Opening the Results sub-tab: fresh run list, and the selected (else newest) run shown."""
    choices = run_choices(engines)
    ids = [rid for _, rid in choices]
    run_id = current if current in ids else (ids[0] if ids else None)
    s, by_lang, by_len, paired, link, files, utts, info = run_view(engines, run_id)
    return (
        gr.Dropdown(choices=choices, value=run_id),
        s,
        by_lang,
        by_len,
        paired,
        link,
        files,
        gr.Dropdown(choices=utts, value=None),
        info,
    )


@guarded
def run_view_callback(engines, run_id: str | None):
    s, by_lang, by_len, paired, link, files, utts, info = run_view(engines, run_id)
    return s, by_lang, by_len, paired, link, files, gr.Dropdown(choices=utts, value=None), info


@guarded
def utterance_callback(engines, run_id: str | None, key: str | None):
    return utterance_view(engines, run_id, key)


@guarded
def compare_callback(engines, run_a: str | None, run_b: str | None) -> pd.DataFrame:
    if not run_a or not run_b:
        raise InputError("Pick two runs to compare.")
    return _frame(engines.evaluation.compare_runs(run_a, run_b))


@guarded
def systems_callback(engines, run_id: str | None):
    names = run_systems(engines, run_id)
    first = next((n for n in names if n != GROUND_TRUTH), names[0] if names else None)
    second = next((n for n in names if n != first), None)
    return gr.Dropdown(choices=names, value=first), gr.Dropdown(choices=names, value=second)


@guarded
def paired_callback(engines, run_id, system_a, system_b) -> pd.DataFrame:
    return paired_frame(engines, run_id, system_a, system_b)


@guarded
def rank_callback(engines, values: Mapping[str, Any], progress=None) -> Iterator[tuple]:
    """Rank a training run's checkpoints: ``values`` by name (``RANK_INPUTS``); generation = settings."""
    training_run = values.get("training_run")
    if not training_run:
        raise InputError("Pick a training run from the Finetune tab.")
    base = build_config(
        {**values, "models": [], "repeats": 1, "batch_size": 16, "name": f"checkpoints-{training_run}"},
        engines.settings.generation,
    )
    include_base = values.get("include_base")
    include = engines.tts.default_model() if include_base else None
    for p in engines.evaluation.iter_rank_checkpoints(
        training_run, base, include_base_model=include, progress=progress
    ):
        table, plot = ranking_outputs(p.summary)
        if p.summary is None:
            yield progress_text(p), gr.update(), gr.update(), gr.update(), gr.update()
        else:
            yield progress_text(p), table, plot, report_link(p.folder), p.run_id


@guarded
def export_best_callback(engines, run_id: str | None, name: str | None) -> str:
    if not run_id:
        raise InputError("Rank the checkpoints of a training run first.")
    folder = engines.evaluation.export_best(run_id, (name or "").strip() or None)
    notify(f"Exported the best checkpoint as {folder.name}; it is now in the TTS and Eval model lists.")
    return f"Exported to `{folder}`."


@guarded
def start_listening_callback(engines, run_id, system_a, system_b, mode, items):
    if not run_id:
        raise InputError("Pick a run.")
    test_id = engines.evaluation.create_listening_test(
        run_id, system_a, system_b, mode=mode, max_items=int(items or 20), seed=0
    )
    state = {"run_id": run_id, "test_id": test_id, "index": 0}
    text, c1, c2, pos = listening_trial(engines, state)
    return state, text, c1, c2, pos, listening_summary_markdown(engines, state)


@guarded
def answer_callback(engines, state, preference, mos1, mos2):
    if not state:
        raise InputError("Start a test first.")
    plan = engines.evaluation.listening_plan(state["run_id"], state["test_id"])
    if int(state["index"]) >= len(plan["trials"]):
        raise InputError("The test is finished.")
    pref = {"Clip 1": "1", "Clip 2": "2", "About the same": "same"}.get(preference or "", None)
    mode = plan["mode"]
    engines.evaluation.record_listening(
        state["run_id"],
        state["test_id"],
        int(state["index"]),
        preference=pref if "ab" in mode else None,
        mos1=mos1 if "mos" in mode else None,
        mos2=mos2 if "mos" in mode else None,
    )
    state = {**state, "index": int(state["index"]) + 1}
    text, c1, c2, pos = listening_trial(engines, state)
    return state, text, c1, c2, pos, listening_summary_markdown(engines, state), None


# ---------------------------------------------------------------- layout


def build(engines) -> None:
    """Lay out the Eval tab and wire it to ``engines.evaluation``."""
    settings = engines.settings
    tiny = settings.tiny_models
    default_model = engines.tts.default_model()
    model_choices = engines.tts.list_models()
    if default_model not in [mid for _, mid in model_choices]:
        model_choices.append((default_model, default_model))
    try:
        voices0 = voice_choices(engines, [default_model])
    except Exception:  # noqa: BLE001 - a broken model must not stop the app from building
        log.warning("Could not list voices for the Eval tab", exc_info=True)
        voices0 = []
    first_speaker = next((spec for _, spec in voices0 if spec.startswith("speaker:")), None)
    sets = set_choices(engines)
    languages = [(f"{name} ({code})", code) for code, name in XTTS_LANGUAGES.items()]
    asr_choices = engines.asr.list_models()
    runs0 = run_choices(engines)

    gr.Markdown(
        "Speak a sentence set with one or more systems (model × reference voice), transcribe it with "
        "Whisper (language forced) and score WER/CER, speaker similarity and real-time factor. "
        "Every run writes `workspace/reports/<run-id>/` (results.csv, summary.json, report.html, audio)."
        + ("\n\n**Tiny models**: the numbers measure plumbing, not quality." if tiny else "")
    )
    with gr.Tabs():
        with gr.Tab("Run", id="ev-tab-run"):
            with gr.Row():
                with gr.Column(scale=3):
                    with gr.Row():
                        set_dd = gr.Dropdown(
                            sets, value=sets[0][1] if sets else None, label="Sentence set", elem_id="ev-set", scale=3
                        )
                        upload = gr.File(
                            label="Upload CSV/TXT",
                            file_types=[".csv", ".txt", ".tsv"],
                            type="filepath",
                            elem_id="ev-upload",
                            scale=2,
                        )
                    with gr.Row():
                        language = gr.Dropdown(
                            languages,
                            value=settings.generation.language,
                            elem_id="ev-language",
                            label="Language (for sets that name none, e.g. TXT)",
                        )
                        max_sentences = gr.Number(
                            0, label="Max sentences (0 = all)", precision=0, minimum=0, elem_id="ev-max-sentences"
                        )
                    models = gr.Dropdown(
                        model_choices, value=[default_model], multiselect=True, label="TTS models", elem_id="ev-models"
                    )
                    with gr.Row():
                        voices = gr.Dropdown(
                            voices0,
                            value=[first_speaker] if first_speaker else [],
                            multiselect=True,
                            label="Reference voices",
                            elem_id="ev-voice",
                            scale=3,
                        )
                        voice_files = gr.File(
                            label="…or upload reference clips (one voice each)",
                            file_count="multiple",
                            file_types=["audio"],
                            type="filepath",
                            elem_id="ev-voice-files",
                            scale=2,
                        )
                    with gr.Accordion("Generation settings", open=False, elem_id="ev-gen-settings"):
                        controls = generation_controls(
                            settings.generation, "ev", max_tokens_default=24 if tiny else 0, split=False, seed=False
                        )
                        with gr.Row():
                            repeats = gr.Number(
                                1, label="Repeats per sentence", precision=0, minimum=1, elem_id="ev-repeats"
                            )
                            seed = gr.Number(
                                settings.generation.seed if settings.generation.seed is not None else 1234,
                                label="Seed (utterance seed = seed + repeat)",
                                precision=0,
                                elem_id="ev-seed",
                            )
                    with gr.Accordion("ASR and statistics", open=False, elem_id="ev-asr-settings"):
                        with gr.Row():
                            asr_model = gr.Dropdown(
                                asr_choices,
                                value=engines.asr.default_model(),
                                label="Whisper model",
                                elem_id="ev-asr-model",
                            )
                            beam = gr.Number(
                                0 if tiny else 5,
                                precision=0,
                                minimum=0,
                                label="Beam size (0 = greedy)",
                                elem_id="ev-beam",
                            )
                            batch = gr.Number(16, precision=0, minimum=1, label="ASR batch size", elem_id="ev-batch")
                            ground_truth = gr.Checkbox(True, label="Score the real recordings too (ground truth)")
                    run_name = gr.Textbox(label="Run name (optional)", elem_id="ev-name")
                    with gr.Row():
                        run_btn = gr.Button("Run evaluation", variant="primary", elem_id="ev-run")
                        stop_btn = gr.Button("Stop", variant="stop", elem_id="ev-stop")
                with gr.Column(scale=2):
                    progress_md = gr.Markdown("Not started.", elem_id="ev-progress")
                    link_html = gr.HTML(report_link(None), elem_id="ev-report-link")
                    files_out = gr.File(
                        label="Report files", file_count="multiple", interactive=False, elem_id="ev-files"
                    )
            summary_df = gr.Dataframe(
                label="Summary (95% bootstrap CIs)", interactive=False, elem_id="ev-summary", wrap=True
            )

        with gr.Tab("Results", id="ev-tab-results") as results_tab:
            with gr.Row():
                runs_dd = gr.Dropdown(
                    runs0, value=runs0[0][1] if runs0 else None, label="Past runs", elem_id="ev-runs", scale=4
                )
                refresh_btn = gr.Button("Refresh", size="sm", elem_id="ev-refresh")
                resume_btn = gr.Button("Resume", size="sm", elem_id="ev-resume")
            run_info = gr.Markdown(elem_id="ev-run-info")
            with gr.Row():
                res_link = gr.HTML(elem_id="ev-res-link")
                res_files = gr.File(label="Files", file_count="multiple", interactive=False, elem_id="ev-res-files")
            res_summary = gr.Dataframe(label="Summary", interactive=False, wrap=True, elem_id="ev-res-summary")
            res_paired = gr.Dataframe(label="Paired comparisons (A − B)", interactive=False, wrap=True)
            with gr.Row():
                res_lang = gr.Dataframe(label="By language", interactive=False, wrap=True)
                res_len = gr.Dataframe(label="By sentence length", interactive=False, wrap=True)
            utt_dd = gr.Dropdown([], label="Utterance (alignment view)", elem_id="ev-utterance")
            with gr.Row():
                utt_html = gr.HTML(elem_id="ev-alignment")
                utt_audio = gr.Audio(type="filepath", interactive=False, label="Audio", elem_id="ev-utt-audio")

        with gr.Tab("Compare", id="ev-tab-compare"):
            gr.Markdown(
                "Two runs side by side (systems matched by name), or two systems of one run on the same "
                "sentences (paired bootstrap)."
            )
            with gr.Row():
                cmp_a = gr.Dropdown(runs0, label="Run A", elem_id="ev-cmp-a")
                cmp_b = gr.Dropdown(runs0, label="Run B", elem_id="ev-cmp-b")
                cmp_btn = gr.Button("Compare runs", elem_id="ev-cmp-btn")
            cmp_df = gr.Dataframe(interactive=False, wrap=True, elem_id="ev-cmp-table")
            with gr.Row():
                pair_run = gr.Dropdown(runs0, label="Run", elem_id="ev-pair-run")
                pair_a = gr.Dropdown([], label="System A", elem_id="ev-pair-a")
                pair_b = gr.Dropdown([], label="System B", elem_id="ev-pair-b")
                pair_btn = gr.Button("Paired comparison", elem_id="ev-pair-btn")
            pair_df = gr.Dataframe(interactive=False, wrap=True, elem_id="ev-pair-table")

        with gr.Tab("Checkpoints", id="ev-tab-checkpoints"):
            gr.Markdown(
                "Evaluate every saved checkpoint of a training run on the same sentences and rank them "
                "(lowest corpus WER/CER first, then highest SIM). Checkpoints are exported to "
                "`workspace/cache/eval-checkpoints/` for this."
            )
            with gr.Row():
                ck_run = gr.Dropdown(training_run_choices(engines), label="Training run", elem_id="ev-ck-run", scale=3)
                ck_refresh = gr.Button("Refresh", size="sm")
            with gr.Row():
                ck_set = gr.Dropdown(
                    sets, value=sets[0][1] if sets else None, label="Sentence set", elem_id="ev-ck-set"
                )
                ck_upload = gr.File(label="Upload CSV/TXT", file_types=[".csv", ".txt"], type="filepath")
                ck_max = gr.Number(10, label="Max sentences (0 = all)", precision=0, minimum=0)
            with gr.Row():
                ck_voices = gr.Dropdown(
                    voices0,
                    value=[first_speaker] if first_speaker else [],
                    multiselect=True,
                    label="Reference voices",
                    elem_id="ev-ck-voice",
                )
                ck_voice_files = gr.File(
                    label="…or upload reference clips", file_count="multiple", file_types=["audio"], type="filepath"
                )
                ck_include = gr.Checkbox(False, label="Also evaluate the base model")
            ck_btn = gr.Button("Rank checkpoints", variant="primary", elem_id="ev-ck-btn")
            ck_progress = gr.Markdown()
            ck_table = gr.Dataframe(label="Ranking", interactive=False, wrap=True, elem_id="ev-ck-table")
            ck_plot = gr.HTML()
            ck_link = gr.HTML()
            ck_run_id = gr.State(None)
            with gr.Row():
                ck_name = gr.Textbox(label="Export the best checkpoint as (model name)", placeholder="my-voice-best")
                ck_export = gr.Button("Export best", elem_id="ev-ck-export")
            ck_export_msg = gr.Markdown()

        with gr.Tab("Listening test", id="ev-tab-listen"):
            gr.Markdown(
                "A blind test: the same sentences from two systems, clips in random order. Systems are "
                "revealed only in the results below."
            )
            with gr.Row():
                ls_run = gr.Dropdown(runs0, label="Run", elem_id="ev-ls-run")
                ls_a = gr.Dropdown([], label="System A", elem_id="ev-ls-a")
                ls_b = gr.Dropdown([], label="System B", elem_id="ev-ls-b")
                ls_mode = gr.Radio(
                    [("A/B preference + MOS", "ab+mos"), ("A/B preference", "ab"), ("MOS 1-5", "mos")],
                    value="ab+mos",
                    label="Mode",
                )
                ls_items = gr.Number(20, label="Trials", precision=0, minimum=1)
            ls_start = gr.Button("Start test", elem_id="ev-ls-start")
            ls_state = gr.State(None)
            ls_pos = gr.Markdown(elem_id="ev-ls-pos")
            ls_text = gr.Markdown()
            with gr.Row():
                ls_clip1 = gr.Audio(type="filepath", interactive=False, label="Clip 1")
                ls_clip2 = gr.Audio(type="filepath", interactive=False, label="Clip 2")
            with gr.Row():
                ls_pref = gr.Radio(
                    ["Clip 1", "Clip 2", "About the same"], label="Which sounds better?", elem_id="ev-ls-pref"
                )
                ls_mos1 = gr.Slider(1, 5, 3, step=1, label="Clip 1 quality (1 bad – 5 excellent)")
                ls_mos2 = gr.Slider(1, 5, 3, step=1, label="Clip 2 quality (1 bad – 5 excellent)")
            ls_submit = gr.Button("Submit and next", variant="primary", elem_id="ev-ls-submit")
            ls_summary = gr.Markdown(elem_id="ev-ls-summary")

    # ---- wiring
    models.change(
        lambda m, cur: gr.Dropdown(choices=voice_choices(engines, m), value=cur),
        inputs=[models, voices],
        outputs=voices,
        api_visibility="private",
    )
    # The API's positional order is this order (unchanged for script users).
    run_form = Form(
        set_spec=set_dd,
        upload=upload,
        language=language,
        max_sentences=max_sentences,
        models=models,
        voices=voices,
        voice_files=voice_files,
        repeats=repeats,
        seed=seed,
        **{name: controls[name] for name in GENERATION_INPUTS if name in controls},
        asr_model=asr_model,
        beam_size=beam,
        batch_size=batch,
        ground_truth=ground_truth,
        name=run_name,
    )

    def _run(*values, progress=gr.Progress()):
        yield from run_callback(engines, run_form.values(values), progress=progress)

    run_event = run_btn.click(
        _run,
        inputs=run_form.inputs,
        outputs=[progress_md, summary_df, link_html, files_out],
        api_name="eval_run",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
    run_event.then(
        lambda cur: refresh_runs_callback(engines, cur), inputs=runs_dd, outputs=runs_dd, api_visibility="private"
    )
    stop_btn.click(lambda: stop_callback(engines), outputs=progress_md, api_name="eval_stop")

    view_outputs = [res_summary, res_lang, res_len, res_paired, res_link, res_files, utt_dd, run_info]
    refresh_btn.click(
        lambda cur: refresh_runs_callback(engines, cur), inputs=runs_dd, outputs=runs_dd, api_visibility="private"
    )
    runs_dd.change(
        lambda r: run_view_callback(engines, r), inputs=runs_dd, outputs=view_outputs, api_visibility="private"
    )
    results_tab.select(
        lambda r: open_results_callback(engines, r),
        inputs=runs_dd,
        outputs=[runs_dd, *view_outputs],
        api_visibility="private",
    )

    def _resume(run_id, progress=gr.Progress()):
        yield from resume_callback(engines, run_id, progress=progress)

    resume_btn.click(
        _resume,
        inputs=runs_dd,
        outputs=[run_info, res_summary, res_link, res_files],
        api_name="eval_resume",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
    utt_dd.change(
        lambda r, k: utterance_callback(engines, r, k),
        inputs=[runs_dd, utt_dd],
        outputs=[utt_html, utt_audio],
        api_visibility="private",
    )

    def _refresh_all():
        choices = run_choices(engines)
        return [gr.Dropdown(choices=choices) for _ in range(4)]

    for dd in (cmp_a, pair_run, ls_run):
        dd.focus(_refresh_all, outputs=[cmp_a, cmp_b, pair_run, ls_run], api_visibility="private")
    cmp_btn.click(
        lambda a, b: compare_callback(engines, a, b), inputs=[cmp_a, cmp_b], outputs=cmp_df, api_visibility="private"
    )
    pair_run.change(
        lambda r: systems_callback(engines, r), inputs=pair_run, outputs=[pair_a, pair_b], api_visibility="private"
    )
    pair_btn.click(
        lambda r, a, b: paired_callback(engines, r, a, b),
        inputs=[pair_run, pair_a, pair_b],
        outputs=pair_df,
        api_visibility="private",
    )

    ck_refresh.click(
        lambda: gr.Dropdown(choices=training_run_choices(engines)), outputs=ck_run, api_visibility="private"
    )

    rank_form = Form(
        training_run=ck_run,
        set_spec=ck_set,
        upload=ck_upload,
        language=language,
        max_sentences=ck_max,
        voices=ck_voices,
        voice_files=ck_voice_files,
        max_audio_tokens=controls["max_audio_tokens"],
        asr_model=asr_model,
        beam_size=beam,
        include_base=ck_include,
    )

    def _rank(*values, progress=gr.Progress()):
        yield from rank_callback(engines, rank_form.values(values), progress=progress)

    ck_btn.click(
        _rank,
        inputs=rank_form.inputs,
        outputs=[ck_progress, ck_table, ck_plot, ck_link, ck_run_id],
        api_name="eval_rank_checkpoints",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
    ck_export.click(
        lambda r, n: export_best_callback(engines, r, n),
        inputs=[ck_run_id, ck_name],
        outputs=ck_export_msg,
        api_visibility="private",
    )

    ls_run.change(lambda r: systems_callback(engines, r), inputs=ls_run, outputs=[ls_a, ls_b], api_visibility="private")
    ls_start.click(
        lambda r, a, b, m, n: start_listening_callback(engines, r, a, b, m, n),
        inputs=[ls_run, ls_a, ls_b, ls_mode, ls_items],
        outputs=[ls_state, ls_text, ls_clip1, ls_clip2, ls_pos, ls_summary],
        api_visibility="private",
    )
    ls_submit.click(
        lambda s, p, m1, m2: answer_callback(engines, s, p, m1, m2),
        inputs=[ls_state, ls_pref, ls_mos1, ls_mos2],
        outputs=[ls_state, ls_text, ls_clip1, ls_clip2, ls_pos, ls_summary, ls_pref],
        api_visibility="private",
    )
