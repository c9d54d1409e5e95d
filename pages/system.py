"""System panel: device, GPU memory, library versions, resident models; refresh and unload-all buttons.

UI only: the buttons call plain functions (``system_info``, ``unload_all``) that tests call directly.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from engines.provenance import drift_message, version_drift
from pages.common import GPU_CONCURRENCY_ID, guarded, notify

log = logging.getLogger(__name__)

# Engines that keep a model resident (training runs in its own process; eval borrows these two).
ENGINE_NAMES = ("tts", "asr")


def versions() -> dict[str, str]:
    """Versions of the libraries that matter for bug reports, with torch's CUDA build."""
    from engines.device import torch_versions
    from engines.provenance import versions as library_versions

    out = dict(library_versions())
    out["CUDA (torch build)"] = torch_versions()["cuda"]
    return out


def engine_statuses(engines) -> dict[str, dict[str, Any]]:
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


def system_info(engines) -> str:
    """The panel's markdown: device, GPU memory, versions, resident models, tiny-mode flag."""
    from engines.device import gpu_memory, resolve_device

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


def unload_all(engines) -> str:
    """Unload every resident model and give cached GPU memory back. Returns what was done, for a toast."""
    from engines.device import free_memory

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
def refresh_callback(engines) -> str:
    return system_info(engines)


@guarded
def unload_callback(engines) -> str:
    notify(unload_all(engines))
    return system_info(engines)


def build(engines) -> None:
    """Lay out the System panel (inside the app's System accordion)."""
    info = gr.Markdown(system_info(engines), elem_id="system-info")
    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", elem_id="system-refresh")
        unload = gr.Button("Unload all models", size="sm", variant="stop", elem_id="system-unload")
    refresh.click(lambda: refresh_callback(engines), outputs=info, api_visibility="private")
    # Queued behind model work (same concurrency id), so it never pulls a model out from under a running job.
    unload.click(
        lambda: unload_callback(engines),
        outputs=info,
        api_name="system_unload",
        concurrency_id=GPU_CONCURRENCY_ID,
        concurrency_limit=1,
    )
