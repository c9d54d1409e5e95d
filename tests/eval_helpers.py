"""Helpers the Eval tests share: holding a run part-way, so a test can act on a run in progress."""

from __future__ import annotations

import threading
from pathlib import Path


def gate_synthesis(tts, monkeypatch, free: int) -> threading.Event:
    """After its first ``free`` calls (the warm-up counts), ``tts.synthesize`` waits for the returned event,
    so a test can act while a run is part-way (a page closed, Stop pressed) without racing the loop.

    ``monkeypatch`` is pytest's (or anything with ``setattr``); the gate gives up after 300 s.
    """
    gate = threading.Event()
    real = tts.synthesize
    calls = {"n": 0}

    def gated(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > free:
            assert gate.wait(300), "the test never opened the gate"
        return real(*args, **kwargs)

    monkeypatch.setattr(tts, "synthesize", gated)
    return gate


def tiny_engines(root: Path, tiny_models):
    """``Engines`` in tiny mode on the CPU with their own workspace and datasets under ``root`` (the session's tiny
    models linked in, not rebuilt)."""
    from engines import Engines
    from tests.browser_helpers import tiny_settings

    return Engines.create(tiny_settings(root, tiny_models))
