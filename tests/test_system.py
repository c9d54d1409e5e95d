"""System panel: what it reports, unload-all, and its layout."""

from __future__ import annotations

import importlib.metadata

import gradio as gr
import pytest

from config import load_settings
from engines import Engines
from pages import system


@pytest.fixture()
def sys_engines(tmp_path, tiny_models) -> Engines:
    settings = load_settings({"workspace": tmp_path / "workspace", "tiny_models": True, "device": "cpu"}, env={})
    engines = Engines.create(settings, tiny=tiny_models)
    return engines


def _row(markdown: str, engine: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| {engine} |"))


def test_info_reports_device_versions_and_models(sys_engines):
    info = system.system_info(sys_engines)
    assert "**Device**: `cpu`" in info
    assert "CPU mode" in info  # no GPU line on CPU
    assert "**Tiny-model mode**: on" in info
    assert f"openai-whisper {importlib.metadata.version('openai-whisper')}" in info
    assert f"gradio {gr.__version__}" in info
    assert "(none)" in _row(info, "asr")
    assert "(none)" in _row(info, "tts")  # every engine of the set is listed, loaded or not

    sys_engines.asr.load()
    assert "`tiny-random`" in _row(system.system_info(sys_engines), "asr")


def test_info_with_the_tts_engine(sys_engines):
    from engines.tts.engine import TTSEngine

    sys_engines.tts = TTSEngine(sys_engines.settings, sys_engines.gpu_lock, tiny=sys_engines.tiny)
    assert "(none)" in _row(system.system_info(sys_engines), "tts")


def test_a_failing_status_does_not_break_the_panel(sys_engines):
    class Broken:  # an engine whose status() raises: the panel still renders
        def status(self):
            raise RuntimeError("disk on fire")

        def unload(self):
            raise RuntimeError("cannot")

    sys_engines.tts = Broken()
    assert "status unavailable: RuntimeError: disk on fire" in _row(system.system_info(sys_engines), "tts")
    sys_engines.asr.load()
    message = system.unload_all(sys_engines)
    assert "Unloaded: asr." in message and "Could not unload: tts (cannot)" in message


def test_unload_all(sys_engines):
    assert system.unload_all(sys_engines) == "No model was loaded."
    sys_engines.asr.load()
    assert sys_engines.asr.status()["loaded_model"] == "tiny-random"
    assert system.unload_all(sys_engines) == "Unloaded: asr."
    assert sys_engines.asr.status()["loaded_model"] is None
    assert "(none)" in _row(system.unload_callback(sys_engines), "asr")


def test_bad_device_setting_is_shown(sys_engines):
    import dataclasses

    sys_engines.settings = dataclasses.replace(sys_engines.settings, device="tpu")
    assert "unusable" in system.system_info(sys_engines)


def test_build_layout(sys_engines):
    with gr.Blocks() as demo:
        system.build(sys_engines)
    assert {"system-info", "system-refresh", "system-unload"} <= {b.elem_id for b in demo.blocks.values()}
    info = next(b for b in demo.blocks.values() if b.elem_id == "system-info")
    assert "Device" in info.value
