"""Getting the real models from the app (System panel): the CPML consent for XTTS v2 and Whisper sizes.

Whisper's download is exercised for real against a local HTTP server (whisper's own code: URL, SHA-256
check, tqdm progress); XTTS v2's goes through coqui's ModelManager with the hub switched offline, so the
test never fetches 1.9 GB on a machine that has the internet.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import gradio as gr
import pytest

from config import load_settings
from engines import Engines
from engines.core import catalog
from pages import system


@pytest.fixture()
def dl_engines(tmp_path, tiny_models, monkeypatch) -> Engines:
    monkeypatch.delenv("COQUI_TOS_AGREED", raising=False)
    settings = load_settings(
        {
            "workspace": tmp_path / "workspace",
            "tiny_models": True,
            "device": "cpu",
            "xtts_cache_dir": tmp_path / "xtts-cache",
            "whisper_cache_dir": tmp_path / "whisper-cache",
        },
        env={},
    )
    return Engines.create(settings)


@pytest.fixture()
def served(tmp_path, tiny_models):
    """A local HTTP server holding a Whisper checkpoint at /<sha256>/<name>.pt, as OpenAI's URLs are laid out."""
    root = tmp_path / "server"
    data = Path(tiny_models.whisper_path).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    (root / sha).mkdir(parents=True)
    (root / sha / "tiny.en.pt").write_bytes(data)
    (root / ("0" * 64)).mkdir()
    (root / ("0" * 64) / "tiny.en.pt").write_bytes(data)  # under a SHA-256 it does not have
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield {"good": f"{base}/{sha}/tiny.en.pt", "bad": f"{base}/{'0' * 64}/tiny.en.pt", "sha": sha}
    server.shutdown()


def test_whisper_size_downloads_with_progress_and_is_kept(dl_engines, served, monkeypatch):
    import whisper

    monkeypatch.setitem(whisper._MODELS, "tiny.en", served["good"])
    assert "not downloaded yet" in system.whisper_state(dl_engines, "tiny.en")
    calls = []
    state = system.download_whisper_callback(dl_engines, "tiny.en", progress=lambda f, desc="": calls.append(desc))
    path = dl_engines.asr.cache_dir / "tiny.en.pt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == served["sha"]
    assert "downloaded" in state and calls and "Whisper tiny.en" in calls[0]
    mtime = path.stat().st_mtime_ns
    system.download_whisper_callback(dl_engines, "tiny.en")  # already there: kept, not fetched again
    assert path.stat().st_mtime_ns == mtime


def test_whisper_download_failures_are_clear_messages(dl_engines, served, monkeypatch):
    import whisper

    monkeypatch.setitem(whisper._MODELS, "tiny.en", served["bad"])
    with pytest.raises(gr.Error, match="corrupt"):
        system.download_whisper_callback(dl_engines, "tiny.en")
    assert not (dl_engines.asr.cache_dir / "tiny.en.pt").exists()  # a corrupt download is not kept
    port = served["good"].split(":")[2].split("/")[0]
    monkeypatch.setitem(whisper._MODELS, "tiny.en", served["good"].replace(f":{port}/", ":9/"))  # nothing listens
    with pytest.raises(gr.Error, match="download failed") as info:
        system.download_whisper_callback(dl_engines, "tiny.en")
    assert "Traceback" not in str(info.value)
    with pytest.raises(gr.Error, match="not a Whisper size"):
        system.download_whisper_callback(dl_engines, "enormous")


def test_xtts_download_needs_the_licence_box(dl_engines, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never fetch 1.9 GB from a test
    assert "not accepted yet" in system.xtts_state(dl_engines) and catalog.LICENCE_URL in system.xtts_state(dl_engines)
    with pytest.raises(gr.Error, match="CPML"):
        system.download_xtts_callback(dl_engines, False)
    assert not catalog.licence_accepted(dl_engines.settings)  # refusing leaves no consent behind

    with pytest.raises(gr.Error, match="Could not download XTTS v2") as info:
        system.download_xtts_callback(dl_engines, True)  # consent given, then the real download path (offline)
    assert "Traceback" not in str(info.value)
    assert catalog.licence_accepted(dl_engines.settings)  # coqui's own marker: later downloads need no env var
    assert "accepted" in system.xtts_state(dl_engines)


def test_xtts_state_names_a_present_model(dl_engines, tiny_models):
    folder = catalog.base_search(dl_engines.settings).folders[0]
    shutil.copytree(tiny_models.xtts_dir, folder)
    assert "ready" in system.xtts_state(dl_engines) and str(folder) in system.xtts_state(dl_engines)
    assert "ready" in system.download_xtts_callback(dl_engines, False)  # nothing to fetch: no licence asked
