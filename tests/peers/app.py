"""The tiny app the peers' suites are pointed at: tiny XTTS, the real Whisper tiny.en when ../shared has it."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from tests.browser_helpers import launched_app, tiny_settings
from tests.conftest import REAL_WHISPER

# The peers' suites ask for one Whisper model by name; ours is listed as "whisper-tiny.en" (file stem).
WHISPER_ID = "whisper-tiny.en"


@contextlib.contextmanager
def peer_app(root: Path) -> Iterator[str]:
    """Launch the app as tests/test_openai_api.py does; yields its base URL without a trailing slash."""
    from engines.tiny import ensure_tiny_models

    tiny = ensure_tiny_models(root / "tiny-models")
    settings = tiny_settings(root / "app", tiny)
    # the tiny GPT would otherwise run to its token limit on every sentence (seconds of noise each)
    generation = dataclasses.replace(settings.generation, max_audio_tokens=40)
    settings = dataclasses.replace(settings, generation=generation)
    if REAL_WHISPER.is_file():
        folder = settings.workspace_dir / "models" / "whisper"
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / REAL_WHISPER.name
        if not link.exists():
            link.symlink_to(REAL_WHISPER)
    with launched_app(settings) as (_demo, url):
        yield url.rstrip("/")
