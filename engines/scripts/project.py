"""A script project on disk: ``workspace/scripts/<name>/project.json`` and ``lines/<line id>.wav``.

project.json holds the lines in their order (id, speaker label, text, pause after, and the generated take when
there is one), the voice of every speaker label, and the generation settings. Every write is atomic (temp file
+ rename), and a line's WAV is written before the project records it, so a project killed at any moment is
consistent: at worst one line's WAV exists that project.json does not name yet, and it is generated again.

A line is *done* when its take's ``key`` (a hash of everything its audio depends on: spoken text, voice,
language, model, options, seed, retake settings) matches the line as it is now and its WAV is there. Editing a
line's text or voice makes only that line stale; reordering changes nothing a line's audio depends on.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engines.core.audio import write_json
from engines.core.errors import InputError
from engines.core.names import check_name, xtts_language
from engines.core.options import TTSOptions
from engines.core.provenance import utc_now
from engines.scripts.parse import ParsedScript, parse_script
from engines.tts.retakes import RetakeOptions, check_options

PROJECT_FILE = "project.json"
LINES_DIR = "lines"
FORMAT_VERSION = 1
DEFAULT_GAP = 0.4  # seconds of silence between lines without a pause markup
DEFAULT_VOICE = ""  # the voice label of lines without one


@dataclass
class VoiceChoice:
    """Who speaks a label: a saved voice or a built-in speaker (exactly one)."""

    voice: str | None = None  # a saved voice (workspace/voices/<name>)
    speaker: str | None = None  # a built-in speaker of the model

    def describe(self) -> str:
        return f"voice {self.voice}" if self.voice else f"speaker {self.speaker}"


@dataclass
class LineTake:
    """The generated audio of a line."""

    file: str  # relative to the project folder: lines/<id>.wav
    key: str  # fingerprint of what the audio was made from (see ``line_key``)
    seconds: float  # duration of the WAV
    sample_rate: int
    sha256: str
    seed: int | None
    gen_seconds: float
    created: str
    spoken_text: str  # the text after the pronunciation map
    retakes: dict[str, Any] | None = None  # the retake record (RetakeReport.as_dict) when checking was on
    pronunciation: dict[str, Any] | None = None  # the rules that fired


@dataclass
class Line:
    """One row of the script."""

    id: str  # stable across reorders and edits ("L0007"); names the WAV
    text: str
    speaker: str = DEFAULT_VOICE  # label mapped to a voice in Project.voices
    pause_after: float | None = None  # None = the project's gap
    variant: int = 0  # bumped by "regenerate": a new seed for the same text
    take: LineTake | None = None


@dataclass
class Project:
    """Everything about one script project (what project.json holds)."""

    name: str
    lines: list[Line]
    voices: dict[str, VoiceChoice]  # speaker label -> voice; "" = the default voice
    language: str = "en"
    model_id: str | None = None  # None = the TTS engine's default model
    options: TTSOptions = field(default_factory=TTSOptions)
    retakes: RetakeOptions | None = None  # check each line with Whisper and retake failures
    gap: float = DEFAULT_GAP
    lead_in: float = 0.0
    next_id: int = 1
    created: str = ""
    updated: str = ""
    finished: str | None = None  # when the last missing line was generated

    def line(self, line_id: str) -> Line:
        for line in self.lines:
            if line.id == line_id:
                return line
        raise InputError(f"Project {self.name!r} has no line {line_id!r}.")

    def voice_for(self, line: Line) -> VoiceChoice:
        """The voice of a line's label, else the default voice.

        Raises:
            InputError: neither the label nor the default has a voice.
        """
        choice = self.voices.get(line.speaker) or self.voices.get(DEFAULT_VOICE)
        if choice is None:
            raise InputError(
                f"Line {line.id} is spoken by {line.speaker or 'the default voice'!r}, which has no voice. "
                f"Map it to a saved voice or built-in speaker (voices: {', '.join(map(repr, self.voices)) or 'none'})."
            )
        return choice

    def pause_after(self, line: Line) -> float:
        return self.gap if line.pause_after is None else line.pause_after

    def labels(self) -> list[str]:
        """Speaker labels in the order they first appear."""
        seen: list[str] = []
        for line in self.lines:
            if line.speaker not in seen:
                seen.append(line.speaker)
        return seen


# ---------------------------------------------------------------- (de)serialisation


def to_json(project: Project) -> dict[str, Any]:
    data = asdict(project)
    data["format_version"] = FORMAT_VERSION
    return data


def _dataclass(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def from_json(data: dict[str, Any]) -> Project:
    lines = []
    for raw in data.get("lines", []):
        take = raw.get("take")
        lines.append(_dataclass(Line, {**raw, "take": _dataclass(LineTake, take) if take else None}))
    voices = {label: _dataclass(VoiceChoice, v) for label, v in (data.get("voices") or {}).items()}
    retakes = data.get("retakes")
    return _dataclass(
        Project,
        {
            **data,
            "lines": lines,
            "voices": voices,
            "options": _dataclass(TTSOptions, data.get("options") or {}),
            "retakes": _dataclass(RetakeOptions, retakes) if retakes else None,
        },
    )


# ---------------------------------------------------------------- fingerprints


def line_seed(project: Project, line: Line) -> int:
    """A line's seed: fixed by the project's seed, the line's id and its variant (not by its position, so a
    reorder changes no audio)."""
    base = project.options.seed if project.options.seed is not None else 1234
    digits = int("".join(c for c in line.id if c.isdigit()) or 0)
    return (int(base) + 7_919 * digits + 104_729 * line.variant) % 2**31


def line_key(project: Project, line: Line, spoken_text: str) -> str:
    """What a line's audio depends on, hashed: a take whose key differs is stale."""
    choice = project.voice_for(line)
    parts = {
        "text": spoken_text,
        "voice": asdict(choice),
        "language": project.language,
        "model_id": project.model_id,
        "options": asdict(project.options),
        "seed": line_seed(project, line),
        "retakes": asdict(project.retakes) if project.retakes else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- the store


def parse_voices(text: str) -> dict[str, VoiceChoice]:
    """``label = voice`` lines (the UI's voice box) -> voices. ``voice`` is ``speaker:<name>`` for a built-in
    speaker, else a saved voice; the label ``*`` (or an empty one) is the default voice.

    Raises:
        InputError: a line without ``=``.
    """
    voices: dict[str, VoiceChoice] = {}
    for number, raw in enumerate((text or "").splitlines(), 1):
        row = raw.strip()
        if not row or row.startswith("#"):
            continue
        if "=" not in row:
            raise InputError(f"Voices line {number}: write 'Label = saved voice' or 'Label = speaker:<name>'.")
        label, value = (part.strip() for part in row.split("=", 1))
        label = DEFAULT_VOICE if label in ("", "*") else label
        if not value:
            raise InputError(f"Voices line {number}: {label or '*'!r} has no voice after '='.")
        if value.lower().startswith("speaker:"):
            voices[label] = VoiceChoice(speaker=value.split(":", 1)[1].strip())
        else:
            voices[label] = VoiceChoice(voice=value)
    return voices


def format_voices(voices: dict[str, VoiceChoice]) -> str:
    """The inverse of ``parse_voices``."""
    rows = []
    for label, choice in voices.items():
        value = f"speaker:{choice.speaker}" if choice.speaker else (choice.voice or "")
        rows.append(f"{label or '*'} = {value}")
    return "\n".join(rows)


class ProjectStore:
    """The projects under one folder (``workspace/scripts``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, name: str) -> Path:
        return self.root / check_name(name, "script project")

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / PROJECT_FILE).is_file())

    def exists(self, name: str) -> bool:
        return (self.folder(name) / PROJECT_FILE).is_file()

    def load(self, name: str) -> Project:
        """Raises: InputError: no such project, or its project.json is unreadable."""
        path = self.folder(name) / PROJECT_FILE
        if not path.is_file():
            known = ", ".join(self.names()) or "none yet"
            raise InputError(f"No script project named {name!r}. Projects: {known}.")
        try:
            return from_json(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise InputError(f"{path} is not a readable project file ({exc}).") from exc

    def save(self, project: Project) -> Path:
        project.updated = utc_now()
        return write_json(self.folder(project.name) / PROJECT_FILE, to_json(project))

    def wav_path(self, project: Project, line: Line) -> Path:
        return self.folder(project.name) / LINES_DIR / f"{line.id}.wav"

    def create(
        self,
        name: str,
        script: str,
        voices: dict[str, VoiceChoice],
        *,
        language: str = "en",
        model_id: str | None = None,
        options: TTSOptions | None = None,
        retakes: RetakeOptions | None = None,
        gap: float = DEFAULT_GAP,
        overwrite: bool = False,
    ) -> Project:
        """Parse a script and save it as a new project (nothing generated yet).

        Raises:
            InputError: bad name, script, voices, language or retake options; the name is taken.
        """
        folder = self.folder(name)
        if (folder / PROJECT_FILE).exists() and not overwrite:
            raise InputError(f"A script project named {name!r} already exists; open it or choose another name.")
        parsed = parse_script(script)
        project = Project(
            name=folder.name,
            lines=[],
            voices=dict(voices),
            language=xtts_language(language),
            model_id=model_id or None,
            options=options or TTSOptions(),
            retakes=check_options(retakes) if retakes else None,
            gap=_check_gap(gap),
            created=utc_now(),
        )
        _set_lines(project, parsed)
        for line in project.lines:
            project.voice_for(line)  # every label has a voice before anything is generated
        if folder.exists() and overwrite:
            shutil.rmtree(folder)
        self.save(project)
        return project

    def delete(self, name: str) -> None:
        folder = self.folder(name)
        if not (folder / PROJECT_FILE).is_file():
            raise InputError(f"No script project named {name!r}.")
        shutil.rmtree(folder)


def _check_gap(gap: float) -> float:
    if isinstance(gap, bool) or not isinstance(gap, int | float) or not 0.0 <= float(gap) <= 10.0:
        raise InputError(f"The gap between lines must be 0-10 seconds; got {gap!r}.")
    return float(gap)


def _set_lines(project: Project, parsed: ParsedScript) -> None:
    project.lead_in = parsed.lead_in
    for row in parsed.lines:
        project.lines.append(Line(f"L{project.next_id:04d}", row.text, row.speaker, row.pause_after))
        project.next_id += 1


# ---------------------------------------------------------------- edits (no audio is touched)


def edit_line(
    project: Project, line_id: str, *, text: str | None = None, speaker: str | None = None, pause_after: Any = ...
) -> Line:
    """Change one line (its audio becomes stale when its text or voice changed; other lines are untouched).

    Raises:
        InputError: unknown line, empty text, or a label without a voice.
    """
    line = project.line(line_id)
    if text is not None:
        if not text.strip():
            raise InputError(f"Line {line_id}: the text is empty. Delete the line instead, or type its text.")
        line.text = text.strip()
    if speaker is not None:
        line.speaker = speaker.strip()
        project.voice_for(line)
    if pause_after is not ...:
        line.pause_after = None if pause_after is None else max(0.0, float(pause_after))
    return line


def move_line(project: Project, line_id: str, offset: int) -> int:
    """Move a line up (negative) or down; returns its new index (clamped to the ends)."""
    line = project.line(line_id)
    index = project.lines.index(line)
    target = max(0, min(len(project.lines) - 1, index + offset))
    project.lines.insert(target, project.lines.pop(index))
    return target


def regenerate_line(project: Project, line_id: str) -> Line:
    """Ask for a new take of one line: a new seed, so ``generate`` makes it again."""
    line = project.line(line_id)
    line.variant += 1
    return line


__all__ = [
    "DEFAULT_GAP",
    "DEFAULT_VOICE",
    "LINES_DIR",
    "PROJECT_FILE",
    "Line",
    "LineTake",
    "Project",
    "ProjectStore",
    "VoiceChoice",
    "edit_line",
    "format_voices",
    "from_json",
    "line_key",
    "line_seed",
    "move_line",
    "parse_voices",
    "regenerate_line",
    "to_json",
]
