"""Launch the real app (tiny models, temporary workspace) on a free loopback port for client/browser tests."""

from __future__ import annotations

import contextlib
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from config import load_settings

CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright never downloads its own browser here
# Root in CI needs --no-sandbox; the rest keeps Chromium from phoning home or stalling on first-run work.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",  # audio.play() from a test counts as no gesture
]


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_settings(root: Path, tiny_models):
    """Tiny-mode settings with a workspace under ``root`` that reuses the session's tiny models."""
    workspace = root / "workspace"
    (workspace / "tiny-models").mkdir(parents=True, exist_ok=True)
    for item in (tiny_models.xtts_dir, tiny_models.whisper_path):
        link = workspace / "tiny-models" / item.name
        if not link.exists():
            link.symlink_to(item, target_is_directory=item.is_dir())
    cli = {"workspace": workspace, "datasets_dir": root / "datasets", "tiny_models": True, "device": "cpu"}
    return load_settings(cli, env={})


@contextlib.contextmanager
def launched_app(settings) -> Iterator[tuple[object, str]]:
    """Build and launch the app without blocking; yields ``(demo, url)`` and closes it afterwards."""
    from main_launcher import build_app, launch_kwargs

    demo = build_app(settings)
    kwargs = launch_kwargs(settings, demo.engines)
    kwargs.update(server_name="127.0.0.1", server_port=free_port(), share=False, inbrowser=False)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        _wait_until_up(url)
        yield demo, url
    finally:
        demo.close()


def _wait_until_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)
