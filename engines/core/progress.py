"""The one progress protocol of every engine.

- ``progress(fraction, desc="...")``: fraction in [0, 1], the description by keyword (gr.Progress takes
  exactly this call, so a page passes its gr.Progress straight through).
- ``log_fn(message)``: one status line for the user (a page's log box, print, or the logger).

Engines take both as optional keyword arguments named ``progress`` and ``log_fn``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

ProgressFn = Callable[..., Any]  # progress(fraction: float, desc: str = "")
LogFn = Callable[[str], Any]

log = logging.getLogger(__name__)


def no_progress(fraction: float, desc: str = "") -> None:
    """A progress callback that shows nothing."""
    return None


def log_info(message: str) -> None:
    """A log_fn that sends status lines to the logger (engines' default when the caller gives none)."""
    log.info("%s", message)


class ConsoleProgress:
    """Progress for scripts: a tqdm bar driven by ``progress(fraction, desc=...)`` calls."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=1000, unit="‰", leave=False)

    def __call__(self, fraction: float, desc: str | None = None) -> None:
        self.bar.n = int(max(0.0, min(1.0, fraction)) * 1000)
        if desc:
            self.bar.set_description(desc[:60])
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
