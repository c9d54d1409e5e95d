"""System panel: the WavLM verifier and UTMOS rows of "Get the real models" (no network: failures and local copies)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gradio as gr
import pytest

from engines.scoring import mos as mos_module
from pages import system


@pytest.fixture()
def metric_engines(engines, tmp_path: Path):
    """The tiny-mode engines with the metric downloads pointed at an empty temp folder."""
    from engines.scoring.mos import MOSEngine
    from engines.scoring.sim import SimilarityEngine

    settings = dataclasses.replace(engines.settings, metrics_cache_dir=tmp_path / "metrics")
    engines.sim = SimilarityEngine(settings, engines.gpu_lock, tts=engines.tts)
    engines.mos = MOSEngine(settings, engines.gpu_lock)
    return engines


def test_states_say_not_downloaded(metric_engines) -> None:
    assert "not downloaded" in system.wavlm_state(metric_engines)
    assert "Resemblyzer" in system.wavlm_state(metric_engines)
    state = system.utmos_state(metric_engines)
    assert "not downloaded" in state and str(metric_engines.mos.utmos_path()) in state


def test_utmos_download_failure_is_a_message(metric_engines, monkeypatch) -> None:
    monkeypatch.setattr(mos_module, "UTMOS_URL", "http://127.0.0.1:9/utmos.pt")  # refused at once, on loopback
    with pytest.raises(gr.Error, match="Could not download UTMOS"):
        system.download_utmos_callback(metric_engines)
    assert not metric_engines.mos.utmos_path().exists()  # nothing half-written kept


def test_wavlm_local_folder(metric_engines, tmp_path: Path) -> None:
    from engines.scoring.sim import SimilarityEngine
    from tests.test_speaker_sim import _tiny_wavlm

    empty = tmp_path / "empty"
    empty.mkdir()
    settings = dataclasses.replace(metric_engines.sim.settings, wavlm_sv_model=str(empty))
    metric_engines.sim = SimilarityEngine(settings, metric_engines.gpu_lock)
    with pytest.raises(gr.Error, match="lacks its files"):
        system.download_wavlm_callback(metric_engines)
    folder = _tiny_wavlm(tmp_path / "wavlm")
    settings = dataclasses.replace(settings, wavlm_sv_model=str(folder))
    metric_engines.sim = SimilarityEngine(settings, metric_engines.gpu_lock)
    assert "ready" in system.download_wavlm_callback(metric_engines)


def test_panel_builds_with_the_new_buttons(metric_engines) -> None:
    with gr.Blocks() as demo:
        system.build(metric_engines)
    api = demo.get_api_info()
    assert {"/system_download_wavlm", "/system_download_utmos"} <= set(api["named_endpoints"])
