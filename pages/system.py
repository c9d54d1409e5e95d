"""System panel: device, GPU memory, library versions, resident models; refresh and unload-all buttons;
getting the real models (XTTS v2 after accepting Coqui's CPML licence, Whisper sizes, Eval's WavLM speaker
verifier and UTMOS, the clean-up's Hybrid Demucs vocal separator) with progress.

UI only: the buttons call plain functions (``system_info``, ``unload_all``) that tests call directly.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from config import WHISPER_SIZES
from engines import Engines
from engines.core import catalog as models
from engines.core.provenance import drift_message, version_drift
from pages.common import GPU_CONCURRENCY_ID, guarded, notify

XTTS_SIZE = "1.9 GB"

log = logging.getLogger(__name__)

# Engines that keep a model resident (training runs in its own process; eval borrows these).
ENGINE_NAMES = ("tts", "asr", "sim", "mos", "cleanup")


def versions() -> dict[str, str]:
    """Versions of the libraries that matter for bug reports, with torch's CUDA build."""
    from engines.core.device import torch_versions
    from engines.core.provenance import versions as library_versions

    out = dict(library_versions())
    out["CUDA (torch build)"] = torch_versions()["cuda"]
    return out


def engine_statuses(engines: Engines) -> dict[str, dict[str, Any]]:
    """``status()`` of every engine that has one; an engine not built yet or failing is reported, not fatal."""
    out: dict[str, dict[str, Any]] = {}
    for name in ENGINE_NAMES:
        engine = getattr(engines, name, None)
        status = getattr(engine, "status", None)
        if not callable(status):
            continue
        try:
            out[name] = dict(status())
        except Exception as exc:  # noqa: BLE001 - the panel must render even when one engine misbehaves
            log.warning("status() of %s failed", name, exc_info=True)
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _loaded(status: dict[str, Any]) -> str | None:
    return status.get("loaded_model") or status.get("loaded")


def system_info(engines: Engines) -> str:
    """The panel's markdown: device, GPU memory, versions, resident models, tiny-mode flag."""
    from engines.core.device import gpu_memory, resolve_device

    settings = engines.settings
    lines = ["### System"]
    try:
        device = resolve_device(settings.device)
    except Exception as exc:  # noqa: BLE001 - a bad device setting is shown, not raised
        device = None
        lines.append(f"- **Device**: setting {settings.device!r} is unusable: {exc}")
    if device is not None:
        lines.append(f"- **Device**: `{device}` (setting: `{settings.device}`)")
        memory = gpu_memory(device) if device.startswith("cuda") else None
        if memory:
            lines.append(
                f"- **GPU**: {memory['name']}: {memory['free_gib']:.1f} GiB free of {memory['total_gib']:.1f} "
                f"GiB, {memory['allocated_gib']:.1f} GiB held by this app"
            )
        elif device == "cpu":
            lines.append("- **GPU**: none in use (CPU mode: fine for the tiny models, slow for real ones)")
    mode = "on (tiny random models: audio is noise, text is gibberish)" if settings.tiny_models else "off"
    lines.append(f"- **Tiny-model mode**: {mode}")
    lines.append(f"- **Workspace**: `{settings.workspace_dir}`")
    drift = drift_message(version_drift())
    if drift:
        lines.append(f"- **Warning**: {drift}")
    lines.append("- **Versions**: " + ", ".join(f"{k} {v}" for k, v in versions().items()))

    lines += ["", "| Engine | Loaded model | Device | Load time |", "|---|---|---|---|"]
    statuses = engine_statuses(engines)
    for name, status in statuses.items():
        if "error" in status:
            lines.append(f"| {name} | status unavailable: {status['error']} | | |")
            continue
        model = _loaded(status)
        load = status.get("load_seconds")
        lines.append(
            f"| {name} | {f'`{model}`' if model else '(none)'} | {status.get('device') or ''} | "
            f"{f'{load:.1f} s' if model and load is not None else ''} |"
        )
    if not statuses:
        lines.append("| (no engines) | | | |")
    return "\n".join(lines)


def unload_all(engines: Engines) -> str:
    """Unload every resident model and give cached GPU memory back. Returns what was done, for a toast."""
    from engines.core.device import free_memory

    unloaded: list[str] = []
    failed: list[str] = []
    for name in ENGINE_NAMES:
        unload = getattr(getattr(engines, name, None), "unload", None)
        if not callable(unload):
            continue
        try:
            if unload():
                unloaded.append(name)
        except Exception as exc:  # noqa: BLE001 - unload the others anyway
            log.warning("unload() of %s failed", name, exc_info=True)
            failed.append(f"{name} ({exc})")
    free_memory()
    message = f"Unloaded: {', '.join(unloaded)}." if unloaded else "No model was loaded."
    if failed:
        message += f" Could not unload: {', '.join(failed)}."
    return message


@guarded
def refresh_callback(engines: Engines) -> str:
    return system_info(engines)


@guarded
def unload_callback(engines: Engines) -> str:
    notify(unload_all(engines))
    return system_info(engines)


def xtts_state(engines: Engines) -> str:
    """Where XTTS v2 is, or that it is missing and how the licence stands."""
    folder = models.find_base_model(engines.settings)
    if folder is not None:
        return f"**XTTS v2**: ready in `{folder}`. Pick `{models.BASE_ID}` in the TTS tab's model list."
    licence = "accepted" if models.licence_accepted(engines.settings) else "not accepted yet"
    return (
        f"**XTTS v2**: not on this machine (searched {models.base_search(engines.settings).describe()}). "
        f"Downloading it ({XTTS_SIZE}) means accepting Coqui's [CPML licence]({models.LICENCE_URL}) "
        f"(non-commercial use): {licence}."
    )


def whisper_state(engines: Engines, size: str | None) -> str:
    size = size or engines.asr.default_model()
    if size not in WHISPER_SIZES:
        return f"**Whisper**: `{size}` is not a downloadable size."
    where = engines.asr.cache_dir
    if engines.asr.downloaded(size):
        return f"**Whisper {size}**: downloaded (`{where}`)."
    return f"**Whisper {size}**: not downloaded yet; it goes to `{where}`."


@guarded
def download_xtts_callback(engines: Engines, agreed: bool, progress=None) -> str:
    """Accept the CPML (only with the box ticked) and fetch XTTS v2; coqui's download resumes a cut one."""
    from engines.core.errors import InputError

    if models.find_base_model(engines.settings) is not None:
        notify("XTTS v2 is already on this machine.")
        return xtts_state(engines)
    if not agreed and not models.licence_accepted(engines.settings):
        raise InputError(
            f"Tick 'I accept Coqui's CPML licence' first: XTTS v2 is only licensed under it ({models.LICENCE_URL})."
        )
    if agreed:
        models.accept_licence(engines.settings)
    folder = engines.tts.model_dir(models.BASE_ID, download=True, progress=progress, log_fn=log.info)
    notify(f"XTTS v2 is ready in {folder}.")
    return xtts_state(engines)


def wavlm_state(engines: Engines) -> str:
    """Whether the WavLM speaker verifier (Eval's stronger SIM encoder) is on disk."""
    from engines.scoring.sim import WAVLM_SIZE

    sim = getattr(engines, "sim", None)
    if sim is None:
        return "**WavLM verifier**: no similarity engine in this app."
    folder = sim.wavlm_dir()
    if folder is not None:
        return f"**WavLM verifier** (`{sim.settings.wavlm_sv_model}`): ready in `{folder}`."
    where = sim.cache_dir or "the Hugging Face cache"
    return (
        f"**WavLM verifier** (`{sim.settings.wavlm_sv_model}`, {WAVLM_SIZE}): not downloaded; it goes to {where}. "
        "Eval's default SIM encoder, Resemblyzer, works without it; WavLM is the stronger verifier."
    )


def utmos_state(engines: Engines) -> str:
    """Whether UTMOS (Eval's naturalness MOS) is on disk."""
    from engines.scoring.mos import UTMOS_SIZE

    if getattr(engines, "mos", None) is None:
        return "**UTMOS**: no MOS engine in this app."
    reason = engines.mos.available("utmos")
    if reason is None:
        return f"**UTMOS**: ready (`{engines.mos.utmos_path()}`)."
    return (
        f"**UTMOS** ({UTMOS_SIZE}): not downloaded; it goes to `{engines.mos.utmos_path()}`. DNSMOS needs no download."
    )


def demucs_state(engines: Engines) -> str:
    """Whether Hybrid Demucs (the clean-up's vocal separator) is on disk, and whether denoising can run here."""
    from engines.cleanup import separate

    path = engines.cleanup.demucs_path()
    reasons = engines.cleanup.available()
    if reasons["separate"] is None:
        line = f"**Hybrid Demucs** (vocal separation): ready (`{path}`)."
    else:
        line = f"**Hybrid Demucs** (vocal separation, {separate.SIZE}): not downloaded; it goes to `{path}`."
    reason = reasons["denoise"]
    return line + (" DeepFilterNet3 denoising needs no download." if reason is None else f" {reason}")


@guarded
def download_wavlm_callback(engines: Engines, progress=None) -> str:
    """Fetch the WavLM speaker verifier into the hub cache (resumable)."""
    folder = engines.sim.download("wavlm-sv", progress=progress)
    notify(f"The WavLM verifier is in {folder}.")
    return wavlm_state(engines)


@guarded
def download_utmos_callback(engines: Engines, progress=None) -> str:
    """Fetch the UTMOS checkpoint."""
    path = engines.mos.download("utmos", progress=progress)
    notify(f"UTMOS is in {path}.")
    return utmos_state(engines)


@guarded
def download_demucs_callback(engines: Engines, progress=None) -> str:
    """Fetch the Hybrid Demucs weights (HDEMUCS_HIGH_MUSDB_PLUS) into the clean-up cache."""
    path = engines.cleanup.download_demucs(progress=progress)
    notify(f"Hybrid Demucs is in {path}.")
    return demucs_state(engines)


@guarded
def download_whisper_callback(engines: Engines, size: str | None, progress=None) -> str:
    """Fetch one Whisper size into the cache (with whisper's own progress bar)."""
    size = size or engines.asr.default_model()
    path = engines.asr.download(size, progress=progress)
    notify(f"Whisper {size} is in {path}.")
    return whisper_state(engines, size)


def build(engines: Engines) -> None:
    """Lay out the System panel (inside the app's System accordion)."""
    info = gr.Markdown(system_info(engines), elem_id="system-info")
    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", elem_id="system-refresh")
        unload = gr.Button("Unload all models", size="sm", variant="stop", elem_id="system-unload")
    with gr.Accordion(
        "Get the real models", open=models.find_base_model(engines.settings) is None, elem_id="system-models"
    ):
        xtts_md = gr.Markdown(xtts_state(engines), elem_id="system-xtts-state")
        with gr.Row():
            agree = gr.Checkbox(
                models.licence_accepted(engines.settings),
                label="I accept Coqui's CPML licence (non-commercial use)",
                elem_id="system-xtts-agree",
            )
            get_xtts = gr.Button(f"Download XTTS v2 ({XTTS_SIZE})", elem_id="system-xtts-download")
        sizes = [s for s in WHISPER_SIZES if s != "tiny-random"]
        default_size = engines.asr.default_model() if engines.asr.default_model() in sizes else "small"
        with gr.Row():
            size = gr.Dropdown(sizes, value=default_size, label="Whisper size", elem_id="system-whisper-size")
            get_whisper = gr.Button("Download Whisper", elem_id="system-whisper-download")
        whisper_md = gr.Markdown(whisper_state(engines, default_size), elem_id="system-whisper-state")
        with gr.Row():
            get_wavlm = gr.Button("Download WavLM verifier", elem_id="system-wavlm-download")
            get_utmos = gr.Button("Download UTMOS", elem_id="system-utmos-download")
        wavlm_md = gr.Markdown(wavlm_state(engines), elem_id="system-wavlm-state")
        utmos_md = gr.Markdown(utmos_state(engines), elem_id="system-utmos-state")
        get_demucs = gr.Button("Download Demucs (vocal separation)", elem_id="system-demucs-download")
        demucs_md = gr.Markdown(demucs_state(engines), elem_id="system-demucs-state")
    refresh.click(lambda: refresh_callback(engines), outputs=info, api_visibility="private")
    get_xtts.click(
        lambda ok, progress=gr.Progress(track_tqdm=True): download_xtts_callback(engines, ok, progress=progress),
        inputs=agree,
        outputs=xtts_md,
        api_name="system_download_xtts",
    )
    size.change(lambda s: whisper_state(engines, s), inputs=size, outputs=whisper_md, api_visibility="private")
    get_whisper.click(
        lambda s, progress=gr.Progress(track_tqdm=True): download_whisper_callback(engines, s, progress=progress),
        inputs=size,
        outputs=whisper_md,
        api_name="system_download_whisper",
    )
    get_wavlm.click(
        lambda progress=gr.Progress(track_tqdm=True): download_wavlm_callback(engines, progress=progress),
        outputs=wavlm_md,
        api_name="system_download_wavlm",
    )
    get_utmos.click(
        lambda progress=gr.Progress(track_tqdm=True): download_utmos_callback(engines, progress=progress),
        outputs=utmos_md,
        api_name="system_download_utmos",
    )
    get_demucs.click(
        lambda progress=gr.Progress(track_tqdm=True): download_demucs_callback(engines, progress=progress),
        outputs=demucs_md,
        api_name="system_download_demucs",
    )
    # Queued behind model work (same concurrency id), so it never pulls a model out from under a running job.
    unload.click(
        lambda: unload_callback(engines),
        outputs=info,
        api_name="system_unload",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
