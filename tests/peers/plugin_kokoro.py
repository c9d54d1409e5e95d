"""Kokoro-FastAPI's api/tests/integration against XTTS Lab (their conftest left out: --noconftest).

Their ``server_url`` waits on GET /health (Kokoro's own route); ours is already up when this runs.
Their ``whisper_model`` is faster-whisper ``small`` from the Hub (no network here): ours transcribes
through our own /v1/audio/transcriptions with the real Whisper tiny.en, same call shape.
"""

from __future__ import annotations

import types
from pathlib import Path

import httpx
import openai
import pytest
from peer_names import base_url, rename_items

WHISPER_ID = "whisper-tiny.en"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rename_items(items)


@pytest.fixture(scope="session")
def server_url() -> str:
    return base_url()


@pytest.fixture(scope="session")
def openai_client(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="not-needed", timeout=300)


class _ApiWhisper:
    """faster-whisper's ``transcribe(path, beam_size=, language=)`` over our API."""

    def transcribe(self, path: str, beam_size: int = 1, language: str | None = None):
        with Path(path).open("rb") as f:
            response = httpx.post(
                f"{base_url()}/v1/audio/transcriptions",
                files={"file": (Path(path).name, f, "audio/wav")},
                data={"model": WHISPER_ID, "response_format": "verbose_json"},
                timeout=300,
            )
        response.raise_for_status()
        body = response.json()
        segments = [types.SimpleNamespace(text=s["text"]) for s in body.get("segments") or []]
        return segments, types.SimpleNamespace(language=body.get("language"))


@pytest.fixture(scope="session")
def whisper_model() -> _ApiWhisper:
    return _ApiWhisper()
