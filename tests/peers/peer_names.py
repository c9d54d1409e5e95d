"""Shared by the peer-suite plugins: where our app is, and the renaming of the peers' model and voice names.

These plugins are loaded into a peer's own pytest run (``-p plugin_<suite>``) with this folder on
``PYTHONPATH``; the peers have a ``tests`` package of their own, so nothing here imports ours.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from typing import Any

import pytest


def base_url() -> str:
    """Our app's root URL (no ``/v1``), set by run_peers.py."""
    return os.environ["XTTSLAB_PEER_URL"].rstrip("/")


def renames() -> dict[str, str]:
    """The peer's names -> ours (JSON in XTTSLAB_PEER_RENAMES)."""
    return json.loads(os.environ.get("XTTSLAB_PEER_RENAMES", "{}"))


def _renamed(value: Any, table: dict[str, str]) -> Any:
    if isinstance(value, str):
        return table.get(value, value)
    if isinstance(value, tuple):
        return tuple(_renamed(item, table) for item in value)
    if isinstance(value, list):
        return [_renamed(item, table) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _renamed(getattr(value, f.name), table) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **fields)
    return value


def rename_items(items: list[pytest.Item]) -> None:
    """Swap the peer's model/voice names for ours in module constants and in parametrized values.

    Names only: the test bodies, their assertions and their test ids stay as the peer wrote them.
    """
    table = renames()
    if not table:
        return
    seen: set[int] = set()
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and id(module) not in seen:
            seen.add(id(module))
            for name, value in list(vars(module).items()):
                if name.isupper():
                    setattr(module, name, _renamed(value, table))
                elif inspect.isfunction(value) and value.__defaults__:  # e.g. voice="af_bella" in a helper
                    value.__defaults__ = _renamed(value.__defaults__, table)
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            for name, value in list(callspec.params.items()):
                callspec.params[name] = _renamed(value, table)
