"""Saved voices: named folders of reference clips (workspace/voices, then the shipped samples/voices)."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from config import Settings
from engines.core.audio import AUDIO_EXTENSIONS
from engines.core.errors import InputError
from engines.core.names import check_voice_name
from engines.tts.references import decode_reference

log = logging.getLogger(__name__)


class VoiceLibrary:
    """Lists, finds and saves voices by name; the name rule is ``engines.core.names.check_voice_name``."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        """
        Args:
            settings: returns the engine's current settings (read on each use, so a replaced one applies).
        """
        self._settings = settings

    def _roots(self) -> list[Path]:
        settings = self._settings()
        shipped = settings.path("samples_dir")  # a required setting, so never None
        return [settings.workspace_sub("voices"), *([shipped / "voices"] if shipped is not None else [])]

    @staticmethod
    def _audio_files(folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)

    def names(self) -> list[str]:
        """Saved voices (workspace/voices) then shipped ones (samples/voices), by name."""
        names: list[str] = []
        for root in self._roots():
            if not root.is_dir():
                continue
            for folder in sorted(root.iterdir(), key=lambda p: p.name.lower()):
                if folder.name not in names and not folder.name.startswith(".") and self._audio_files(folder):
                    names.append(folder.name)
        return names

    def files(self, name: str) -> list[Path]:
        """The reference clips of a saved voice.

        Raises:
            InputError: unknown or unsafe name.
        """
        name = check_voice_name(name)
        for root in self._roots():
            files = self._audio_files(root / name)
            if files:
                return files
        known = ", ".join(self.names()) or "none yet"
        raise InputError(f"No saved voice named {name!r}. Saved voices: {known}.")

    def save(self, name: str, files: Sequence[Path | str], overwrite: bool = False) -> Path:
        """Copy reference clips to workspace/voices/<name>/ after checking each one is usable.

        See ``TTSEngine.save_voice``.
        """
        name = check_voice_name(name)
        paths = [Path(f) for f in files or [] if f]
        if not paths:
            raise InputError("No clips to save: upload or record a reference clip first.")
        settings = self._settings()
        for p in paths:
            decode_reference(p, settings)  # refuse non-audio, too short and silent clips now, not at synthesis
        root = settings.workspace_sub("voices")
        target = root / name
        if target.exists() and not overwrite:
            raise InputError(f"A voice named {name!r} already exists; choose another name.")
        # Copied into a hidden staging folder first, so a failed copy never leaves half a voice.
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
        try:
            used: set[str] = set()
            for p in paths:
                base = re.sub(r"[^\w.-]+", "_", p.stem).strip("._") or "clip"
                candidate, n = f"{base}{p.suffix.lower()}", 2
                while candidate in used:
                    candidate, n = f"{base}-{n}{p.suffix.lower()}", n + 1
                used.add(candidate)
                shutil.copy2(p, staging / candidate)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        log.info("Saved voice %s (%d clip(s)) in %s", name, len(paths), target)
        return target
