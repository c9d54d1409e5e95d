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
    kept_seconds: float = 0.0  # seconds of clips in the training lists
    other_speaker_seconds: float = 0.0  # seconds dropped as another speaker (or a turn change inside a clip)
    quality_dropped_seconds: float = 0.0  # seconds dropped under the quality thresholds
    quality_flagged_seconds: float = 0.0  # seconds kept but flagged under the quality thresholds
    cleaned_seconds: float = 0.0  # seconds that went through the audio clean-up step


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
    dropped_clips: int = 0  # clips the screening dropped (restorable in review)
    # seconds in total: kept, other_speaker, quality_dropped, quality_flagged, cleaned
    outcome: dict[str, float] = field(default_factory=dict)
    screening: dict[str, Any] = field(default_factory=dict)  # target, thresholds, encoder (as in dataset.json)

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0

    ROW_HEADERS = (
        "source",
        "status",
        "detail",
        "clips",
        "seconds",
        "kept s",
        "other speaker s",
        "quality dropped s",
        "quality flagged s",
        "cleaned s",
    )

    def rows(self) -> list[list[Any]]:
        """Per-file rows for a table (``ROW_HEADERS``), then a total row when screening ran."""
        rows: list[list[Any]] = [
            [
                f.source,
                f.status,
                f.detail or f.reason,
                f.clips,
                round(f.seconds, 2),
                round(f.kept_seconds, 2),
                round(f.other_speaker_seconds, 2),
                round(f.quality_dropped_seconds, 2),
                round(f.quality_flagged_seconds, 2),
                round(f.cleaned_seconds, 2),
            ]
            for f in self.files
        ]
        if self.outcome:
            o = self.outcome
            rows.append(
                [
                    "(total)",
                    "",
                    "",
                    self.clips,
                    round(sum(f.seconds for f in self.files), 2),
                    o.get("kept", 0.0),
                    o.get("other_speaker", 0.0),
                    o.get("quality_dropped", 0.0),
                    o.get("quality_flagged", 0.0),
                    o.get("cleaned", 0.0),
                ]
            )
        return rows

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
        if self.outcome:
            o = self.outcome
            lines.append(
                f"Seconds kept {o.get('kept', 0):.1f}, dropped as another speaker {o.get('other_speaker', 0):.1f}, "
                f"dropped for quality {o.get('quality_dropped', 0):.1f}, flagged for quality "
                f"{o.get('quality_flagged', 0):.1f}"
                + (f", cleaned {o['cleaned']:.1f}" if o.get("cleaned") else "")
                + "."
            )
        if self.dropped_clips:
            lines.append(
                f"{self.dropped_clips} clip(s) dropped by the speaker and quality checks: see the dropped list in "
                "review (reason and score; restore puts a clip back)."
            )
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
    sim: float | None = None  # speaker similarity to the target (Resemblyzer cosine; None = not scored)
    sig: float | None = None  # DNSMOS speech quality (1-5)
    bak: float | None = None  # DNSMOS background: low = noise or music (1-5)
    ovrl: float | None = None  # DNSMOS overall (1-5)
    cps: float | None = None  # characters per second of speech


@dataclass
class DroppedRow:
    """A clip the screening (or the user) dropped: out of the training lists, restorable."""

    clip: str
    reason: str  # why, with the score that decided it
    duration: float
    text: str
    speaker: str
    source: str
    sim: float | None = None
    bak: float | None = None
    cps: float | None = None


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
