"""openai-python's tests/api_resources/audio against XTTS Lab: their own conftest stays; only
TEST_API_BASE_URL (set by run_peers.py) points their clients at our /v1 instead of their mock server."""

from __future__ import annotations

import pytest
from peer_names import rename_items


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rename_items(items)
