"""One object the UI, the CLI and tests use for script projects: the store in the workspace, the TTS engine,
the Whisper that checks retakes and the workspace's pronunciation map, wired together."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from engines.core.progress import LogFn, ProgressFn
from engines.scripts import export as exporting
from engines.scripts.generate import GenerationSummary, generate, regenerate
from engines.scripts.project import Project, ProjectStore
from engines.tts import pronounce
from engines.tts.retakes import RetakeChecker

if TYPE_CHECKING:
    from config import Settings
    from engines.asr.engine import ASREngine
    from engines.tts.engine import TTSEngine

SCRIPTS_DIR = "scripts"  # workspace/scripts/<project>/


class ScriptStudio:
    """Script projects in ``workspace/scripts``, spoken by ``tts`` and checked by ``asr``."""

    def __init__(self, settings: Settings, tts: TTSEngine, asr: ASREngine | None) -> None:
        self.settings = settings
        self.tts = tts
        self.asr = asr
        self.store = ProjectStore(settings.workspace_dir / SCRIPTS_DIR)

    def pronunciation(self) -> pronounce.PronunciationMap:
        """The workspace's pronunciation map (read on every call, so edits apply at once)."""
        return pronounce.load(self.settings.workspace_dir)

    def checker(self, project: Project) -> RetakeChecker | None:
        if project.retakes is None or self.asr is None:
            return None
        return RetakeChecker.whisper(self.asr, project.retakes)

    def generate(
        self,
        name: str,
        *,
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationSummary:
        """Generate every line not done yet (see ``engines.scripts.generate.generate``)."""
        return generate(
            self.store,
            name,
            self.tts,
            checker=self.checker,
            pronunciation=self.pronunciation(),
            progress=progress,
            log_fn=log_fn,
            cancel=cancel,
        )

    def regenerate(self, name: str, line_id: str, *, progress: ProgressFn | None = None) -> GenerationSummary:
        """One line again with a new seed; the other lines' files are not touched."""
        return regenerate(
            self.store,
            name,
            line_id,
            self.tts,
            checker=self.checker,
            pronunciation=self.pronunciation(),
            progress=progress,
        )

    def export(self, name: str, fmt: str = "wav", speakers: bool = True) -> exporting.Export:
        return exporting.export(self.store, name, fmt, speakers)


__all__ = ["SCRIPTS_DIR", "ScriptStudio"]
