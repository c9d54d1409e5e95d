"""What a build, a review or a validation returns (plain dataclasses; the page shows them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# why a cut clip is dropped (DatasetReport.dropped counts them per reason)
DROP_REASONS = ("no transcript", "too short", "too long", "silent", "clipped")


@dataclass
class FileReport:
    """What happened to one source file."""

    source: str  # name as the user knows it (upload name, zip/entry, folder-relative path)
    status: str  # "kept" or "skipped"
    reason: str = ""  # short category: "not audio", "silent", "no transcript", "duplicate", ...
    detail: str = ""  # the full explanation
    clips: int = 0  # clips kept from this file
    seconds: float = 0.0  # length of the recording
    speaker: str = ""
    transcript: str = ""  # "supplied" (transcripts file) or "whisper"
    sha256: str = ""
    reused: bool = False  # finished by an earlier run: skipped this time


@dataclass
class DatasetReport:
    """The result of a build."""

    name: str
    path: Path
    language: str
    files: list[FileReport] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # clips dropped, per reason
    clips: int = 0
    seconds: float = 0.0  # total length of the kept clips
    train_clips: int = 0
    eval_clips: int = 0
    flagged: int = 0  # kept clips with a quality flag (see load_table)
    transcripts_missing: list[str] = field(default_factory=list)  # files the transcripts file has no row for
    transcripts_extra: list[str] = field(default_factory=list)  # rows that name no input file
    reused: int = 0  # files skipped because an earlier run finished them
    notices: list[str] = field(default_factory=list)

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0

    def rows(self) -> list[list[Any]]:
        """Per-file rows for a table: source, status, reason, clips, seconds."""
        return [[f.source, f.status, f.detail or f.reason, f.clips, round(f.seconds, 2)] for f in self.files]

    def summary(self) -> str:
        """A few lines for the user."""
        kept = sum(f.status == "kept" for f in self.files)
        lines = [
            f"Dataset '{self.name}' ({self.language}): {self.clips} clips, {self.minutes:.1f} min "
            f"({self.train_clips} train / {self.eval_clips} eval) from {kept} of {len(self.files)} files.",
        ]
        if self.reused:
            lines.append(f"{self.reused} file(s) already prepared - skipped.")
        if self.dropped:
            lines.append("Clips dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) + ".")
        if self.flagged:
            lines.append(f"{self.flagged} clip(s) flagged: see the flags column before training.")
        if self.transcripts_missing:
            lines.append(
                f"No transcript row for {len(self.transcripts_missing)} file(s) (Whisper used): "
                + ", ".join(self.transcripts_missing[:10])
                + (" ..." if len(self.transcripts_missing) > 10 else "")
            )
        if self.transcripts_extra:
            lines.append(
                f"{len(self.transcripts_extra)} transcript row(s) name no input file: "
                + ", ".join(self.transcripts_extra[:10])
                + (" ..." if len(self.transcripts_extra) > 10 else "")
            )
        lines.extend(self.notices)
        return "\n".join(lines)


@dataclass
class ClipRow:
    """One clip of a dataset, as the review table shows it."""

    clip: str  # file name under wavs/
    duration: float  # seconds
    text: str
    speaker: str
    split: str  # "train" or "eval"
    flags: str = ""  # quality flags, "; "-separated ("" = none)


@dataclass
class DatasetSummary:
    """One row of the datasets list."""

    name: str
    clips: int
    minutes: float
    language: str
    created: str
    speakers: list[str]
    status: str  # "ready", "incomplete" (a build stopped; re-run it to resume), "failed" (see info()["error"];
    # re-run or delete it) or "external"


@dataclass
class DatasetStats:
    """Numbers for the review panel."""

    clips: int
    seconds: float
    train_clips: int
    eval_clips: int
    flagged: int
    speakers: dict[str, int]  # clips per speaker
    histogram: list[tuple[str, int]]  # ("03-04 s", clips) per 1-second bin
    warning: str | None  # e.g. too little speech

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0


@dataclass
class SaveResult:
    """What save_table changed."""

    edited: int
    deleted: int
    clips: int  # clips left


@dataclass
class Mismatch:
    """A clip whose re-transcription differs from its text."""

    clip: str
    text: str
    asr_text: str
    cer: float


@dataclass
class ValidationReport:
    """The result of validate()."""

    checked: int
    threshold: float
    model_id: str
    mismatches: list[Mismatch]
    seconds: float = 0.0
