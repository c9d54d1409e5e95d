"""speaches' tests/ against XTTS Lab: their conftest is left out (--noconftest); these fixtures replace it.

Their fixtures build speaches in-process (ASGITransport); ours point the same clients at the running app.
``actual_openai_client`` (their reference runs against OpenAI itself) is pointed at us too: those tests
record what OpenAI does, which is what we promise.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import re
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from openai import AsyncOpenAI
from peer_names import base_url, rename_items

TIMEOUT = httpx.Timeout(300.0)
_TYPE_ALIAS = re.compile(r"^type (\w+) = ", re.MULTILINE)


class _Py311Loader(importlib.machinery.SourceFileLoader):
    """speaches needs Python 3.12 for its ``type X = ...`` aliases; ours is 3.11, so each such line is
    read as ``X = ...`` while their module is imported (their file on disk is unchanged)."""

    def source_to_code(self, data, path, *, _optimize=-1):  # type: ignore[override]
        return compile(_TYPE_ALIAS.sub(r"\1 = ", data.decode()), path, "exec", dont_inherit=True)


class _SpeachesFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        if not fullname.startswith("speaches"):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            spec.loader = _Py311Loader(fullname, spec.origin)
        return spec


sys.meta_path.insert(0, _SpeachesFinder())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rename_items(items)


@pytest_asyncio.fixture()
async def aclient() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url(), timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def openai_client() -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{base_url()}/v1", api_key="cant-be-empty", max_retries=0, timeout=300)


@pytest.fixture
def actual_openai_client() -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{base_url()}/v1", api_key="cant-be-empty", max_retries=0, timeout=300)


@pytest_asyncio.fixture()
async def pull_model_without_cleanup(request: pytest.FixtureRequest, aclient: httpx.AsyncClient) -> None:
    """speaches downloads models with POST /v1/models/{id} (their extension); ours must already list it."""
    res = await aclient.get(f"/v1/models/{request.param}")
    res.raise_for_status()
