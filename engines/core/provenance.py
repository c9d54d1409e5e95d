"""Versions and time stamps: what is installed, what the lock says was tested, and one UTC clock.

The tested versions are read from ``requirements.lock`` (the generated lock ``make`` installs from), so
the lock is the one owner of "which versions work together"; nothing here repeats a version number.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import platform
import re
import subprocess
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from packaging.utils import canonicalize_name

from config import ROOT

log = logging.getLogger(__name__)

LOCK_FILE = ROOT / "requirements.lock"
# The packages whose versions decide whether XTTS inference works at all (transformers 5.24 broke it).
CRITICAL = ("torch", "torchaudio", "transformers", "coqui-tts", "openai-whisper")
# What provenance records (sidecars, eval runs, bug reports), critical ones first.
REPORTED = (*CRITICAL, "coqui-tts-trainer", "gradio", "numpy", "jiwer", "librosa", "soundfile", "faster-whisper")

_LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)")


def utc_now() -> str:
    """The one clock for stamps on disk: UTC, ISO 8601, seconds (``2026-12-01T19:38:34+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def name_stamp(millis: bool = False) -> str:
    """A sortable stamp for run ids and file names (``20261201-193834``, ``-123`` ms with ``millis``).

    Local time, because people read these names; times recorded inside files use ``utc_now``.
    """
    now = datetime.now()
    return f"{now:%Y%m%d-%H%M%S}" + (f"-{now.microsecond // 1000:03d}" if millis else "")


def installed_version(dist: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def locked_versions(lock: Path | None = None) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line in a pip-compile / uv lock (names canonical).

    A package locked at two versions (one per Python version marker) keeps the first line.
    Returns {} when the lock is not there (an install that did not come from this checkout).
    """
    try:
        text = (lock or LOCK_FILE).read_text(encoding="utf-8")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = _LOCK_LINE.match(line.strip())
        if match:
            out.setdefault(canonicalize_name(match.group(1)), match.group(2))
    return out


@dataclass(frozen=True)
class Drift:
    """A critical package installed at another version than the lock tested."""

    package: str
    installed: str | None  # None = not installed
    tested: str

    def describe(self) -> str:
        return f"{self.package} {self.installed or 'not installed'} (tested: {self.tested})"


def _base(version: str) -> str:
    return version.split("+", 1)[0]  # torch 2.11.0+cu130 is the lock's 2.11.0


def version_drift(lock: Path | None = None, packages: tuple[str, ...] = CRITICAL) -> list[Drift]:
    """Critical packages whose installed version differs from the lock's (empty when all match or no lock)."""
    tested = locked_versions(lock)
    drift = []
    for name in packages:
        want = tested.get(canonicalize_name(name))
        if want is None:
            continue
        have = installed_version(name)
        if have is None or _base(have) != _base(want):
            drift.append(Drift(name, have, want))
    return drift


def drift_message(drift: list[Drift]) -> str | None:
    """One sentence for the log and the System panel, or None when nothing drifted."""
    if not drift:
        return None
    return (
        "Installed versions differ from the tested lock: "
        + ", ".join(d.describe() for d in drift)
        + ". XTTS inference may fail (transformers 5.24 breaks it); install with `make run` or "
        "`pip install -r requirements.lock`."
    )


def warn_on_drift() -> str | None:
    """Log the drift warning once at startup; returns the message (None when versions match)."""
    message = drift_message(version_drift())
    if message:
        log.warning("%s", message)
    return message


@functools.lru_cache(maxsize=1)
def app_version() -> str:
    """XTTS Lab's own version (pyproject.toml)."""
    try:
        return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The checkout's short commit, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Python, XTTS Lab and library versions for provenance records and the System panel."""
    out = {"python": platform.python_version(), "xtts_lab": app_version()}
    for dist in REPORTED:
        out[dist] = installed_version(dist) or "not installed"
    return out


__all__ = [
    "CRITICAL",
    "Drift",
    "app_version",
    "drift_message",
    "git_commit",
    "installed_version",
    "locked_versions",
    "utc_now",
    "version_drift",
    "versions",
    "warn_on_drift",
]


def weights_sha256(path: str | Path) -> str:
    """SHA-256 of a weights file (of ``model.bin``/``model.pth``/… for a folder), "" when there is none.

    Cached per (path, size, mtime): a multi-GB checkpoint is hashed once per process, and again only when it
    changes.
    """
    p = Path(path)
    if p.is_dir():
        p = next(
            (p / n for n in ("model.bin", "model.pth", "model.safetensors", "pytorch_model.bin") if (p / n).is_file()),
            p,
        )
    if not p.is_file():
        return ""
    stat = p.stat()
    return _sha256_cached(str(p.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    from engines.core.audio import file_sha256

    return file_sha256(path)
