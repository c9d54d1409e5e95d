"""Inputs -> sources: uploads, server folders and zips (unpacked safely), duplicates by sha256, transcripts files.

Nothing here decodes audio: a source is a file on disk with the names it is matched and reported by.
Zip safety: entries with absolute paths or '..' are never unpacked, encrypted entries and zips inside
zips are skipped, and a zip may unpack to at most ``max_upload_mb x ZIP_EXPANSION`` (the written bytes
are counted, not the headers' claims).
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from engines.core.audio import AUDIO_EXTENSIONS, file_sha256
from engines.core.errors import InputError
from engines.core.progress import LogFn
from engines.datasets.cutting import clean_text
from engines.datasets.options import DatasetOptions
from engines.datasets.results import DatasetReport, FileReport

ZIP_EXPANSION = 4  # a zip may unpack to at most max_upload_mb x this (zip-bomb guard)
MAX_ZIP_ENTRIES = 20000
MAX_TRANSCRIPTS_MB = 50

# transcripts files: header names we recognise (first match wins)
_FILE_COLUMNS = ("audio_file", "file", "filename", "file_name", "path", "wav", "wav_file", "audio", "id", "name")
# The spoken form wins (numbers and abbreviations written out, what the speaker said): these names
# first, then the raw text. A headerless LJSpeech file follows the same rule (its third column).
_SPOKEN_COLUMNS = ("normalized_text", "normalized", "transcription")
_RAW_COLUMNS = ("text", "transcript", "sentence")
_TEXT_COLUMNS = _SPOKEN_COLUMNS + _RAW_COLUMNS
_SPEAKER_COLUMNS = ("speaker_name", "speaker")
_SEPARATORS = ("|", "\t", ";", ",")
_SEPARATOR_NAMES = {"|": "'|'", "\t": "tab", ";": "';'", ",": "','"}
_PROSE_SEPARATORS = (";", ",")  # punctuation that texts hold: such files are read with CSV quoting


@dataclass
class TranscriptRow:
    """One row of a user's transcripts file."""

    file: str  # as written in the file
    text: str
    speaker: str | None
    line: int  # 1-based line number


@dataclass
class Source:
    """An input audio file on its way through the build."""

    path: Path
    name: str  # display name
    key: str  # relative path without extension, lower case: matched against transcripts rows
    group: str  # the upload / zip / folder it came from
    folder_speaker: str | None = None  # first subfolder inside a given folder or zip
    sha256: str = ""
    base: str = ""  # clip file name stem


class _ZipTooLarge(Exception):
    """Internal: a zip unpacked past its limit."""


# ----- files, folders, zips -----


class ZipBudget:
    """Bytes the zips of one build may still write: ``max_upload_mb x ZIP_EXPANSION`` for the whole request.

    Written bytes are counted (not the headers' claims), and bytes of a zip refused half-way count too:
    ten lying zips cannot each write up to the limit before their refusal.
    """

    def __init__(self, max_upload_mb: int) -> None:
        self.limit = max_upload_mb * ZIP_EXPANSION * 2**20
        self.remaining = self.limit

    def describe(self) -> str:
        return f"{self.limit / 2**20:.0f} MB in all (max_upload_mb x {ZIP_EXPANSION}) for the zips of one build"


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_server_folder(text: str, roots: Sequence[Path]) -> Path:
    """The guard for a folder typed by a user: a real directory inside one of ``roots``.

    A relative path is taken under each root in turn; ``..``, ``~`` and symlinks are resolved first, so a
    path that leads out of every root is refused (the same message whether or not it exists elsewhere).

    Args:
        text: the path as typed.
        roots: the allowed roots, resolved (``DatasetEngine.server_roots``); empty = the feature is off.

    Returns:
        The resolved folder.

    Raises:
        InputError: the feature is off, or the folder is not a directory inside a root.
    """
    text = text.strip()
    if not roots:
        raise InputError(
            "Server folders are off: this app can be reached from other machines (--host beyond loopback or "
            "--share) and no server_folders setting names the folders it may read. Upload the files or a zip "
            "instead, or set server_folders (XTTSLAB_SERVER_FOLDERS or my_config.py)."
        )
    try:
        raw = Path(text).expanduser()
    except RuntimeError:  # "~someone" with no such user
        raw = Path(text)
    for candidate in [raw] if raw.is_absolute() else [root / raw for root in roots]:
        try:
            real = candidate.resolve()
            if any(_inside(real, root) for root in roots) and real.is_dir():
                return real
        except (OSError, RuntimeError, ValueError):  # unreadable parent, symlink loop, a NUL in the path
            continue
    raise InputError(
        f"Folder not found in the allowed server folders: {text}. A server folder must be inside "
        f"{', '.join(str(r) for r in roots)} (a relative path is taken under them; add more with the "
        "server_folders setting)."
    )


def _walk(folder: Path, report: DatasetReport) -> list[Path]:
    """Every file under ``folder`` (sorted, hidden ones left out); problems go to the report, never raised.

    Links are followed only while they stay inside the folder: a file or subfolder that leads out of it
    is skipped and listed ("outside"), so a folder the guard allowed cannot reach past it. Unreadable
    files and folders are listed ("unreadable").
    """
    top = folder.resolve()
    files: list[Path] = []
    seen: set[Path] = set()

    def shown(path: Path) -> str:
        return path.relative_to(folder).as_posix() if _inside(path, folder) and path != folder else folder.name

    def skip(path: Path, reason: str, why: str) -> None:
        report.files.append(FileReport(shown(path), "skipped", reason, f"{shown(path)}: {why}"))

    def unreadable(error: OSError) -> None:
        skip(Path(error.filename) if error.filename else folder, "unreadable", f"cannot be read ({error.strerror})")

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=True):
        here = Path(dirpath)
        real_here = here.resolve()
        if real_here in seen:  # a second link to a folder already searched (or a loop)
            dirnames[:] = []
            continue
        seen.add(real_here)
        keep = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue  # hidden folders: editor and OS droppings
            if not _inside((here / name).resolve(), top):
                skip(here / name, "outside", "a link that leads outside the folder (not followed)")
                continue
            keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            file = here / name
            if name.startswith("."):
                continue
            real = file.resolve()
            if not _inside(real, top):
                skip(file, "outside", "a link that leads outside the folder (not read)")
            elif not real.is_file():
                continue  # a broken link, a socket, a fifo
            elif not os.access(real, os.R_OK):
                skip(file, "unreadable", "cannot be read (permission denied)")
            else:
                files.append(file)
    return sorted(files)


def expand_inputs(
    paths: list[Path], staging: Path, options: DatasetOptions, report: DatasetReport, max_upload_mb: int
) -> list[Source]:
    """Inputs -> audio files: uploads as they are, folders searched (links kept inside them), zips unpacked
    safely within one budget for the whole request (``ZipBudget``)."""
    sources: list[Source] = []
    budget = ZipBudget(max_upload_mb)
    for n, path in enumerate(paths):
        if path.is_dir():
            for file in _walk(path, report):
                rel = file.relative_to(path)
                if file.suffix.lower() == ".zip":
                    sources.extend(
                        unzip(file, staging / f"{n}-{len(sources)}", report, str(rel), max_upload_mb, budget)
                    )
                elif file.suffix.lower() not in AUDIO_EXTENSIONS:
                    report.files.append(
                        FileReport(
                            rel.as_posix(), "skipped", "not audio", f"{rel.as_posix()}: not an audio file extension"
                        )
                    )
                else:
                    sources.append(
                        Source(
                            file,
                            rel.as_posix(),
                            _key(rel.as_posix()),
                            path.name,
                            rel.parts[0] if options.speaker_from_folder and len(rel.parts) > 1 else None,
                        )
                    )
        elif path.is_file() and path.suffix.lower() == ".zip":
            sources.extend(unzip(path, staging / str(n), report, path.name, max_upload_mb, budget))
        elif path.is_file():
            sources.append(Source(path, path.name, _key(path.name), path.name))
        else:
            report.files.append(FileReport(str(path), "skipped", "not found", f"{path}: no such file or folder"))
    return sources


def unzip(
    path: Path, dest: Path, report: DatasetReport, label: str, max_upload_mb: int, budget: ZipBudget | None = None
) -> list[Source]:
    """Unpack the audio entries of a zip, refusing unsafe paths and zip bombs.

    Args:
        budget: what the build's zips may still write (shared by every zip of one request); None = this
            zip alone gets ``max_upload_mb x ZIP_EXPANSION``.
    """
    budget = budget or ZipBudget(max_upload_mb)
    if path.stat().st_size > max_upload_mb * 2**20:
        report.files.append(
            FileReport(
                label,
                "skipped",
                "too large",
                f"{label} is larger than {max_upload_mb} MB (max_upload_mb)",
            )
        )
        return []
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        report.files.append(FileReport(label, "skipped", "not a zip", f"{label} is not a readable zip archive"))
        return []
    sources: list[Source] = []
    with archive:
        entries = [i for i in archive.infolist() if not i.is_dir()]
        declared = sum(i.file_size for i in entries)
        if declared > budget.remaining or len(entries) > MAX_ZIP_ENTRIES:
            spent = budget.limit - budget.remaining
            report.files.append(
                FileReport(
                    label,
                    "skipped",
                    "too large",
                    f"{label} unpacks to {declared / 2**20:.0f} MB in {len(entries)} files; the limit is "
                    f"{budget.describe()}"
                    + (f", {spent / 2**20:.0f} MB of it already used" if spent else "")
                    + f", and {MAX_ZIP_ENTRIES} files",
                )
            )
            return []
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
                        budget.remaining -= len(chunk)
                        if budget.remaining < 0:  # the header lied about the size: stop here
                            raise _ZipTooLarge
                        out.write(chunk)
            except _ZipTooLarge:
                report.files.append(
                    FileReport(
                        label,
                        "skipped",
                        "too large",
                        f"{label} unpacks to more than its share of {budget.describe()}; nothing from it was used",
                    )
                )
                budget.remaining = 0  # spent: later zips of this build are refused before they write
                shutil.rmtree(dest, ignore_errors=True)
                return []
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                report.files.append(FileReport(shown, "skipped", "corrupt", f"{posix}: cannot be unpacked ({exc})"))
                continue
            sources.append(Source(target, shown, _key(posix), label, parts[0] if len(parts) > 1 else None))
        if junk:
            report.notices.append(f"{label}: {junk} hidden or __MACOSX entries ignored.")
    return sources


def source_speaker(source: Source, row: TranscriptRow | None, options: DatasetOptions, name: str) -> str:
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


def unique_sources(sources: list[Source], report: DatasetReport) -> list[Source]:
    """Hash every source, report later copies of the same audio as duplicates, give the rest clip name stems."""
    for source in sources:
        source.sha256 = file_sha256(source.path)
    unique: list[Source] = []
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
    return unique


def _assign_bases(sources: list[Source]) -> None:
    """Clip name stems: the file name, plus a hash when two different files would share names."""
    stems = {s.sha256: _safe_stem(s.name) for s in sources}
    counts = Counter(stems.values())
    taken = set(stems.values())
    for s in sources:
        stem = stems[s.sha256]
        # "a" cut into a_000.wav would meet a file named "a_000": both get a hash too
        clash = counts[stem] > 1 or re.sub(r"_(\d{3}|r\d+)$", "", stem) in taken - {stem}
        s.base = f"{stem}-{s.sha256[:8]}" if clash else stem


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", PurePosixPath(name).stem, flags=re.UNICODE).strip("._")
    return stem[:60] or "audio"


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


def _first_separator(line: str) -> str | None:
    """The separator that ends a line's first column: the earliest of ``| tab ; ,`` in it (file names hold none)."""
    found = [(line.find(sep), sep) for sep in _SEPARATORS if sep in line]
    return min(found)[1] if found else None


def detect_separator(name: str, lines: Sequence[tuple[int, str]]) -> str:
    """The column separator of a transcripts file: ``|``, tab, ``;`` or ``,``.

    Each line votes with the separator that ends its first column (the file reference). All lines
    agreeing is the normal case; when they disagree, ``|`` or tab wins only if every line holds it
    (a comma inside one file name), otherwise the file is refused: a guess would cut texts.

    Raises:
        InputError: no separator at all, or lines that disagree.
    """
    votes: dict[str, int] = {}  # separator -> first line that voted for it
    for number, line in lines:
        sep = _first_separator(line)
        if sep is not None:
            votes.setdefault(sep, number)
    if not votes:
        raise InputError(
            f"{name}: expected 'file|text' lines (or LJSpeech / coqui metadata), got {lines[0][1][:60]!r}."
        )
    if len(votes) == 1:
        return next(iter(votes))
    for sep in ("|", "\t"):
        if all(sep in line for _, line in lines if _first_separator(line)):
            return sep
    first, second = sorted(votes.items(), key=lambda kv: kv[1])[:2]
    raise InputError(
        f"{name} mixes column separators: line {first[1]} starts with a column ended by "
        f"{_SEPARATOR_NAMES[first[0]]}, line {second[1]} with one ended by {_SEPARATOR_NAMES[second[0]]}. "
        "Use one separator for the whole file ('file|text' is safest: texts rarely hold a '|')."
    )


def _trim(cells: list[str]) -> list[str]:
    """Cells without trailing empty ones ('a.wav|text|' has two columns of content)."""
    end = len(cells)
    while end > 2 and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def _reads_as(columns: Sequence[str], cells: Sequence[str]) -> str:
    """How a parsed row reads, column by column: ``file='a.wav', text='Hello', speaker_name=' world'``."""
    names = list(columns) + [f"extra{i}" for i in range(1, len(cells) - len(columns) + 1)]
    return ", ".join(f"{n}={c!r}" for n, c in zip(names, cells))


def parse_transcripts(path: str | Path) -> tuple[list[TranscriptRow], list[str]]:
    """Read a transcripts file.

    Accepted forms: ``file|text`` lines; LJSpeech ``id|text|normalized``; or a file with a header naming
    its columns, like coqui's ``audio_file|text|speaker_name`` (quoted fields as the csv module writes
    them). The separator may be ``|``, tab, ``;`` or ``,`` (``detect_separator``). ``;`` and ``,`` are
    punctuation that texts hold, so such files are read with CSV quoting and must be unambiguous: two
    columns without a header (``file,text``), the header's columns with one.

    One rule picks the text when a row holds two: the spoken form wins (numbers and abbreviations
    written out, "fourteen fifty-five" rather than "1455"), because that is what the speaker said and
    what the model learns to say. Headerless, that is LJSpeech's third column; with a header, the first
    of ``normalized_text``, ``normalized``, ``transcription`` present, then ``text``, ``transcript``,
    ``sentence``. A row whose spoken-form cell is empty falls back to the raw text. A speaker column
    (``speaker_name`` or ``speaker``) is read here; whether the build trusts it is decided there
    (see ``speaker_column_rule``).

    Errors (the file is refused, the message quotes the row and how the first row reads): a row with
    more columns than the file's form (``file|a | b | c``; an unquoted comma in a comma file's text), a
    ``;``/``,`` file row whose cell after the text starts with a space (a cut text: ``Hello, world`` read
    as text ``Hello`` and speaker `` world``; quote it), and two rows giving different texts for one file.
    Warnings (in ``problems``, the row is not used): a line without a separator or without file or text,
    and a row repeating an earlier one exactly.

    Args:
        path: the transcripts file (UTF-8).

    Returns:
        (rows, problems): the usable rows, and one message per line that could not be used.

    Raises:
        InputError: missing, too large, not UTF-8, ambiguous (see above), or no usable row.
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
    name = path.name
    sep = detect_separator(name, lines)
    shown_sep = _SEPARATOR_NAMES[sep]
    prose = sep in _PROSE_SEPARATORS
    first_line = lines[0][1]
    head = [
        c.strip().lower() for c in (next(csv.reader([first_line], delimiter=sep)) if prose else first_line.split(sep))
    ]
    has_header = head[0] in _FILE_COLUMNS and any(c in _TEXT_COLUMNS for c in head[1:])

    def split(line: str) -> list[str]:
        # csv quoting for headers (coqui's loader reads them so) and for ';'/',' (texts hold them);
        # a headerless '|' or tab list is split as is (LJSpeech texts hold bare quotes)
        return next(csv.reader([line], delimiter=sep)) if prose or has_header else line.split(sep)

    data = lines[1:] if has_header else lines
    parsed = [(number, line, split(line)) for number, line in data]
    if has_header:
        columns = [c.strip().lower() for c in split(lines[0][1])]
    else:
        counts = Counter(len(cells) for _, _, cells in parsed if len(cells) >= 2)
        # the file's form: its most common column count (ties: the smaller), 2 or 3 (LJSpeech) at most
        form = min(max(counts.items(), key=lambda kv: (kv[1], -kv[0]))[0], 2 if prose else 3) if counts else 2
        columns = ["file", "text", "normalized"][:form]
    first_row = next((cells for _, _, cells in parsed if len(cells) >= 2), None)
    first_reads = f" The first row reads as {_reads_as(columns, first_row)}." if first_row else ""
    quote_hint = (
        f'Quote texts that hold a {shown_sep} the way spreadsheets save CSV ("Hello, world"), or separate the '
        "columns with '|'."
        if prose
        else f"A text cannot hold a {shown_sep}: remove it (or give the file a header line and quote the text)."
    )

    rows: list[TranscriptRow] = []
    problems: list[str] = []
    if has_header:
        file_col = columns.index(next(c for c in _FILE_COLUMNS if c in columns))
        text_cols = [columns.index(c) for c in _TEXT_COLUMNS if c in columns]  # spoken form first
        spk_name = next((c for c in _SPEAKER_COLUMNS if c in columns), None)
        spk_col = columns.index(spk_name) if spk_name else None
    else:
        file_col, text_cols, spk_col = 0, [2, 1] if len(columns) == 3 else [1], None
    after_text = min(text_cols) + 1
    for number, line, cells in parsed:
        if len(cells) < 2:
            problems.append(f"line {number}: no {shown_sep} between file and text")
            continue
        content_cells = _trim(cells)
        if len(content_cells) > len(columns):
            raise InputError(
                f"{name}: line {number} splits into {len(content_cells)} columns at {shown_sep} where the file has "
                f"{len(columns)} ({sep.join(columns)}): it reads as {_reads_as(columns, cells)}. {quote_hint}"
                f"{first_reads}"
            )
        if prose and '"' not in line:
            cut = next(
                (
                    i
                    for i in range(after_text, len(content_cells))
                    if i != file_col and cells[i][:1].isspace() and cells[i].strip()
                ),
                None,
            )
            if cut is not None:
                raise InputError(
                    f"{name}: line {number} is ambiguous: it reads as {_reads_as(columns, cells)}, but the space "
                    f"after the {shown_sep} before {columns[cut]} looks like a {shown_sep} inside the text. "
                    f"{quote_hint}{first_reads}"
                )
        text = next((clean_text(cells[c]) for c in text_cols if c < len(cells) and clean_text(cells[c])), "")
        speaker = clean_text(cells[spk_col]) if spk_col is not None and spk_col < len(cells) else None
        if not cells[file_col].strip() or not text:
            problems.append(f"line {number}: no file or no text")
            continue
        rows.append(TranscriptRow(cells[file_col].strip(), text, speaker or None, number))
    rows = _without_duplicates(name, rows, problems)
    if not rows:
        raise InputError(f"{path.name} holds no usable 'file|text' row ({'; '.join(problems[:3])}).")
    return rows, problems


def _without_duplicates(name: str, rows: list[TranscriptRow], problems: list[str]) -> list[TranscriptRow]:
    """One row per file: an exact repeat is a warning (used once), two different texts for one file an error."""
    first: dict[str, TranscriptRow] = {}
    kept: list[TranscriptRow] = []
    for row in rows:
        earlier = first.get(_key(row.file))
        if earlier is None:
            first[_key(row.file)] = row
            kept.append(row)
        elif (earlier.text, earlier.speaker) == (row.text, row.speaker):
            problems.append(f"line {row.line}: repeats line {earlier.line} ({row.file}); used once")
        else:
            raise InputError(
                f"{name}: lines {earlier.line} and {row.line} both give a text for {row.file} "
                f"({earlier.text!r} and {row.text!r}); keep the right one and delete the other."
            )
    return kept


def match_transcripts(
    rows: Sequence[TranscriptRow], sources: Sequence[Source]
) -> tuple[dict[str, TranscriptRow], list[str], list[str]]:
    """Pair transcript rows with source files (by relative path, else by file name without extension).

    Returns:
        (by source sha256, sources with no row, rows that name no source).
    """
    by_key = {s.key: s for s in sources}
    by_stem: dict[str, list[Source]] = {}
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


def read_transcripts(
    transcripts: str | Path | None,
    sources: list[Source],
    options: DatasetOptions,
    name: str,
    report: DatasetReport,
    log_fn: LogFn,
) -> tuple[dict[str, TranscriptRow], dict[str, Any] | None]:
    """Parse the build's transcripts file and pair its rows with the sources.

    Fills the report's missing / extra lists; a speaker column that fails ``speaker_column_rule`` is
    dropped with a notice.

    Returns:
        (rows by source sha256, the match summary for dataset.json; None without a transcripts file).
    """
    rows: dict[str, TranscriptRow] = {}
    transcripts_info: dict[str, Any] | None = None
    if transcripts is not None and str(transcripts).strip():
        parsed, problems = parse_transcripts(transcripts)
        rows, report.transcripts_missing, report.transcripts_extra = match_transcripts(parsed, sources)
        report.transcripts_extra = problems + report.transcripts_extra
        if problems:  # warnings: said out loud, not only listed among the rows that name no file
            report.notices.append(
                f"Warning: {len(problems)} line(s) of {Path(transcripts).name} not used: "
                + "; ".join(problems[:5])
                + (" ..." if len(problems) > 5 else "")
            )
            log_fn(report.notices[-1])
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
            log_fn(report.notices[-1])
            rows = {k: replace(r, speaker=None) for k, r in rows.items()}
            transcripts_info["speaker_column"] = "ignored"
    return rows, transcripts_info
