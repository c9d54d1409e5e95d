"""Eval tab, "Run" sub-tab: a sentence set spoken by models × voices, transcribed and scored.

The Run form's values reach ``engines.eval.start`` by name (``eval_common.build_config``); the
``eval_run`` API keeps the form's positional order. The run is a background job of the engine: the
button starts it and then watches it until it ends (so the API call returns the final result), a closed
tab ends only the watching, and loading the page watches the running job again. Stop is the only way to
end a run early.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

from config import XTTS_LANGUAGES
from engines import Engines
from pages.common import GENERATION_INPUTS, GPU_CONCURRENCY_ID, Form, generation_controls, guarded, object_picker
from pages.eval_common import (
    InitialChoices,
    audio_folder_lines,
    build_config,
    checked_sources,
    job_updates,
    report_link,
    voice_choices,
    watch_job,
)

# ---------------------------------------------------------------- callbacks (thin, guarded)


@guarded
def run_callback(engines: Engines, values: Mapping[str, Any], progress=None) -> Iterator[tuple]:
    """Run button: start the run (the Run form's values by name) as a background job, then watch it:
    (progress line, summary, report link, files) per update until it ends. Bad input fails before the
    job starts; closing the generator leaves the job running."""
    # an audio folder on the server is read like a dataset's server folder: only below the allowed roots
    folders = [str(engines.datasets.server_folder(f)) for f in audio_folder_lines(values.get("audio_folders"))]
    values = checked_sources(engines, values)
    config = build_config({**values, "audio_folders": "\n".join(folders)}, engines.settings.generation)
    job = engines.eval.start(config)
    for state in watch_job(job, progress):
        yield job_updates(state)


@guarded
def attach_callback(engines: Engines, progress=None) -> Iterator[tuple]:
    """Page load: watch the running evaluation job (or show how the last one of this app ended) in the Run
    sub-tab; nothing changes when this app has run none."""
    job = engines.eval.job
    if job is None:
        yield gr.update(), gr.update(), gr.update(), gr.update()
        return
    for state in watch_job(job, progress, raise_error=False):
        yield job_updates(state)


@guarded
def stop_callback(engines: Engines) -> str:
    if engines.eval.stop():
        return "**Stopping** after the current utterance; finished ones are kept (resume from Results)."
    return "Nothing is running."


@guarded
def voices_callback(engines: Engines, models: list[str] | None, current: list[str] | None):
    """The voice picker for the chosen models (their built-in speakers), keeping the picked voices."""
    return gr.Dropdown(choices=voice_choices(engines, models), value=current, multiselect=True)


# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class RunTab:
    """What the other sub-tabs use of the Run sub-tab."""

    finished: Any  # the Run button's event (gr.events.Dependency); ``.then`` runs after a run ends
    language: gr.Dropdown  # language for sets that name none (the Checkpoints ranking uses it too)
    max_audio_tokens: gr.Number  # the generation cap per sentence (also caps checkpoint ranking)
    asr_model: gr.Dropdown  # the Whisper model that scores (also for checkpoint ranking)
    beam_size: gr.Number  # Whisper's beam size, 0 = greedy (also for checkpoint ranking)


def build(engines: Engines, choices: InitialChoices) -> RunTab:
    """Lay out the Run sub-tab (inside the caller's ``gr.Tab``) and wire it to ``engines.eval``."""
    settings = engines.settings
    tiny = settings.tiny_models
    default_model = engines.tts.default_model()
    model_choices = engines.tts.list_models()
    if default_model not in [mid for _, mid in model_choices]:
        model_choices.append((default_model, default_model))
    sets = choices.sets
    languages = [(f"{name} ({code})", code) for code, name in XTTS_LANGUAGES.items()]

    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                set_dd = object_picker(
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
            models = object_picker(
                model_choices, value=[default_model], multiselect=True, label="TTS models", elem_id="ev-models"
            )
            with gr.Row():
                voices = object_picker(
                    choices.voices,
                    value=[choices.first_speaker] if choices.first_speaker else [],
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
            audio_folders = gr.Textbox(
                "",  # an initial value: the API parameter is optional, so older scripts keep working
                label="…or systems that are folders of audio made elsewhere (one folder per line)",
                info="Files named by sentence id (<id>.wav, any audio format), plus an optional reference.<ext> "
                "voice for SIM. Scored like the TTS systems; no RTF.",
                lines=1,
                elem_id="ev-audio-folders",
            )
            with gr.Accordion("Generation settings", open=False, elem_id="ev-gen-settings"):
                controls = generation_controls(
                    settings.generation, "ev", max_tokens_default=24 if tiny else 0, split=False, seed=False
                )
                with gr.Row():
                    repeats = gr.Number(1, label="Repeats per sentence", precision=0, minimum=1, elem_id="ev-repeats")
                    seed = gr.Number(
                        settings.generation.seed if settings.generation.seed is not None else 1234,
                        label="Seed (utterance seed = seed + repeat)",
                        precision=0,
                        elem_id="ev-seed",
                    )
            with gr.Accordion("ASR and statistics", open=False, elem_id="ev-asr-settings"):
                with gr.Row():
                    asr_model = object_picker(
                        engines.asr.list_models(),
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
                    retakes = gr.Number(
                        0,
                        precision=0,
                        minimum=0,
                        maximum=10,
                        label="Retakes (0 = off)",
                        info="Checked synthesis: Whisper hears each sentence, a failing one is retaken up to this many "
                        "takes before it is scored (measures what retakes buy)",
                        elem_id="ev-retakes",
                    )
                    asr_pack = gr.Checkbox(
                        False,
                        label="Pack clips for ASR (faster)",
                        info="Short clips share Whisper's 30 s windows: about 2.5x faster on a CPU; each clip is heard "
                        "beside its neighbours (off = each clip alone, as published evaluations do)",
                        elem_id="ev-asr-pack",
                    )
                with gr.Row():
                    sim_encoder = gr.Dropdown(
                        [
                            (label if ok else f"{label} (not downloaded)", eid)
                            for eid, label, ok in engines.sim.encoders()
                        ]
                        + [("off", "none")],
                        value=settings.sim_encoder,
                        label="Speaker similarity (SIM) encoder",
                        info="An independent verifier gives SIM-o as papers report it; XTTS's own encoder is "
                        "self-similarity.",
                        elem_id="ev-sim-encoder",
                    )
                    mos = gr.CheckboxGroup(
                        [
                            (label if ok else f"{label} (not available)", pid)
                            for pid, label, ok in engines.mos.predictors()
                        ],
                        value=list(settings.mos_predictors),
                        label="Predicted MOS",
                        elem_id="ev-mos",
                    )
            with gr.Row():
                run_name = gr.Textbox(label="Run name (optional)", elem_id="ev-name", scale=2)
                executor = gr.Dropdown(
                    [
                        ("this process", "local"),
                        ("this process, synthesis overlapping scoring", "pipeline"),
                        ("Ray cluster (ray_address setting; one worker per GPU)", "ray"),
                    ],
                    value="local",
                    label="Run on",
                    info="The same results either way.",
                    elem_id="ev-executor",
                    scale=1,
                )
            with gr.Row():
                run_btn = gr.Button("Run evaluation", variant="primary", elem_id="ev-run")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="ev-stop")
        with gr.Column(scale=2):
            progress_md = gr.Markdown("Not started.", elem_id="ev-progress")
            link_html = gr.HTML(report_link(None), elem_id="ev-report-link")
            files_out = gr.File(label="Report files", file_count="multiple", interactive=False, elem_id="ev-files")
    summary_df = gr.Dataframe(label="Summary (95% bootstrap CIs)", interactive=False, elem_id="ev-summary", wrap=True)

    models.change(
        lambda m, cur: voices_callback(engines, m, cur),
        inputs=[models, voices],
        outputs=voices,
        api_visibility="private",
    )
    # The API's positional order is this order (unchanged for script users).
    form = Form(
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
        audio_folders=audio_folders,
        sim_encoder=sim_encoder,
        mos=mos,
        executor=executor,
        retakes=retakes,  # appended: the API's positional order above stays as it was
        asr_pack=asr_pack,
    )

    finished = run_btn.click(
        form.handler(functools.partial(run_callback, engines), progress=gr.Progress()),
        inputs=form.inputs,
        outputs=[progress_md, summary_df, link_html, files_out],
        show_progress_on=summary_df,  # the bar over the table; the status line above stays readable
        api_name="eval_run",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
    stop_btn.click(lambda: stop_callback(engines), outputs=progress_md, api_name="eval_stop")

    def _attach(progress=gr.Progress()):  # a generator with gr.Progress: Gradio streams it with a progress bar
        yield from attach_callback(engines, progress=progress)

    root = gr.context.Context.root_block
    if root is not None:  # on page load (and browser refresh) watch the running job again
        root.load(
            _attach,
            outputs=[progress_md, summary_df, link_html, files_out],
            show_progress_on=summary_df,
            api_visibility="private",
            concurrency_limit=None,  # every open tab watches; none waits for another's watcher
        )
    return RunTab(
        finished=finished,
        language=language,
        max_audio_tokens=controls["max_audio_tokens"],
        asr_model=asr_model,
        beam_size=beam,
    )
