"""Generating a script project line by line, resumably.

``generate`` makes every line that is not done (see ``engines.scripts.project``) and skips the rest, so a
project stopped by a crash, a kill or a restart resumes where it stopped. Each line is written to its WAV
(atomically), then recorded in project.json (atomically), before the next one starts. ``regenerate`` makes one
line again with a new seed and touches no other line's file.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engines.core.audio import file_sha256, save_wav
from engines.core.errors import CancelledError
from engines.core.options import TTSOptions
from engines.core.progress import LogFn, ProgressFn, log_info, no_progress
from engines.core.provenance import utc_now
from engines.scripts.project import Line, LineTake, Project, ProjectStore, line_key, line_seed, regenerate_line
from engines.tts.retakes import RetakeChecker

if TYPE_CHECKING:
    from engines.tts.engine import TTSEngine
    from engines.tts.pronounce import PronunciationMap

log = logging.getLogger(__name__)

CheckerFactory = Callable[[Project], RetakeChecker | None]  # the retake checker for a project (None = off)


@dataclass
class GenerationSummary:
    """What one ``generate`` call did."""

    total: int  # lines in the project
    generated: list[str] = field(default_factory=list)  # line ids made now
    skipped: int = 0  # lines already done (resumed past)
    retaken: int = 0  # generated lines that needed more than one take
    failed_checks: int = 0  # generated lines whose best take still failed the check
    seconds: float = 0.0

    def message(self) -> str:
        text = f"Generated {len(self.generated)} line(s) in {self.seconds:.1f} s"
        if self.skipped:
            text += f"; {self.skipped} already done (skipped)"
        if self.retaken:
            text += f"; {self.retaken} needed a retake"
        if self.failed_checks:
            text += f"; {self.failed_checks} still fail the check (best take kept)"
        return text + "."


def eta_text(done: int, todo: int, elapsed: float) -> str:
    """ "Line 3/10, about 1 min 20 s left" from the mean time per line so far."""
    if done == 0:
        return f"Line 1/{todo}"
    left = elapsed / done * (todo - done)
    minutes, seconds = divmod(round(left), 60)
    when = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    return f"Line {done + 1}/{todo}, about {when} left"


def is_done(store: ProjectStore, project: Project, line_index: int, pmap: PronunciationMap | None) -> bool:
    line = project.lines[line_index]
    if line.take is None or not (store.folder(project.name) / line.take.file).is_file():
        return False
    return line.take.key == line_key(project, line, spoken(pmap, line.text, project.language))


def spoken(pmap: PronunciationMap | None, text: str, language: str) -> str:
    return pmap.apply(text, language)[0] if pmap else text


def pending_lines(store: ProjectStore, project: Project, pmap: PronunciationMap | None = None) -> list[str]:
    """Ids of the lines still to generate, in order."""
    return [line.id for i, line in enumerate(project.lines) if not is_done(store, project, i, pmap)]


def generate(
    store: ProjectStore,
    name: str,
    tts: TTSEngine,
    *,
    checker: CheckerFactory | None = None,
    pronunciation: PronunciationMap | None = None,
    only: list[str] | None = None,
    progress: ProgressFn | None = None,
    log_fn: LogFn | None = None,
    cancel: threading.Event | None = None,
    voice_files: Callable[[str], list[Path]] | None = None,
) -> GenerationSummary:
    """Generate the project's lines that are not done yet (all of them the first time).

    Args:
        store: where the project lives.
        name: the project.
        tts: the TTS engine (``synthesize`` per line, never saved to outputs/tts).
        checker: builds the retake checker when the project has retakes on (``RetakeChecker.whisper``).
        pronunciation: the pronunciation map applied to every line.
        only: restrict to these line ids (still skipping the done ones).
        progress, log_fn: progress with an ETA, and status lines.
        cancel: set to stop after the current line (what is done stays done).
        voice_files: saved voice name -> reference clips (default ``tts.voice_files``).

    Returns:
        What was generated and skipped.

    Raises:
        InputError / AudioError / MissingWeightsError: a line cannot be spoken (the lines before it are kept).
        CancelledError: ``cancel`` was set (the lines before it are kept).
    """
    progress = progress or no_progress
    log_fn = log_fn or log_info
    voice_files = voice_files or tts.voice_files
    started = time.perf_counter()
    project = store.load(name)
    todo = [lid for lid in pending_lines(store, project, pronunciation) if only is None or lid in only]
    summary = GenerationSummary(total=len(project.lines), skipped=len(project.lines) - len(todo))
    retakes = checker(project) if checker is not None and project.retakes is not None else None
    if summary.skipped and todo:
        log_fn(f"Resuming {name}: {summary.skipped} line(s) already done, {len(todo)} to go.")
    for n, line_id in enumerate(todo):
        if cancel is not None and cancel.is_set():
            raise CancelledError(f"Stopped after {n} line(s); run Generate again to resume.")
        progress(n / max(len(todo), 1), desc=eta_text(n, len(todo), time.perf_counter() - started))
        line = project.line(line_id)
        choice = project.voice_for(line)
        options = _with_seed(project, line)
        result = tts.synthesize(
            line.text,
            model_id=project.model_id,
            reference=voice_files(choice.voice) if choice.voice else None,
            speaker=choice.speaker,
            options=options,
            save=False,
            retakes=retakes,
            pronunciation=pronunciation,
            cancel=cancel,
        )
        path = store.wav_path(project, line)
        save_wav(path, result.audio, result.sample_rate)
        text_spoken = result.pronunciation["spoken_text"] if result.pronunciation else line.text
        line.take = LineTake(
            file=str(path.relative_to(store.folder(project.name))),
            key=line_key(project, line, text_spoken),
            seconds=round(result.audio_seconds, 4),
            sample_rate=result.sample_rate,
            sha256=file_sha256(path),
            seed=result.seed,
            gen_seconds=round(result.gen_seconds, 3),
            created=utc_now(),
            spoken_text=text_spoken,
            retakes=result.retakes,
            pronunciation=result.pronunciation,
        )
        if result.retakes:
            summary.retaken += int(result.retakes["retaken"] > 0)
            summary.failed_checks += int(result.retakes["failed"] > 0)
        store.save(project)
        summary.generated.append(line_id)
        log.info("Script %s: line %s done (%.2f s of audio)", name, line_id, result.audio_seconds)
    if project.finished is None and not pending_lines(store, project, pronunciation):
        project.finished = utc_now()
        store.save(project)
    summary.seconds = time.perf_counter() - started
    progress(1.0, desc=summary.message())
    return summary


def regenerate(
    store: ProjectStore,
    name: str,
    line_id: str,
    tts: TTSEngine,
    **kwargs: object,
) -> GenerationSummary:
    """Make one line again with a new seed; every other line's WAV stays as it is.

    Args:
        kwargs: as for ``generate`` (checker, pronunciation, progress, log_fn, cancel, voice_files).
    """
    project = store.load(name)
    regenerate_line(project, line_id)
    store.save(project)
    return generate(store, name, tts, only=[line_id], **kwargs)  # type: ignore[arg-type]


def _with_seed(project: Project, line: Line) -> TTSOptions:
    return dataclasses.replace(project.options, language=project.language, seed=line_seed(project, line))


__all__ = ["GenerationSummary", "eta_text", "generate", "pending_lines", "regenerate"]
