"""Training datasets from raw recordings: decode, transcribe, cut, check, write coqui-format metadata.

``DatasetEngine`` runs from a script or a notebook without the UI::

    engine = DatasetEngine(load_settings(), asr_engine)
    report = engine.build("my-voice", [Path("recordings/")], "en")
    for row in engine.load_table("my-voice"):
        print(row.clip, row.duration, row.text, row.flags)

On disk (``settings.datasets_dir/<name>/``): ``wavs/*.wav`` (22.05 kHz mono PCM16),
``metadata_train.csv`` and ``metadata_eval.csv`` (coqui format ``audio_file|text|speaker_name``),
``dataset.json`` (language, sources with sha256, settings, per-file report, clip details) and
``.manifest/<sha256>.json``, one per finished source file, so a re-run (or a run after a crash)
skips what is done. Every file is written atomically.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import math
import re
import shutil
import tempfile
import threading
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from config import Settings
from engines.audio import (
    AUDIO_EXTENSIONS,
    clipped_fraction,
    file_sha256,
    is_silent,
    load_audio,
    normalize_loudness,
    resample,
    rms_dbfs,
    save_wav,
    write_json,
)
from engines.dataset_format import SPLITS, WAVS, ClipEntry, read_metadata, write_metadata
from engines.errors import AudioError, BusyError, InputError
from engines.names import check_name as _check_folder_name
from engines.names import is_folder_name, xtts_language
from engines.provenance import app_version, utc_now
from engines.segment import (
    Piece,
    clean_text,
    find_pauses,
    frame_levels,
    plan_clips,
    plan_recut,
    repetition_loop,
    speech_spans,
    split_text,
    text_cer,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050  # XTTS trains on 22.05 kHz audio
ASR_RATE = 16000  # Whisper's input rate
FORMAT_VERSION = 2  # bump when the processing changes, so finished files are redone (2: VAD cuts, per-clip ASR)
ZIP_EXPANSION = 4  # a zip may unpack to at most max_upload_mb x this (zip-bomb guard)
MAX_ZIP_ENTRIES = 20000
MAX_TRANSCRIPTS_MB = 50
TRAINER_MIN_SECONDS = 0.5  # GPTTrainer's dataset drops clips under half a second
MIN_MINUTES = 2.0  # under this much speech a fine-tune learns little: warn
NO_INPUT = "No input files: upload audio files (WAV, MP3, FLAC, OGG, M4A) or a zip of them, or give a server folder."
DROP_REASONS = ("no transcript", "too short", "too long", "silent", "clipped")
# Mismatch threshold, measured with the real Whisper tiny.en (tests/test_datasets_real.py): clean clips
# re-transcribe at CER <= 0.042 against LJSpeech's human transcripts and <= 0.063 against the known text
# of Piper readings; one wrong word in ten (the real mismatch) is CER ~0.19. 0.12 sits between
# the two with room on both sides (bigger Whisper models err less, so it only gets safer). A short clip
# with one misheard word can still cross it: a flag to review, never a deletion.
CER_THRESHOLD = 0.12
CHOICES = ("keep", "asr", "edit")

# transcripts files: header names we recognise (first match wins)
_FILE_COLUMNS = ("audio_file", "file", "filename", "file_name", "path", "wav", "wav_file", "audio", "id", "name")
# The spoken form wins (numbers and abbreviations written out, what the speaker said): these names
# first, then the raw text. A headerless LJSpeech file follows the same rule (its third column).
_SPOKEN_COLUMNS = ("normalized_text", "normalized", "transcription")
_RAW_COLUMNS = ("text", "transcript", "sentence")
_TEXT_COLUMNS = _SPOKEN_COLUMNS + _RAW_COLUMNS
_SPEAKER_COLUMNS = ("speaker_name", "speaker")
SILENCE_FLOOR_DB = -70.0  # default silence_db: under it a file is digital silence or dither


# ----- options and results -----


@dataclass(frozen=True)
class DatasetOptions:
    """How recordings become clips (defaults follow XTTS fine-tuning practice)."""

    model_id: str | None = None  # Whisper model for files without a transcript (None = the ASR default)
    min_clip: float = 1.0  # seconds; shorter cut clips are dropped
    max_clip: float = 11.0  # seconds, padding included; longer segments are split at pauses
    silence_db: float = SILENCE_FLOOR_DB  # RMS dBFS floor: quieter files are silent; above it the VAD decides
    pad_ms: int = 150  # context kept before and after the speech of each clip
    eval_share: float = 0.15  # share of each speaker's clips held out for evaluation
    speaker: str = ""  # speaker name for the speaker column ("" = the dataset name)
    speaker_from_folder: bool = False  # a source folder's (or zip's) subfolder name is the speaker
    speakers: tuple[tuple[str, str], ...] = ()  # (source name, speaker) pairs: per-upload speakers
    max_clipped: float = 0.001  # share of full-scale samples above which a clip counts as clipped
    trainer_max_seconds: float = 11.0  # the trainer's max audio length: longer clips are flagged
    trainer_max_text: int = 200  # the trainer's max text length: longer texts are flagged
    cer_threshold: float = CER_THRESHOLD  # validation: a re-transcription further than this is a mismatch
    overwrite: bool = False  # replace an existing dataset of this name
    seed: int = 1234  # eval split


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


@dataclass
class TranscriptRow:
    """One row of a user's transcripts file."""

    file: str  # as written in the file
    text: str
    speaker: str | None
    line: int  # 1-based line number


@dataclass
class _Source:
    """An input audio file on its way through the build."""

    path: Path
    name: str  # display name
    key: str  # relative path without extension, lower case: matched against transcripts rows
    group: str  # the upload / zip / folder it came from
    folder_speaker: str | None = None  # first subfolder inside a given folder or zip
    sha256: str = ""
    base: str = ""  # clip file name stem


# ----- guards -----


def check_name(name: str) -> str:
    """Validate a dataset name (``engines.names.check_name``)."""
    return _check_folder_name(name, "dataset")


def check_language(language: str) -> str:
    """The dataset language must be one XTTS speaks (``engines.names.xtts_language``)."""
    return xtts_language(language)


def check_options(options: DatasetOptions) -> DatasetOptions:
    """Validate build options at the boundary.

    Raises:
        InputError: what is wrong and what is allowed.
    """
    o = options
    if not 0.3 <= o.min_clip < o.max_clip:
        raise InputError(f"Min clip must be at least 0.3 s and below max clip (got {o.min_clip:g} / {o.max_clip:g} s).")
    if not 1.0 <= o.max_clip <= 30.0:
        raise InputError(f"Max clip must be between 1 and 30 s (got {o.max_clip:g}).")
    if not -100.0 <= o.silence_db <= 0.0:
        raise InputError(f"Silence floor must be between -100 and 0 dBFS (got {o.silence_db:g}).")
    if not 0 <= o.pad_ms <= 1000:
        raise InputError(f"Padding must be between 0 and 1000 ms (got {o.pad_ms}).")
    if not 0.0 < o.eval_share <= 0.5:
        raise InputError(f"Eval share must be above 0 and at most 0.5 (got {o.eval_share:g}).")
    if not 0.0 <= o.max_clipped <= 1.0:
        raise InputError(f"Max clipped share must be between 0 and 1 (got {o.max_clipped:g}).")
    if o.trainer_max_seconds <= 0 or o.trainer_max_text <= 0:
        raise InputError("The trainer limits (max audio seconds, max text length) must be positive.")
    if not 0.0 < o.cer_threshold <= 1.0:
        raise InputError(f"The mismatch threshold (CER) must be above 0 and at most 1 (got {o.cer_threshold:g}).")
    for value in [o.speaker, *(s for pair in o.speakers for s in pair)]:
        if "|" in value or "\n" in value:
            raise InputError(f"Speaker names cannot contain '|' or line breaks: {value!r}.")
    return o


# ----- transcripts files -----


def _key(path: str) -> str:
    """A file reference without extension, as a lower-case posix path: how sources and rows are matched."""
    text = path.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    pure = PurePosixPath(text)
    if pure.suffix.lower() in AUDIO_EXTENSIONS:
        pure = pure.with_suffix("")
    return str(pure).lower()


def parse_transcripts(path: str | Path) -> tuple[list[TranscriptRow], list[str]]:
    """Read a transcripts file.

    Accepted forms (pipe-separated; tab or comma also work for two-column lists):
    ``file|text`` lines; LJSpeech ``id|text|normalized``; or a file with a header naming its columns,
    like coqui's ``audio_file|text|speaker_name`` (quoted fields as the csv module writes them).

    One rule picks the text when a row holds two: the spoken form wins (numbers and abbreviations
    written out, "fourteen fifty-five" rather than "1455"), because that is what the speaker said and
    what the model learns to say. Headerless, that is LJSpeech's third column; with a header, the first
    of ``normalized_text``, ``normalized``, ``transcription`` present, then ``text``, ``transcript``,
    ``sentence``. A row whose spoken-form cell is empty falls back to the raw text. A speaker column
    (``speaker_name`` or ``speaker``) is read here; whether the build trusts it is decided there
    (see ``speaker_column_rule``).

    Args:
        path: the transcripts file (UTF-8).

    Returns:
        (rows, problems): the usable rows, and one message per line that could not be used.

    Raises:
        InputError: missing, too large, not UTF-8, or no usable row.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Transcripts file not found: {path.name}")
    if path.stat().st_size > MAX_TRANSCRIPTS_MB * 2**20:
        raise InputError(f"{path.name} is larger than {MAX_TRANSCRIPTS_MB} MB; that is not a transcripts list.")
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path.name} is not UTF-8 text; save the transcripts list as UTF-8.") from None
    lines = [(i + 1, line) for i, line in enumerate(content.splitlines()) if line.strip()]
    if not lines:
        raise InputError(f"{path.name} is empty.")
    first = lines[0][1]
    delim = "|" if "|" in first else "\t" if "\t" in first else "," if "," in first else None
    if delim is None:
        raise InputError(f"{path.name}: expected 'file|text' lines (or LJSpeech / coqui metadata), got {first[:60]!r}.")
    head = [c.strip().lower() for c in first.split(delim)]
    has_header = head[0] in _FILE_COLUMNS and any(c in _TEXT_COLUMNS for c in head[1:])
    rows: list[TranscriptRow] = []
    problems: list[str] = []
    if has_header:
        # coqui style: the csv module's quoting rules, as coqui's own loader reads it
        reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)), delimiter=delim)
        header = [c.strip().lower() for c in next(reader)]
        file_col = header.index(next(c for c in _FILE_COLUMNS if c in header))
        text_cols = [header.index(c) for c in _TEXT_COLUMNS if c in header]  # spoken form first
        spk_name = next((c for c in _SPEAKER_COLUMNS if c in header), None)
        spk_col = header.index(spk_name) if spk_name else None
        for (number, _), cells in zip(lines[1:], reader):
            if len(cells) <= file_col or all(c >= len(cells) for c in text_cols):
                problems.append(f"line {number}: {len(cells)} column(s), expected {len(header)}")
                continue
            text = next((clean_text(cells[c]) for c in text_cols if c < len(cells) and clean_text(cells[c])), "")
            speaker = clean_text(cells[spk_col]) if spk_col is not None and spk_col < len(cells) else None
            if not cells[file_col].strip() or not text:
                problems.append(f"line {number}: no file or no text")
                continue
            rows.append(TranscriptRow(cells[file_col].strip(), text, speaker or None, number))
    else:
        # LJSpeech / plain lists: split on the delimiter, no quoting (LJSpeech texts hold bare quotes)
        for number, line in lines:
            if delim == ",":
                cells = next(csv.reader([line]))
            else:
                cells = line.split(delim)
            if len(cells) < 2:
                problems.append(f"line {number}: no '{delim}' between file and text")
                continue
            text = cells[2] if len(cells) >= 3 and cells[2].strip() else cells[1]  # the spoken form wins
            text = clean_text(text)
            if not cells[0].strip() or not text:
                problems.append(f"line {number}: no file or no text")
                continue
            rows.append(TranscriptRow(cells[0].strip(), text, None, number))
    if not rows:
        raise InputError(f"{path.name} holds no usable 'file|text' row ({'; '.join(problems[:3])}).")
    return rows, problems


def match_transcripts(
    rows: Sequence[TranscriptRow], sources: Sequence[_Source]
) -> tuple[dict[str, TranscriptRow], list[str], list[str]]:
    """Pair transcript rows with source files (by relative path, else by file name without extension).

    Returns:
        (by source sha256, sources with no row, rows that name no source).
    """
    by_key = {s.key: s for s in sources}
    by_stem: dict[str, list[_Source]] = {}
    for s in sources:
        by_stem.setdefault(PurePosixPath(s.key).name, []).append(s)
    found: dict[str, TranscriptRow] = {}
    extra: list[str] = []
    for row in rows:
        key = _key(row.file)
        source = by_key.get(key)
        if source is None:
            candidates = by_stem.get(PurePosixPath(key).name, [])
            if len(candidates) > 1:  # same file name in several folders: the row's folders decide
                candidates = [s for s in candidates if s.key.endswith(key)] or candidates
            source = candidates[0] if len(candidates) == 1 else None
            if len(candidates) > 1:
                extra.append(f"line {row.line}: {row.file} (matches {len(candidates)} files)")
                continue
        if source is None:
            extra.append(f"line {row.line}: {row.file}")
        elif source.sha256 in found:
            extra.append(f"line {row.line}: {row.file} (second row for this file)")
        else:
            found[source.sha256] = row
    missing = [s.name for s in sources if s.sha256 not in found and s.path.suffix.lower() in AUDIO_EXTENSIONS]
    return found, missing, extra


# ----- helpers -----


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", PurePosixPath(name).stem, flags=re.UNICODE).strip("._")
    return stem[:60] or "audio"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def runs_using(settings: Settings, name: str) -> bool:
    """Default in-use check: a ``workspace/runs/*/run.json`` with status "running" on this dataset.

    A run.json naming a ``pid`` that no longer exists does not count (a crashed run must not lock
    the dataset forever).
    """
    from engines.training import pid_alive

    runs = settings.workspace_dir / "runs"
    if not runs.is_dir():
        return False
    for run_json in runs.glob("*/run.json"):
        data = _read_json(run_json)
        if not data or data.get("status") != "running":
            continue
        dataset = data.get("dataset")
        if dataset is None or (str(dataset) != name and Path(str(dataset)).name != name):
            continue
        pid = data.get("pid")
        if isinstance(pid, int) and not pid_alive(pid):
            continue
        return True
    return False


def assign_split(clips: Mapping[str, Mapping[str, Any]], share: float, seed: int) -> dict[str, str]:
    """Train/eval per clip: ``share`` of all clips go to eval, spread over the speakers.

    The eval count is ``round(share x clips)`` (at least one, never all), shared out in proportion to
    each speaker's clips (largest remainders first; a one-clip speaker can only give its whole clip).
    Every speaker with two clips or more keeps one eval clip even when that goes over the count (a
    speaker the eval set never hears is not evaluated): with many such small speakers the share grows,
    which is why a transcripts file's speaker column must pass ``speaker_column_rule`` to be used.
    Within a speaker the clips are taken in a seeded hash order, so the choice is stable when clips
    are added.

    Returns:
        {clip: "train" | "eval"}; at least one eval clip whenever there are two clips or more.
    """

    def rank(clip: str) -> str:
        return hashlib.sha1(f"{seed}:{clip}".encode()).hexdigest()

    split = {clip: "train" for clip in clips}
    if len(split) < 2:
        return split
    by_speaker: dict[str, list[str]] = {}
    for clip, entry in clips.items():
        by_speaker.setdefault(str(entry.get("speaker", "")), []).append(clip)
    total = min(len(split) - 1, max(1, round(share * len(split))))
    quota = {spk: share * len(names) for spk, names in by_speaker.items()}
    count = {spk: (max(1, int(quota[spk])) if len(names) >= 2 else 0) for spk, names in by_speaker.items()}
    # the rest of the count by largest remainder; a one-clip speaker may give its clip, others keep one
    for spk in sorted(by_speaker, key=lambda k: (-(quota[k] - int(quota[k])), rank(min(by_speaker[k], key=rank)))):
        if sum(count.values()) >= total:
            break
        if count[spk] < max(1, len(by_speaker[spk]) - 1):
            count[spk] += 1
    for spk, names in by_speaker.items():
        for clip in sorted(names, key=rank)[: count[spk]]:
            split[clip] = "eval"
    return split


def speaker_column_rule(speakers: Sequence[str], share: float) -> str | None:
    """Whether a transcripts file's speaker column is trusted; None = yes, else why not.

    A speaker column is used when it names one speaker, or when every speaker it names has at least
    ``ceil(1 / share)`` clips (7 at the default 0.15): then each speaker's own eval clip fits inside
    the eval share. A column of many names with a clip or two each (LJSpeech-style chunk ids, one
    name per recording session) is not a speaker list; trusting it would hold out a clip per name.

    Args:
        speakers: the speaker cell of every matched row (one per clip).
        share: the eval share.
    """
    counts = Counter(s for s in speakers if s)
    if len(counts) < 2:
        return None
    need = math.ceil(1.0 / share - 1e-9)
    few = sorted(k for k, v in counts.items() if v < need)
    if not few:
        return None
    return (
        f"The transcripts file's speaker column names {len(counts)} speakers, {len(few)} of them with fewer "
        f"than {need} clips ({', '.join(few[:5])}{' ...' if len(few) > 5 else ''}); that is not a speaker list "
        "a fine-tune can use, so it was ignored"
    )


def _counter_add(target: dict[str, int], source: Mapping[str, int]) -> None:
    for k, v in source.items():
        target[k] = target.get(k, 0) + int(v)


class _ConsoleProgress:
    """Default progress for scripts: a tqdm bar driven by (fraction, description) calls."""

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


# ----- the engine -----


class DatasetEngine:
    """Builds, reviews, checks and deletes training datasets under ``settings.datasets_dir``."""

    def __init__(
        self,
        settings: Settings,
        asr_engine: Any,
        in_use: Callable[[str], bool] | None = None,
        token_counter: Callable[[str, str], int] | None = None,
    ) -> None:
        """
        Args:
            settings: app settings (datasets_dir, workspace, max_upload_mb).
            asr_engine: an ``engines.asr.ASREngine`` (transcription and validation).
            in_use: ``in_use(name) -> bool``: a training run uses this dataset (default: scan run.json files).
                The training engine may replace it (``engine.in_use = training.uses_dataset``).
            token_counter: ``token_counter(text, language) -> tokens`` with the trainer's tokenizer, to flag
                texts over its token limit; None = flag by character count only.
        """
        self.settings = settings
        self.asr = asr_engine
        self.in_use: Callable[[str], bool] = in_use or functools.partial(runs_using, settings)
        self.token_counter = token_counter
        self._lock = threading.Lock()
        self._active: set[str] = set()

    # ----- paths -----

    @property
    def root(self) -> Path:
        """The datasets folder (created on demand)."""
        folder = self.settings.path("datasets_dir")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def dataset_dir(self, name: str) -> Path:
        """``datasets_dir/<name>`` for a valid name (not created)."""
        return self.root / check_name(name)

    def clip_path(self, name: str, clip: str) -> Path:
        """The wav of one clip.

        Raises:
            InputError: no such clip (or a clip name that is a path).
        """
        clip = (clip or "").strip()
        if not clip or "/" in clip or "\\" in clip or clip.startswith("."):
            raise InputError(f"Pick a clip of dataset {name!r}.")
        path = self._existing(name) / "wavs" / clip
        if not path.is_file():
            raise InputError(f"Clip {clip!r} is not in dataset {name!r}.")
        return path

    def _existing(self, name: str) -> Path:
        folder = self.dataset_dir(name)
        if not folder.is_dir():
            raise InputError(f"No dataset named {name!r} in {self.root}.")
        return folder

    @contextmanager
    def _claim(self, name: str) -> Iterator[None]:
        """One job at a time per dataset (a build, an edit, a delete)."""
        with self._lock:
            if name in self._active:
                raise BusyError(f"Dataset {name!r} is busy (being built or edited); wait for that to finish.")
            self._active.add(name)
        try:
            yield
        finally:
            with self._lock:
                self._active.discard(name)

    def _check_not_in_use(self, name: str, what: str) -> None:
        if self.in_use(name):
            raise BusyError(f"Dataset {name!r} is used by a running training run; stop the run before you {what}.")

    # ----- build -----

    def build(
        self,
        name: str,
        sources: Sequence[str | Path],
        language: str,
        transcripts: str | Path | None = None,
        options: DatasetOptions = DatasetOptions(),
        progress: Callable[..., Any] | None = None,
        log: Callable[[str], Any] | None = None,
    ) -> DatasetReport:
        """Turn recordings into a dataset: decode, mono, 22.05 kHz, loudness, Whisper, cut, check, write.

        A re-run with the same sources skips the files an earlier run finished ("already prepared -
        skipping"), so a build stopped half-way (crash, kill, Ctrl-C) resumes where it stopped.

        Args:
            name: dataset name (see ``check_name``).
            sources: audio files, zips of audio files, and/or server folders (searched recursively).
            language: one of the 17 XTTS language codes; Whisper is told this language.
            transcripts: optional transcripts file (``file|text``, LJSpeech or coqui metadata): files
                with a row skip Whisper and are kept whole.
            options: cutting, checks, split and overwrite (see ``DatasetOptions``).
            progress: ``progress(fraction, desc)`` (gr.Progress works); default a console bar.
            log: ``log(message)`` for per-file lines; default print.

        Returns:
            The report: per-file rows, dropped clips per reason, totals.

        Raises:
            InputError: bad name, language, options or transcripts file; no input; the name is taken by
                a dataset with other sources (and overwrite is off); no clip could be kept.
            BusyError: the dataset is being built, or a training run uses it (overwrite).
        """
        name = check_name(name)
        language = check_language(language)
        check_options(options)
        paths = [Path(p) for p in (sources or []) if str(p).strip()]
        if not paths:
            raise InputError(NO_INPUT)
        console = _ConsoleProgress() if progress is None else None
        progress = progress or console
        log = log or print
        with self._claim(name):
            staging = Path(tempfile.mkdtemp(prefix="incoming-", dir=self.settings.workspace_sub("cache", "datasets")))
            try:
                return self._build(name, paths, language, transcripts, options, progress, log, staging)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
                if console is not None:
                    console.close()

    def _build(
        self,
        name: str,
        paths: list[Path],
        language: str,
        transcripts: str | Path | None,
        options: DatasetOptions,
        progress: Callable[..., Any],
        log: Callable[[str], Any],
        staging: Path,
    ) -> DatasetReport:
        root = self.dataset_dir(name)
        report = DatasetReport(name=name, path=root, language=language)
        progress(0.0, "Reading inputs")
        sources = self._expand(paths, staging, options, report)
        if not sources and not report.files:
            raise InputError(NO_INPUT)
        for source in sources:
            source.sha256 = file_sha256(source.path)
        unique: list[_Source] = []
        first_of: dict[str, str] = {}
        for source in sources:
            if source.sha256 in first_of:
                report.files.append(
                    FileReport(
                        source.name,
                        "skipped",
                        "duplicate",
                        f"same audio as {first_of[source.sha256]}",
                        sha256=source.sha256,
                    )
                )
                continue
            first_of[source.sha256] = source.name
            unique.append(source)
        _assign_bases(unique)
        early_rows = list(report.files)  # inputs skipped before processing: not audio, unsafe, duplicates

        rows: dict[str, TranscriptRow] = {}
        transcripts_info: dict[str, Any] | None = None
        if transcripts is not None and str(transcripts).strip():
            parsed, problems = parse_transcripts(transcripts)
            rows, report.transcripts_missing, report.transcripts_extra = match_transcripts(parsed, unique)
            report.transcripts_extra = problems + report.transcripts_extra
            transcripts_info = {
                "file": Path(transcripts).name,
                "rows": len(parsed),
                "matched": len(rows),
                "missing": report.transcripts_missing,
                "extra": report.transcripts_extra,
            }
            distrust = speaker_column_rule([r.speaker or "" for r in rows.values()], options.eval_share)
            if distrust:
                fallback = clean_text(options.speaker) or name
                report.notices.append(
                    f"{distrust}: clips take the speaker of their upload or folder settings (default {fallback!r}). "
                    "Set a speaker per upload, or use speaker folders, to keep real speakers apart."
                )
                log(report.notices[-1])
                rows = {k: replace(r, speaker=None) for k, r in rows.items()}
                transcripts_info["speaker_column"] = "ignored"

        model_id = options.model_id or self.asr.default_model()
        if any(s.sha256 not in rows for s in unique):  # Whisper will hear these files
            self._check_asr_language(model_id, language)

        meta = _read_json(root / "dataset.json") if root.is_dir() else None
        # a folder without metadata or clips (a build killed before its first write) is free to use
        has_content = root.is_dir() and (
            meta is not None or (root / "metadata_train.csv").exists() or any((root / "wavs").glob("*.wav"))
        )
        if has_content:
            if options.overwrite:
                self._check_not_in_use(name, "overwrite it")
                shutil.rmtree(root)
                meta = None
            else:
                before = {i.get("sha256") for i in (meta or {}).get("inputs", [])}
                if meta is None or before != {s.sha256 for s in unique}:
                    raise InputError(
                        f"A dataset named {name!r} already exists"
                        + (" with other source files" if meta is not None else "")
                        + ". Choose another name, or tick 'Overwrite' to replace it."
                    )
        created_now = meta is None
        (root / "wavs").mkdir(parents=True, exist_ok=True)
        (root / ".manifest").mkdir(exist_ok=True)

        plans: list[tuple[_Source, str, TranscriptRow | None, str, dict[str, Any] | None]] = []
        for source in unique:
            row = rows.get(source.sha256)
            speaker = self._speaker(source, row, options, name)
            key = _settings_key(options, language, model_id, row.text if row else None, speaker, source.base)
            manifest = _read_json(root / ".manifest" / f"{source.sha256}.json")
            plans.append((source, key, row, speaker, manifest))
        todo = [p for p in plans if not (p[4] and p[4].get("key") == p[1])]

        if meta is None or todo or meta.get("status") != "ready":
            meta = meta or {"format": FORMAT_VERSION, "name": name, "created": utc_now(), "clips": {}}
            meta.update(
                {
                    "language": language,
                    "status": "building",
                    "updated": utc_now(),
                    "inputs": [{"source": s.name, "sha256": s.sha256} for s in unique],
                }
            )
            meta.pop("error", None)
            write_json(root / "dataset.json", meta)
            # clips are about to change: no metadata CSV may describe a half-built dataset (training
            # lists folders by their metadata_train.csv); the finished build writes them again
            for split in ("train", "eval"):
                (root / f"metadata_{split}.csv").unlink(missing_ok=True)

        try:
            manifests, processed = self._process_all(root, plans, language, options, model_id, progress, log, report)
            progress(1.0, "Writing metadata")
            for m in manifests.values():
                _counter_add(report.dropped, m.get("dropped", {}))
            meta = self._assemble(root, meta, unique, manifests, processed, options, language, model_id)
            # stored per-file report: the same on every run (no "already prepared" wording)
            meta["files"] = [asdict(f) for f in early_rows] + [
                asdict(_file_report(manifests[s.sha256])) for s in unique
            ]
            meta["dropped"] = report.dropped
            if transcripts_info is not None:
                meta["transcripts"] = transcripts_info
            clips = meta["clips"]
            if not clips:
                why = Counter(f.reason for f in report.files if f.status == "skipped")
                raise _NoClips(
                    f"No clips could be kept from {len(report.files)} file(s): "
                    + ", ".join(f"{k} {v}" for k, v in why.most_common())
                    + (
                        ". Clips dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(report.dropped.items()))
                        if report.dropped
                        else ""
                    )
                    + ". Upload recordings with audible speech (and a transcripts file, or a Whisper model that "
                    "hears it)."
                )
            self._write(root, meta)
        except Exception as exc:
            self._failed(root, meta, created_now, exc)
            raise
        report.clips = len(clips)
        report.seconds = float(sum(c["duration"] for c in clips.values()))
        report.train_clips = sum(c.get("split") == "train" for c in clips.values())
        report.eval_clips = report.clips - report.train_clips
        limits = _limits(meta)
        report.flagged = sum(bool(self._flags(c, limits, language)) for c in clips.values())
        if report.minutes < MIN_MINUTES:
            report.notices.append(
                f"Only {report.minutes:.1f} min of speech: a fine-tune wants at least "
                f"{MIN_MINUTES:g} min (10+ min is better)."
            )
        log(report.summary())
        return report

    def _process_all(
        self,
        root: Path,
        plans: list[tuple[_Source, str, TranscriptRow | None, str, dict[str, Any] | None]],
        language: str,
        options: DatasetOptions,
        model_id: str,
        progress: Callable[..., Any],
        log: Callable[[str], Any],
        report: DatasetReport,
    ) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """Every source through ``_process`` (or reused from its manifest); one manifest written per file."""
        processed: set[str] = set()
        manifests: dict[str, dict[str, Any]] = {}
        total = max(1, len(plans))
        for i, (source, key, row, speaker, manifest) in enumerate(plans):
            progress(i / total, f"[{i + 1}/{len(plans)}] {source.name}")
            if manifest and manifest.get("key") == key:
                log(f"{source.name}: already prepared - skipping")
                manifests[source.sha256] = manifest
                report.files.append(_file_report(manifest, reused=True))
                report.reused += 1
                continue
            if manifest:  # finished before with other settings: its clips go
                for entry in manifest.get("clips", []):
                    (root / "wavs" / entry["clip"]).unlink(missing_ok=True)
            manifest = self._process(root, source, language, options, model_id, row, speaker)
            manifest["key"] = key
            write_json(root / ".manifest" / f"{source.sha256}.json", manifest)
            manifests[source.sha256] = manifest
            processed.add(source.sha256)
            file_report = _file_report(manifest)
            report.files.append(file_report)
            log(f"{source.name}: {file_report.status}" + (f" ({file_report.detail})" if file_report.detail else ""))
        return manifests, processed

    def _failed(self, root: Path, meta: dict[str, Any], created_now: bool, exc: Exception) -> None:
        """A build that raised: no half dataset is left looking usable.

        A dataset this build created is removed when no file finished (or none gave a clip). Otherwise
        dataset.json says "failed" with the error (the list shows it; a re-run resumes from the finished
        files, Delete removes it) and no metadata CSV exists (removed when the build started changing clips).
        """
        finished = any((root / ".manifest").glob("*.json"))
        if created_now and (not finished or isinstance(exc, _NoClips)):
            shutil.rmtree(root, ignore_errors=True)
            return
        meta = dict(meta)
        meta.update({"status": "failed", "error": str(exc) or type(exc).__name__, "updated": utc_now()})
        try:
            write_json(root / "dataset.json", meta)
        except OSError:  # the disk that failed the build may fail this too: the status stays "building"
            log.warning("Could not mark dataset %s as failed", root.name, exc_info=True)

    def _check_asr_language(self, model_id: str, language: str) -> None:
        """Whisper must be able to hear ``language`` (an English-only model cannot): checked before anything
        is created or re-transcribed. ``ASREngine.check_language`` owns the rule (no decoding).

        Raises:
            InputError: naming the model, the language and what to pick instead.
        """
        self.asr.check_language(model_id, language)

    def _expand(
        self, paths: list[Path], staging: Path, options: DatasetOptions, report: DatasetReport
    ) -> list[_Source]:
        """Inputs -> audio files: uploads as they are, folders searched, zips unpacked safely."""
        sources: list[_Source] = []
        for n, path in enumerate(paths):
            if path.is_dir():
                for file in sorted(p for p in path.rglob("*") if p.is_file()):
                    rel = file.relative_to(path)
                    if any(part.startswith(".") for part in rel.parts):
                        continue  # hidden files: editor and OS droppings
                    if file.suffix.lower() == ".zip":
                        sources.extend(self._unzip(file, staging / f"{n}-{len(sources)}", report, str(rel)))
                    elif file.suffix.lower() not in AUDIO_EXTENSIONS:
                        report.files.append(
                            FileReport(
                                rel.as_posix(), "skipped", "not audio", f"{rel.as_posix()}: not an audio file extension"
                            )
                        )
                    else:
                        sources.append(
                            _Source(
                                file,
                                rel.as_posix(),
                                _key(rel.as_posix()),
                                path.name,
                                rel.parts[0] if options.speaker_from_folder and len(rel.parts) > 1 else None,
                            )
                        )
            elif path.is_file() and path.suffix.lower() == ".zip":
                sources.extend(self._unzip(path, staging / str(n), report, path.name))
            elif path.is_file():
                sources.append(_Source(path, path.name, _key(path.name), path.name))
            else:
                report.files.append(FileReport(str(path), "skipped", "not found", f"{path}: no such file or folder"))
        return sources

    def _unzip(self, path: Path, dest: Path, report: DatasetReport, label: str) -> list[_Source]:
        """Unpack the audio entries of a zip, refusing unsafe paths and zip bombs."""
        limit = self.settings.max_upload_mb * ZIP_EXPANSION * 2**20
        if path.stat().st_size > self.settings.max_upload_mb * 2**20:
            report.files.append(
                FileReport(
                    label,
                    "skipped",
                    "too large",
                    f"{label} is larger than {self.settings.max_upload_mb} MB (max_upload_mb)",
                )
            )
            return []
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError):
            report.files.append(FileReport(label, "skipped", "not a zip", f"{label} is not a readable zip archive"))
            return []
        sources: list[_Source] = []
        with archive:
            entries = [i for i in archive.infolist() if not i.is_dir()]
            declared = sum(i.file_size for i in entries)
            if declared > limit or len(entries) > MAX_ZIP_ENTRIES:
                report.files.append(
                    FileReport(
                        label,
                        "skipped",
                        "too large",
                        f"{label} unpacks to {declared / 2**20:.0f} MB in {len(entries)} files; the limit is "
                        f"{limit / 2**20:.0f} MB and {MAX_ZIP_ENTRIES} files (max_upload_mb x {ZIP_EXPANSION})",
                    )
                )
                return []
            written = 0
            junk = 0
            for info in entries:
                raw_name = info.filename
                posix = raw_name.replace("\\", "/")
                parts = PurePosixPath(posix).parts
                shown = f"{label}/{posix}"
                if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or ".." in parts:
                    report.files.append(
                        FileReport(
                            shown, "skipped", "unsafe path", f"{raw_name}: absolute paths and '..' are never unpacked"
                        )
                    )
                    continue
                if parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
                    junk += 1
                    continue
                if info.flag_bits & 0x1:
                    report.files.append(FileReport(shown, "skipped", "encrypted", f"{posix}: encrypted zip entry"))
                    continue
                if PurePosixPath(posix).suffix.lower() not in AUDIO_EXTENSIONS:
                    what = (
                        "a zip inside a zip is not unpacked"
                        if posix.lower().endswith(".zip")
                        else "not an audio file extension"
                    )
                    report.files.append(FileReport(shown, "skipped", "not audio", f"{posix}: {what}"))
                    continue
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with archive.open(info) as src, open(target, "wb") as out:
                        while chunk := src.read(1 << 20):
                            written += len(chunk)
                            if written > limit:  # the header lied about the size: stop here
                                raise _ZipTooLarge
                            out.write(chunk)
                except _ZipTooLarge:
                    report.files.append(
                        FileReport(
                            label,
                            "skipped",
                            "too large",
                            f"{label} unpacks to more than {limit / 2**20:.0f} MB "
                            f"(max_upload_mb x {ZIP_EXPANSION}); nothing from it was used",
                        )
                    )
                    shutil.rmtree(dest, ignore_errors=True)
                    return []
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    report.files.append(FileReport(shown, "skipped", "corrupt", f"{posix}: cannot be unpacked ({exc})"))
                    continue
                sources.append(_Source(target, shown, _key(posix), label, parts[0] if len(parts) > 1 else None))
            if junk:
                report.notices.append(f"{label}: {junk} hidden or __MACOSX entries ignored.")
        return sources

    def _speaker(self, source: _Source, row: TranscriptRow | None, options: DatasetOptions, name: str) -> str:
        """Transcripts speaker column > per-source mapping > subfolder name > default."""
        if row is not None and row.speaker:
            return row.speaker
        mapping = {k.strip().lower(): v.strip() for k, v in options.speakers if k.strip() and v.strip()}
        for candidate in (source.name, PurePosixPath(source.name).name, PurePosixPath(source.name).stem, source.group):
            if candidate.lower() in mapping:
                return clean_text(mapping[candidate.lower()])
        if options.speaker_from_folder and source.folder_speaker:
            return clean_text(source.folder_speaker)
        return clean_text(options.speaker) or name

    def _process(
        self,
        root: Path,
        source: _Source,
        language: str,
        options: DatasetOptions,
        model_id: str,
        row: TranscriptRow | None,
        speaker: str,
    ) -> dict[str, Any]:
        """One source file -> clips on disk; returns its manifest (report, clips, dropped counts).

        Silence is the VAD's call (level-independent), with ``silence_db`` only as a floor for digital
        silence. Cuts go in the VAD's pauses (``speech_spans`` + ``plan_clips``); each kept clip is then
        transcribed on its own. Files with a transcripts row are kept whole with their text.
        """
        m: dict[str, Any] = {
            "sha256": source.sha256,
            "source": source.name,
            "base": source.base,
            "speaker": speaker,
            "transcript": "supplied" if row else "whisper",
            "status": "skipped",
            "reason": "",
            "detail": "",
            "seconds": 0.0,
            "clips": [],
            "dropped": {},
            "finished": utc_now(),
        }
        try:
            raw, sr = load_audio(source.path, max_mb=self.settings.max_upload_mb)
        except AudioError as exc:
            m.update(reason="not audio", detail=str(exc))
            return m
        seconds = len(raw) / sr
        m["seconds"] = round(seconds, 3)
        audio = resample(raw, sr, SAMPLE_RATE)
        whole = row is not None
        pad = options.pad_ms / 1000.0
        max_span = options.max_clip - 2 * min(pad, options.max_clip / 4)
        # the VAD decides where (and whether) there is speech, at any level; the floor only catches
        # digital silence and dither, where there is nothing for a detector to judge
        if is_silent(audio, options.silence_db):
            spans = []
        else:  # a file kept whole only needs to hold speech: no second look for pauses inside it
            spans = speech_spans(resample(raw, sr, ASR_RATE), float("inf") if whole else max_span)
        if not spans:
            level = rms_dbfs(audio)
            m.update(
                reason="silent",
                detail=(
                    f"level {level:.0f} dBFS is under the silence floor ({options.silence_db:g} dBFS)"
                    if level < options.silence_db
                    else f"no speech found (voice activity detection; level {level:.0f} dBFS)"
                ),
            )
            return m
        normalized = normalize_loudness(audio)
        if whole:
            pieces = [Piece(0.0, seconds, row.text, 0.0, seconds)]
        else:
            pieces = plan_clips(
                spans,
                seconds,
                min_clip=options.min_clip,
                max_clip=options.max_clip,
                pad=pad,
                language=language,
            )
        dropped: Counter[str] = Counter()
        unsplit: list[str] = []
        for k, piece in enumerate(pieces):
            a, b = int(round(piece.start * SAMPLE_RATE)), int(round(piece.end * SAMPLE_RATE))
            duration = (b - a) / SAMPLE_RATE
            reason = None
            if not whole and (not piece.fits or duration > options.max_clip + 1e-6):
                reason = "too long"  # speech with no pause to cut at: never shipped cut mid-speech
                unsplit.append(f"{piece.speech_start:.1f}-{piece.speech_end:.1f} s")
            elif not whole and duration < options.min_clip:
                reason = "too short"
            elif b - a == 0:
                reason = "silent"
            elif clipped_fraction(raw[int(piece.start * sr) : int(piece.end * sr)]) > options.max_clipped:
                reason = "clipped"
            text = clean_text(piece.text)
            if reason is None and not whole:
                # each clip is transcribed on its own: its text is what its audio says, nothing from a neighbour
                text = self._transcribe_clip(normalized[a:b], language, model_id, f"{source.name} {piece.start:.1f} s")
            if reason is None and not text:
                reason = "no transcript"
            if reason:
                dropped[reason] += 1
                continue
            clip = f"{source.base}.wav" if whole else f"{source.base}_{k:03d}.wav"
            save_wav(root / "wavs" / clip, normalized[a:b], SAMPLE_RATE)
            notes = []
            if whole and duration > options.max_clip:
                notes.append(f"kept whole: longer than max clip ({options.max_clip:g} s)")
            elif whole and duration < options.min_clip:
                notes.append(f"kept whole: shorter than min clip ({options.min_clip:g} s)")
            m["clips"].append(
                {
                    "clip": clip,
                    "text": text,
                    "speaker": speaker,
                    "duration": round(duration, 3),
                    "source": source.name,
                    "sha256": source.sha256,
                    "start": round(piece.start, 3),
                    "end": round(piece.end, 3),
                    "origin": m["transcript"],
                    "notes": notes,
                }
            )
        if unsplit:
            m["unsplit"] = unsplit
        m["dropped"] = dict(dropped)
        drops = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items()))
        if unsplit:
            drops += f" (speech over {options.max_clip:g} s without a pause at {', '.join(unsplit[:3])})"
        if m["clips"]:
            m.update(status="kept", detail=f"{len(m['clips'])} clip(s)" + (f"; dropped: {drops}" if drops else ""))
        else:
            main = dropped.most_common(1)[0][0] if dropped else "no clips"
            m.update(reason=main, detail=f"no clip kept (dropped: {drops or 'none planned'})")
        return m

    def _transcribe_clip(self, audio: np.ndarray, language: str | None, model_id: str, label: str) -> str:
        """What Whisper hears in one clip (22.05 kHz samples): the one decode the build and validate share.

        Timestamp decoding, as ``transcribe_array`` does by default (and with whatever fallback it applies):
        the batched text-only decode validation used before was reported to stop early on tiny.en, dropping
        a clip's last words (a false mismatch); one decode for both means a clip built from Whisper's text
        re-transcribes to that text.
        """
        from engines.asr import ASROptions

        transcript = self.asr.transcribe_array(
            resample(audio, SAMPLE_RATE, ASR_RATE),
            ASROptions(language=language or None),
            model_id=model_id,
            source=label,
        )
        return clean_text(transcript.text)

    def _assemble(
        self,
        root: Path,
        meta: dict[str, Any],
        sources: list[_Source],
        manifests: dict[str, dict[str, Any]],
        processed: set[str],
        options: DatasetOptions,
        language: str,
        model_id: str,
    ) -> dict[str, Any]:
        """dataset.json's clip table from the manifests, keeping the user's edits of unchanged files.

        A clip whose wav is gone was deleted (or re-cut) by the user: it stays gone.
        """
        shas = {s.sha256 for s in sources}
        old = meta.get("clips", {})
        clips = {
            c: e
            for c, e in old.items()
            if e.get("sha256") in shas and e.get("sha256") not in processed and (root / "wavs" / c).is_file()
        }
        added = False
        for source in sources:
            for entry in manifests.get(source.sha256, {}).get("clips", []):
                if entry["clip"] not in clips and (root / "wavs" / entry["clip"]).is_file():
                    clips[entry["clip"]] = dict(entry)
                    added = True
        if added or processed or any("split" not in e for e in clips.values()) or set(clips) != set(old):
            for clip, split in assign_split(clips, options.eval_share, options.seed).items():
                clips[clip]["split"] = split
        settings = {k: v for k, v in asdict(options).items() if k != "overwrite"}
        settings["model_id"] = model_id
        meta = dict(meta)
        meta.update(
            {
                "format": FORMAT_VERSION,
                "language": language,
                "status": "ready",
                "app_version": app_version(),
                "settings": settings,
                "clips": dict(sorted(clips.items())),
                "inputs": [{"source": s.name, "sha256": s.sha256} for s in sources],
            }
        )
        return meta

    # ----- writing -----

    def _write(self, root: Path, meta: dict[str, Any]) -> None:
        """Metadata CSVs and dataset.json, each only when its content changed (a no-op re-run writes nothing)."""
        for split in SPLITS:
            write_metadata(
                root,
                split,
                (
                    ClipEntry(f"{WAVS}/{clip}", entry["text"], entry["speaker"])
                    for clip, entry in meta["clips"].items()
                    if entry.get("split", "train") == split
                ),
            )
        current = _read_json(root / "dataset.json") or {}
        strip = {"updated"}
        if {k: v for k, v in current.items() if k not in strip} != json.loads(
            json.dumps({k: v for k, v in meta.items() if k not in strip}, default=str)
        ):
            meta["updated"] = utc_now()
            write_json(root / "dataset.json", meta)
        wanted = set(meta["clips"])
        for wav in (root / "wavs").iterdir():
            # leftovers: half-written temp files of a killed run, clips of re-done files
            if wav.is_file() and (wav.name.endswith(".tmp") or (wav.suffix == ".wav" and wav.name not in wanted)):
                wav.unlink(missing_ok=True)

    def _meta(self, name: str) -> tuple[Path, dict[str, Any]]:
        """A dataset's folder and dataset.json; datasets made elsewhere (CSV only) get one built from the CSVs."""
        root = self._existing(name)
        meta = _read_json(root / "dataset.json")
        if meta is not None and "clips" in meta:
            return root, meta
        clips: dict[str, dict[str, Any]] = {}
        for split in SPLITS:
            for row in read_metadata(root, split):
                audio = row.audio_file
                if not audio.startswith(f"{WAVS}/") or "/" in audio[len(WAVS) + 1 :]:
                    continue
                clip = audio[len(WAVS) + 1 :]
                clips[clip] = {
                    "clip": clip,
                    "text": clean_text(row.text),
                    "speaker": clean_text(row.speaker_name) or name,
                    "duration": _wav_seconds(root / WAVS / clip),
                    "split": split,
                    "sha256": "",
                    "notes": [],
                }
        if not clips and meta is None:
            raise InputError(f"{name!r} is not a dataset: no dataset.json and no metadata_train.csv.")
        meta = meta or {"format": FORMAT_VERSION, "name": name, "language": "", "status": "external", "created": ""}
        meta["clips"] = clips
        return root, meta

    # ----- flags -----

    def _flags(self, entry: Mapping[str, Any], limits: Mapping[str, Any], language: str) -> list[str]:
        """Quality flags of one clip, computed from its current text and audio (never stale)."""
        flags = list(entry.get("notes", []))
        duration = float(entry.get("duration", 0.0))
        text = str(entry.get("text", ""))
        if duration > limits["trainer_max_seconds"] + 1e-6:
            flags.append(f"audio {duration:.1f} s > {limits['trainer_max_seconds']:g} s: the trainer drops it (re-cut)")
        elif duration < TRAINER_MIN_SECONDS:
            flags.append(f"audio under {TRAINER_MIN_SECONDS:g} s: the trainer drops it")
        if len(text) > limits["trainer_max_text"]:
            flags.append(f"text {len(text)} chars > {limits['trainer_max_text']}: the trainer drops it (re-cut)")
        elif self.token_counter is not None and language:
            tokens = self.token_counter(text, language)
            if tokens > limits["trainer_max_text"]:
                flags.append(f"text {tokens} tokens > {limits['trainer_max_text']}: the trainer drops it (re-cut)")
        loop = repetition_loop(text)
        if loop:
            flags.append(f"repetition loop: {loop}")
        cer = entry.get("cer")
        if cer is not None and cer > limits["cer_threshold"] and not entry.get("choice"):
            flags.append(f"ASR mismatch (CER {cer:.2f}): heard {entry.get('asr_text', '')!r}")
        return flags

    # ----- review -----

    def list_datasets(self) -> list[DatasetSummary]:
        """Every dataset under datasets_dir (ours, and coqui-format folders made elsewhere)."""
        out: list[DatasetSummary] = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not is_folder_name(folder.name):
                continue
            if not (folder / "dataset.json").is_file() and not (folder / "metadata_train.csv").is_file():
                continue
            try:
                _, meta = self._meta(folder.name)
            except InputError:
                continue
            clips = meta.get("clips", {})
            status = meta.get("status", "ready")
            out.append(
                DatasetSummary(
                    name=folder.name,
                    clips=len(clips),
                    minutes=round(sum(float(c.get("duration", 0.0)) for c in clips.values()) / 60.0, 2),
                    language=meta.get("language", ""),
                    created=str(meta.get("created", "")),
                    speakers=sorted({str(c.get("speaker", "")) for c in clips.values()}),
                    status="incomplete" if status == "building" else status,
                )
            )
        return out

    def info(self, name: str) -> dict[str, Any]:
        """dataset.json as a dict (language, settings, sources, per-file report, clips)."""
        return self._meta(name)[1]

    def load_table(self, name: str) -> list[ClipRow]:
        """The review table: one row per clip with its current quality flags.

        Raises:
            InputError: no such dataset.
        """
        _, meta = self._meta(name)
        limits = _limits(meta)
        return [
            ClipRow(
                clip,
                round(float(e.get("duration", 0.0)), 2),
                e.get("text", ""),
                e.get("speaker", ""),
                e.get("split", "train"),
                "; ".join(self._flags(e, limits, meta.get("language", ""))),
            )
            for clip, e in meta["clips"].items()
        ]

    def save_table(self, name: str, rows: Sequence[ClipRow | Mapping[str, Any]]) -> SaveResult:
        """Apply the user's table edits: changed text/speaker/split; rows left out are deleted (wav removed).

        Args:
            name: the dataset.
            rows: the edited table (ClipRow or dicts with clip, text and optionally speaker, split).

        Returns:
            How many clips were edited and deleted.

        Raises:
            InputError: an unknown or repeated clip, an empty text, a '|' in a text, a bad split, or no row left.
            BusyError: a training run uses the dataset.
        """
        name = check_name(name)
        with self._claim(name):
            root, meta = self._meta(name)
            clips = meta["clips"]
            edits: dict[str, dict[str, str]] = {}
            for i, row in enumerate(rows):
                data = asdict(row) if isinstance(row, ClipRow) else dict(row)
                clip = str(data.get("clip", "")).strip()
                if clip not in clips:
                    raise InputError(f"Row {i + 1}: clip {clip!r} is not in dataset {name!r} (rows cannot be added).")
                if clip in edits:
                    raise InputError(f"Row {i + 1}: clip {clip!r} appears twice.")
                raw_text = str(data.get("text", "") if data.get("text") is not None else "")
                if "|" in raw_text:
                    raise InputError(f"Row {i + 1} ({clip}): the text cannot contain '|' (it separates the columns).")
                text = clean_text(raw_text)
                if not text:
                    raise InputError(f"Row {i + 1} ({clip}): the text is empty; delete the row to drop the clip.")
                speaker = clean_text(str(data.get("speaker") or clips[clip].get("speaker", ""))) or name
                split = str(data.get("split") or clips[clip].get("split", "train")).strip().lower()
                if split not in ("train", "eval"):
                    raise InputError(f"Row {i + 1} ({clip}): split must be 'train' or 'eval', got {split!r}.")
                edits[clip] = {"text": text, "speaker": speaker, "split": split}
            if not edits:
                raise InputError("Every row was removed: to drop the whole dataset, use Delete in the datasets list.")
            deleted = [c for c in clips if c not in edits]
            if deleted:
                self._check_not_in_use(name, "delete clips")
            edited = 0
            for clip, change in edits.items():
                entry = clips[clip]
                if any(entry.get(k) != v for k, v in change.items()):
                    if entry.get("text") != change["text"] and entry.get("cer") is not None:
                        entry["choice"] = "edit"
                    entry.update(change)
                    edited += 1
            for clip in deleted:
                del clips[clip]
                (root / "wavs" / clip).unlink(missing_ok=True)
            if deleted and "eval" not in {e.get("split") for e in clips.values()} and len(clips) >= 2:
                for clip, split in assign_split(clips, _limits(meta)["eval_share"], _limits(meta)["seed"]).items():
                    clips[clip]["split"] = split
            self._write(root, meta)
            return SaveResult(edited=edited, deleted=len(deleted), clips=len(clips))

    def stats(self, name: str) -> DatasetStats:
        """Clip count, kept minutes, duration histogram (1-s bins), per-speaker counts, a warning under 2 minutes."""
        _, meta = self._meta(name)
        clips = meta["clips"]
        durations = [float(e.get("duration", 0.0)) for e in clips.values()]
        seconds = float(sum(durations))
        top = int(np.ceil(max(durations))) if durations else 0
        counts = Counter(min(int(d), max(top - 1, 0)) for d in durations)
        width = len(str(max(top, 1)))
        histogram = [(f"{b:0{width}d}-{b + 1:0{width}d} s", counts.get(b, 0)) for b in range(top)]
        limits = _limits(meta)
        flagged = sum(bool(self._flags(e, limits, meta.get("language", ""))) for e in clips.values())
        warning = None
        if seconds / 60.0 < MIN_MINUTES:
            warning = (
                f"Only {seconds / 60.0:.1f} min of speech: XTTS fine-tuning wants at least {MIN_MINUTES:g} min "
                "(10 min or more gives a much better voice)."
            )
        train = sum(e.get("split") == "train" for e in clips.values())
        return DatasetStats(
            clips=len(clips),
            seconds=seconds,
            train_clips=train,
            eval_clips=len(clips) - train,
            flagged=flagged,
            speakers=dict(Counter(str(e.get("speaker", "")) for e in clips.values())),
            histogram=histogram,
            warning=warning,
        )

    def delete(self, name: str, confirm: bool = False) -> None:
        """Delete a dataset folder.

        Raises:
            InputError: not confirmed, or no such dataset.
            BusyError: a training run uses it, or it is being built.
        """
        name = check_name(name)
        root = self._existing(name)
        if not confirm:
            raise InputError(f"Tick 'confirm' to delete dataset {name!r} (its clips are removed from disk).")
        with self._claim(name):
            self._check_not_in_use(name, "delete it")
            shutil.rmtree(root)
        log.info("Deleted dataset %s", name)

    def reference_clip(self, name: str, target_seconds: float = 8.0) -> Path:
        """A clean train clip near ``target_seconds`` (for an exported model's reference.wav).

        Raises:
            InputError: no dataset or no clip.
        """
        root, meta = self._meta(name)
        limits = _limits(meta)
        candidates = [
            (
                bool(self._flags(e, limits, "")),
                e.get("split") != "train",
                abs(float(e.get("duration", 0.0)) - target_seconds),
                clip,
            )
            for clip, e in meta["clips"].items()
        ]
        if not candidates:
            raise InputError(f"Dataset {name!r} has no clips.")
        return root / "wavs" / min(candidates)[3]

    # ----- fixing flagged clips -----

    def recut(self, name: str, clip: str, max_clip: float | None = None) -> list[str]:
        """Split a clip that is too long at its pauses; its text is split at word boundaries in proportion
        to the speech before each cut (the new clips are flagged "check the text split").

        Args:
            name: the dataset.
            clip: the clip to split.
            max_clip: longest part (default: the dataset's max clip, at most the trainer's max).

        Returns:
            The new clip names (the original clip is removed).

        Raises:
            InputError: the clip is short enough already, holds no pause to cut at, or its text has too few words.
            BusyError: a training run uses the dataset.
        """
        name = check_name(name)
        with self._claim(name):
            self._check_not_in_use(name, "re-cut clips")
            root, meta = self._meta(name)
            path = self.clip_path(name, clip)
            if clip not in meta["clips"]:
                raise InputError(f"Clip {clip!r} is not in dataset {name!r}.")
            entry = meta["clips"][clip]
            limits = _limits(meta)
            max_clip = float(max_clip or min(limits["max_clip"], limits["trainer_max_seconds"]))
            min_clip = min(float(limits["min_clip"]), max_clip / 3)
            audio, sr = load_audio(path, sr=SAMPLE_RATE)
            duration = len(audio) / sr
            if duration <= max_clip:
                raise InputError(f"{clip} is {duration:.1f} s, within {max_clip:g} s already: nothing to re-cut.")
            pauses = find_pauses(audio, sr, silence_db=float(limits["silence_db"]))
            try:
                cuts = plan_recut(duration, pauses, max_clip, min_clip)
            except ValueError as exc:
                raise InputError(f"Cannot re-cut {clip}: {exc}. Trim it in an editor or delete the row.") from None
            levels, step = frame_levels(audio, sr)
            voiced = levels >= max(float(limits["silence_db"]), float(np.percentile(levels, 95)) - 30.0)
            speech = np.cumsum(voiced)
            fractions = [float(speech[min(int(c / step), len(speech) - 1)]) / max(1.0, float(speech[-1])) for c in cuts]
            try:
                texts = split_text(entry["text"], fractions)
            except ValueError as exc:
                raise InputError(f"Cannot re-cut {clip}: {exc}.") from None
            bounds = [0.0, *cuts, duration]
            stem = Path(clip).stem
            names = []
            for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
                new = f"{stem}_r{k}.wav"
                piece = audio[int(a * sr) : int(b * sr)]
                save_wav(root / "wavs" / new, piece, sr)
                meta["clips"][new] = {
                    **{kk: v for kk, v in entry.items() if kk not in ("asr_text", "cer", "choice")},
                    "clip": new,
                    "text": texts[k],
                    "duration": round(len(piece) / sr, 3),
                    "origin": "recut",
                    "notes": ["re-cut: check the text split"],
                }
                names.append(new)
            del meta["clips"][clip]
            meta["clips"] = dict(sorted(meta["clips"].items()))
            path.unlink(missing_ok=True)
            self._write(root, meta)
            log.info("Re-cut %s/%s into %s", name, clip, names)
            return names

    def validate(
        self,
        name: str,
        model_id: str | None = None,
        cer_threshold: float | None = None,
        progress: Callable[..., Any] | None = None,
        log: Callable[[str], Any] | None = None,
    ) -> ValidationReport:
        """Re-transcribe every clip and flag texts the ASR disagrees with (CER over the threshold).

        Each clip is decoded the way the build transcribes one (``_transcribe_clip``: timestamp decoding,
        clip by clip, not the batched text-only decode, reported to stop early on tiny.en). The CER is
        ``segment.text_cer``: the evaluation's normalizer (``engines.metrics.normalize``), so "1455" and
        "fourteen fifty-five" agree. The result is stored per clip (shown in the flags column until the
        user picks keep / take ASR / edit with ``apply_choice``).

        Args:
            name: the dataset.
            model_id: Whisper model (None = the one the dataset was built with, else the ASR default).
            cer_threshold: mismatch above this character error rate (None = the dataset's setting;
                ``CER_THRESHOLD`` for new datasets).
            progress: ``progress(fraction, desc)``.
            log: ``log(message)``.

        Returns:
            The mismatches, worst first.

        Raises:
            InputError: no dataset, bad threshold, a Whisper model that cannot hear the dataset's
                language. BusyError: the dataset is busy.
        """
        name = check_name(name)
        progress = progress or (lambda *_a, **_k: None)
        log = log or print
        with self._claim(name):
            root, meta = self._meta(name)
            limits = _limits(meta)
            threshold = float(cer_threshold if cer_threshold is not None else limits["cer_threshold"])
            if not 0.0 < threshold <= 1.0:
                raise InputError(f"The mismatch threshold (CER) must be above 0 and at most 1 (got {threshold:g}).")
            model_id = model_id or meta.get("settings", {}).get("model_id") or self.asr.default_model()
            language = meta.get("language") or None
            if language:
                self._check_asr_language(model_id, language)
            clips = list(meta["clips"].items())
            started = datetime.now(UTC)
            for i, (clip, entry) in enumerate(clips):
                if i % 8 == 0:
                    progress(i / max(1, len(clips)), f"Re-transcribing clip {i + 1} of {len(clips)}")
                audio = load_audio(root / "wavs" / clip, sr=SAMPLE_RATE)[0]
                entry["asr_text"] = self._transcribe_clip(audio, language, model_id, clip)
                entry["cer"] = round(text_cer(entry["text"], entry["asr_text"], language), 4)
                entry.pop("choice", None)
            meta.setdefault("settings", {})["cer_threshold"] = threshold
            meta["validation"] = {"model_id": model_id, "threshold": threshold, "time": utc_now()}
            self._write(root, meta)
            progress(1.0, "Validation done")
            mismatches = sorted(
                (
                    Mismatch(clip, e["text"], e["asr_text"], e["cer"])
                    for clip, e in meta["clips"].items()
                    if e["cer"] > threshold
                ),
                key=lambda m: -m.cer,
            )
            log(f"Validated {len(clips)} clips with {model_id}: {len(mismatches)} mismatch(es) over CER {threshold:g}.")
            return ValidationReport(
                checked=len(clips),
                threshold=threshold,
                model_id=model_id,
                mismatches=mismatches,
                seconds=(datetime.now(UTC) - started).total_seconds(),
            )

    def apply_choice(self, name: str, clip: str, choice: str, text: str | None = None) -> ClipRow:
        """Resolve a validation mismatch: keep the original text, take the ASR text, or set an edited text.

        Raises:
            InputError: unknown clip or choice, no ASR text to take, an empty or '|'-holding edit.
        """
        name = check_name(name)
        choice = (choice or "").strip().lower()
        if choice not in CHOICES:
            raise InputError(f"Choice must be one of {', '.join(CHOICES)} (keep original / take ASR / edit).")
        with self._claim(name):
            root, meta = self._meta(name)
            if clip not in meta["clips"]:
                raise InputError(f"Clip {clip!r} is not in dataset {name!r}.")
            entry = meta["clips"][clip]
            if choice == "asr":
                if not entry.get("asr_text"):
                    raise InputError(f"Whisper heard nothing in {clip}: keep the original text or edit it.")
                entry["text"] = entry["asr_text"]
            elif choice == "edit":
                if text is not None and "|" in text:
                    raise InputError("The text cannot contain '|' (it separates the columns).")
                new = clean_text(text or "")
                if not new:
                    raise InputError(f"Type the corrected text for {clip} (or pick keep / take ASR).")
                entry["text"] = new
            entry["choice"] = choice
            self._write(root, meta)
            limits = _limits(meta)
            return ClipRow(
                clip,
                round(float(entry["duration"]), 2),
                entry["text"],
                entry["speaker"],
                entry.get("split", "train"),
                "; ".join(self._flags(entry, limits, meta.get("language", ""))),
            )


class _ZipTooLarge(Exception):
    """Internal: a zip unpacked past its limit."""


class _NoClips(InputError):
    """Internal: a build that kept no clip (the user's message; the dataset it created is removed)."""


def _assign_bases(sources: list[_Source]) -> None:
    """Clip name stems: the file name, plus a hash when two different files would share names."""
    stems = {s.sha256: _safe_stem(s.name) for s in sources}
    counts = Counter(stems.values())
    taken = set(stems.values())
    for s in sources:
        stem = stems[s.sha256]
        # "a" cut into a_000.wav would meet a file named "a_000": both get a hash too
        clash = counts[stem] > 1 or re.sub(r"_(\d{3}|r\d+)$", "", stem) in taken - {stem}
        s.base = f"{stem}-{s.sha256[:8]}" if clash else stem


def _settings_key(
    options: DatasetOptions, language: str, model_id: str, text: str | None, speaker: str, base: str
) -> str:
    """What a finished file depends on: a change re-does the file, anything else reuses it."""
    data = {
        "v": FORMAT_VERSION,
        "language": language,
        "text": text,
        "speaker": speaker,
        "base": base,
        "model_id": model_id if text is None else None,
        "min_clip": options.min_clip,
        "max_clip": options.max_clip,
        "silence_db": options.silence_db,
        "pad_ms": options.pad_ms,
        "max_clipped": options.max_clipped,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _file_report(manifest: Mapping[str, Any], reused: bool = False) -> FileReport:
    return FileReport(
        source=manifest["source"],
        status=manifest["status"],
        reason=manifest.get("reason", ""),
        detail="already prepared - skipping" if reused else manifest.get("detail", ""),
        clips=len(manifest.get("clips", [])),
        seconds=float(manifest.get("seconds", 0.0)),
        speaker=manifest.get("speaker", ""),
        transcript=manifest.get("transcript", ""),
        sha256=manifest.get("sha256", ""),
        reused=reused,
    )


def _limits(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset's settings, with defaults for datasets made elsewhere."""
    defaults = asdict(DatasetOptions())
    return {**defaults, **{k: v for k, v in meta.get("settings", {}).items() if k in defaults}}


def _wav_seconds(path: Path) -> float:
    import soundfile as sf

    try:
        return round(float(sf.info(str(path)).duration), 3)
    except (RuntimeError, OSError):
        return 0.0


__all__ = [
    "ClipRow",
    "DatasetEngine",
    "DatasetOptions",
    "DatasetReport",
    "DatasetStats",
    "DatasetSummary",
    "FileReport",
    "Mismatch",
    "SaveResult",
    "TranscriptRow",
    "ValidationReport",
    "assign_split",
    "check_language",
    "check_name",
    "check_options",
    "match_transcripts",
    "parse_transcripts",
    "runs_using",
]
