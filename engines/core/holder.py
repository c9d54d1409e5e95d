"""One model of a kind resident at a time: load lazily, unload on switch."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from engines.core.device import free_memory

log = logging.getLogger(__name__)
M = TypeVar("M")


@dataclass(frozen=True)
class Loaded:
    """What a holder has in memory."""

    kind: str  # "tts" / "asr"
    key: str  # model id as the user picked it
    device: str  # where it lives
    load_seconds: float  # how long loading took


class ModelHolder(Generic[M]):
    """Keeps at most one model of one kind; ``get`` loads on first use and on switch.

    The lock serialises loads; callers that run the model on a GPU also take the shared GPU lock.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._model: M | None = None
        self._info: Loaded | None = None
        self._lock = threading.RLock()

    def get(self, key: str, device: str, loader: Callable[[str, str], M]) -> M:
        """Return the model for ``key``, loading it (and unloading any other) when needed."""
        with self._lock:
            if self._model is not None and self._info is not None and self._info.key == key:
                return self._model
            self.unload()
            start = time.perf_counter()
            model = loader(key, device)
            self._model = model
            self._info = Loaded(self.kind, key, device, time.perf_counter() - start)
            log.info("Loaded %s model %s on %s in %.1f s", self.kind, key, device, self._info.load_seconds)
            return model

    def unload(self) -> bool:
        """Drop the resident model. Returns True when something was unloaded."""
        with self._lock:
            if self._model is None:
                return False
            log.info("Unloading %s model %s", self.kind, self._info.key if self._info else "?")
            self._model = None
            self._info = None
        free_memory()
        return True

    @property
    def loaded(self) -> Loaded | None:
        return self._info

    @property
    def model(self) -> M | None:
        return self._model
