"""Which backend a model id or a loaded model belongs to.

The rule: an id some backend claims is that backend's (faster-whisper claims ``"faster-whisper:<size or
folder>"`` and CTranslate2 folders given directly); every other id is the default backend's
(openai-whisper). The model picker lists the default backend's models first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engines.asr.backends.base import Backend


class Registry:
    """The backends an engine can use: one default, the others asked first by id and by model."""

    def __init__(self, default: Backend[Any], *others: Backend[Any]) -> None:
        self.default = default
        self.others = others

    def __iter__(self) -> Iterator[Backend[Any]]:
        yield self.default
        yield from self.others

    def __getitem__(self, name: str) -> Backend[Any]:
        """The backend of this name ("openai-whisper", "faster-whisper")."""
        for backend in self:
            if backend.name == name:
                return backend
        raise KeyError(f"no ASR backend {name!r}; backends: {', '.join(b.name for b in self)}")

    def for_id(self, model_id: str) -> Backend[Any]:
        """The backend that loads this model id."""
        return next((b for b in self.others if b.claims(model_id)), self.default)

    def for_model(self, model: object) -> Backend[Any]:
        """The backend that loaded this model."""
        return next((b for b in self.others if b.owns(model)), self.default)

    def list_models(self) -> list[tuple[str, str]]:
        """Every backend's (label, model_id) pairs, the default backend's first."""
        return [entry for backend in self for entry in backend.list_models()]


__all__ = ["Registry"]
