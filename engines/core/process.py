"""Is a process alive, and is it one of our training workers? Used by training (run state) and datasets (the
in-use check before a delete), which must not import each other."""

from __future__ import annotations

import os
from pathlib import Path


def process_exists(pid: int) -> bool:
    """Whether a process with this pid exists (any owner; a zombie still counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` is a live (not zombie) training worker; a recycled pid does not count."""
    if not pid or not process_exists(pid):
        return False
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state in ("Z", "X"):  # exited, not yet reaped by its parent
                return False
            cmdline = (proc / "cmdline").read_bytes()
            # the worker itself, or trainer.distribute launching it (--script .../engines/training/worker.py)
            if b"engines.training.worker" not in cmdline and b"engines/training/worker.py" not in cmdline:
                return False
        except (OSError, IndexError):
            pass
    return True
