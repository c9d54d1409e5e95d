"""The coqui dataset format on disk: one owner for reading and writing it.

A dataset folder holds ``wavs/*.wav``, ``metadata_train.csv`` and ``metadata_eval.csv`` (pipe-separated,
header ``audio_file|text|speaker_name``, quoted as Python's csv module writes it, which is what coqui's
"coqui" formatter reads) and ``dataset.json``. The dataset builder, the trainer, the eval loop, the
benchmarks and the tests all read and write it through these functions.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.core.audio import write_text

CSV_HEADER = ("audio_file", "text", "speaker_name")
SPLITS = ("train", "eval")
INFO_FILE = "dataset.json"
WAVS = "wavs"


@dataclass(frozen=True)
class ClipEntry:
    """One metadata row."""

    audio_file: str  # as written: relative to the dataset folder ("wavs/x.wav"), or absolute
    text: str
    speaker_name: str = ""

    def path(self, folder: Path) -> Path:
        """The clip's file (relative entries are under ``folder``)."""
        audio = Path(self.audio_file)
        return audio if audio.is_absolute() else folder / audio


def metadata_path(folder: Path, split: str) -> Path:
    """``metadata_train.csv`` / ``metadata_eval.csv`` of a dataset folder."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return folder / f"metadata_{split}.csv"


def format_metadata(entries: Iterable[ClipEntry]) -> str:
    """The CSV text: header, then one ``audio_file|text|speaker_name`` row per entry."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="|", lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for e in entries:
        writer.writerow([e.audio_file, e.text, e.speaker_name])
    return buffer.getvalue()


def write_metadata(folder: Path, split: str, entries: Iterable[ClipEntry]) -> bool:
    """Write one split atomically, only when its content changed. Returns True when it was written."""
    target = metadata_path(folder, split)
    content = format_metadata(entries)
    if target.is_file() and target.read_text(encoding="utf-8") == content:
        return False
    write_text(target, content)
    return True


def read_metadata(folder: Path, split: str) -> list[ClipEntry]:
    """The rows of one split ([] when the file is absent); rows without a file or a text are left out.

    The header is optional: with one, columns are found by name; without, they are
    ``audio_file|text[|speaker_name]`` in that order.
    """
    path = metadata_path(folder, split)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="|"))
    columns = {name: i for i, name in enumerate(CSV_HEADER)}
    if rows and {"audio_file", "text"} <= {c.strip().lower() for c in rows[0]}:
        header = [c.strip().lower() for c in rows.pop(0)]
        columns = {name: header.index(name) for name in CSV_HEADER if name in header}

    def cell(row: list[str], name: str) -> str:
        i = columns.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    out = []
    for row in rows:
        entry = ClipEntry(cell(row, "audio_file"), cell(row, "text"), cell(row, "speaker_name"))
        if entry.audio_file and entry.text:
            out.append(entry)
    return out


def write_dataset(folder: Path, language: str, train: Iterable[ClipEntry], eval_: Iterable[ClipEntry] = ()) -> Path:
    """Both metadata CSVs and a minimal ``dataset.json``: a dataset made outside the builder (an import, a
    benchmark, a test fixture). The clips' audio must already be in place."""
    write_metadata(folder, "train", train)
    write_metadata(folder, "eval", eval_)
    write_text(folder / INFO_FILE, json.dumps({"language": language}) + "\n")
    return folder


def read_info(folder: Path) -> dict[str, Any] | None:
    """``dataset.json`` as a dict, or None when it is absent.

    Raises:
        ValueError: the file exists but is not a JSON object.
    """
    path = folder / INFO_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


__all__ = [
    "CSV_HEADER",
    "INFO_FILE",
    "SPLITS",
    "WAVS",
    "ClipEntry",
    "format_metadata",
    "metadata_path",
    "read_info",
    "read_metadata",
    "write_dataset",
    "write_metadata",
]
