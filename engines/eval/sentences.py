"""Sentence sets: the built-in ones (samples/sentences), a dataset's eval split, or a user's CSV/TXT file."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from config import Settings
from engines.core.audio import write_text
from engines.core.errors import InputError
from engines.core.names import is_folder_name, speech_language
from engines.datasets.manifest import metadata_path, read_info, read_metadata
from engines.scoring import metrics


@dataclass(frozen=True)
class Sentence:
    """One sentence to speak (and, for a dataset's eval split, its real recording)."""

    id: str
    text: str
    language: str
    audio: str | None = None  # absolute path of a real recording of this text
    speaker: str | None = None


@dataclass(frozen=True)
class SentenceSet:
    name: str  # what the user picked
    sentences: tuple[Sentence, ...]

    @property
    def has_audio(self) -> bool:
        return any(s.audio for s in self.sentences)

    @property
    def languages(self) -> list[str]:
        return sorted({s.language for s in self.sentences})


def builtin_sets(settings: Settings) -> list[str]:
    """Names of the shipped sentence sets (samples/sentences/<name>.csv)."""
    folder = settings.path("samples_dir") / "sentences"
    return sorted(p.stem for p in folder.glob("*.csv")) if folder.is_dir() else []


def dataset_sets(settings: Settings) -> list[str]:
    """Names of datasets that have an eval split (datasets/<name>/metadata_eval.csv)."""
    root = settings.path("datasets_dir")
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "metadata_eval.csv").is_file())


def sentence_set_choices(settings: Settings) -> list[tuple[str, str]]:
    """(label, spec) for every sentence set the user can pick (built-in sets, then datasets' eval splits)."""
    out = [(f"Built-in: {name}", f"builtin:{name}") for name in builtin_sets(settings)]
    out += [(f"Dataset eval split: {name} (with recordings)", f"dataset:{name}") for name in dataset_sets(settings)]
    return out


def _unique_ids(sentences: list[Sentence]) -> list[Sentence]:
    seen: dict[str, int] = {}
    out = []
    for s in sentences:
        base = s.id or "s"
        if base in seen:
            seen[base] += 1
            s = dataclasses.replace(s, id=f"{base}-{seen[base]}")
        else:
            seen[base] = 1
        out.append(s)
    return out


def _read_csv_sentences(path: Path, language: str | None) -> list[Sentence]:
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path.name} is not UTF-8 text; save it as UTF-8 CSV.") from exc
    try:
        dialect = csv.Sniffer().sniff(raw[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(raw), dialect=dialect)
    try:
        return _csv_rows(reader, path, language)
    except csv.Error as exc:  # a NUL byte, an unclosed quote over a huge field, ...
        raise InputError(f"{path.name} is not a readable CSV file (line {reader.line_num}: {exc}).") from None


def _csv_rows(reader: csv.DictReader, path: Path, language: str | None) -> list[Sentence]:
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    if "text" not in columns:
        raise InputError(
            f"{path.name} has no 'text' column (columns found: {', '.join(columns) or 'none'}). A sentence CSV needs "
            "a header row with 'text' and optionally 'id' and 'language'; or upload a .txt file with one sentence "
            "per line."
        )
    out = []
    for i, row in enumerate(reader, start=1):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        text = row.get("text", "")
        if not text:
            continue
        out.append(
            Sentence(
                id=row.get("id") or f"s{i:03d}",
                text=text,
                language=row.get("language") or language or "",
                speaker=row.get("speaker") or None,
            )
        )
    return out


def _read_txt_sentences(path: Path, language: str | None) -> list[Sentence]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path.name} is not UTF-8 text.") from exc
    texts = [line.strip() for line in lines if line.strip()]
    return [Sentence(id=f"s{i:03d}", text=t, language=language or "") for i, t in enumerate(texts, start=1)]


def _read_dataset(settings: Settings, name: str) -> list[Sentence]:
    root = settings.path("datasets_dir")
    if not name or "/" in name or "\\" in name or ".." in name:
        raise InputError(f"Dataset name {name!r} is not allowed.")
    folder = root / name
    meta = metadata_path(folder, "eval")
    if not meta.is_file():
        known = sorted(p.name for p in root.iterdir() if (p / "metadata_eval.csv").is_file()) if root.is_dir() else []
        raise InputError(
            f"Dataset {name!r} has no eval split ({meta.name} not found). Datasets with one: {', '.join(known) or 'none'}."
        )
    try:
        language = str((read_info(folder) or {}).get("language") or "")
    except (ValueError, AttributeError) as exc:
        raise InputError(f"{folder / 'dataset.json'} is not valid JSON ({exc}).") from exc
    out = []
    for entry in read_metadata(folder, "eval"):
        audio = entry.path(folder)
        out.append(
            Sentence(
                id=audio.stem, text=entry.text, language=language, audio=str(audio), speaker=entry.speaker_name or None
            )
        )
    return out


def load_sentences(spec: str, settings: Settings, language: str | None = None, limit: int | None = None) -> SentenceSet:
    """Resolve a sentence-set spec to sentences.

    Args:
        spec: ``"builtin:<name>"``, ``"dataset:<name>"`` or a path to a .csv (needs a ``text`` column;
            ``id`` and ``language`` optional) or a .txt (one sentence per line).
        settings: for the samples and datasets folders.
        language: language of sentences that name none.
        limit: keep the first N sentences.

    Returns:
        The sentences, with unique ids and a language each.

    Raises:
        InputError: unknown set, missing file, no text column, no sentences, or a sentence without a language.
    """
    spec = (spec or "").strip()
    shown = spec
    if not spec:
        raise InputError("Pick a sentence set: a built-in one, a dataset's eval split, or upload a CSV/TXT file.")
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        path = settings.path("samples_dir") / "sentences" / f"{name}.csv"
        if not is_folder_name(name) or not path.is_file():  # a name, never a path out of the samples
            raise InputError(f"No built-in sentence set {name!r}. Built-in sets: {', '.join(builtin_sets(settings))}.")
        sentences = _read_csv_sentences(path, language)
    elif spec.startswith("dataset:"):
        sentences = _read_dataset(settings, spec.split(":", 1)[1])
        if language:
            sentences = [dataclasses.replace(s, language=s.language or language) for s in sentences]
    else:
        path = Path(spec.removeprefix("file:")).expanduser()
        shown = path.name  # an upload's path is Gradio's temp folder, which means nothing to the user
        if not path.is_file():
            raise InputError(f"Sentence file not found: {_shown_path(path)}")
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            sentences = _read_csv_sentences(path, language)
        elif suffix in (".txt", ""):
            sentences = _read_txt_sentences(path, language)
        else:
            raise InputError(f"{path.name}: sentence files must be .csv (with a 'text' column) or .txt (one per line).")
    if limit is not None and limit > 0:
        sentences = sentences[: int(limit)]
    if not sentences:
        raise InputError(f"The sentence set {shown!r} holds no sentences. Add at least one non-empty line.")
    missing = [s.id for s in sentences if not s.language]
    if missing:
        raise InputError(
            f"{len(missing)} sentence(s) have no language ({', '.join(missing[:5])}): pick the language of the set."
        )
    fixed = []
    for s in sentences:
        try:
            fixed.append(dataclasses.replace(s, language=speech_language(s.language)))
        except InputError as exc:
            raise InputError(f"Sentence {s.id!r}: {exc}") from None
        if not metrics.normalize(s.text, fixed[-1].language):
            raise InputError(f"Sentence {s.id!r} ({s.text!r}) has no words left after normalization; remove it.")
    return SentenceSet(spec, tuple(_unique_ids(fixed)))


def _shown_path(path: Path) -> str:
    """A path for a message: the name alone for a file in a temp folder (an upload), else the full path."""
    roots = [Path(tempfile.gettempdir())]
    if os.environ.get("GRADIO_TEMP_DIR"):
        roots.append(Path(os.environ["GRADIO_TEMP_DIR"]))
    resolved = path.resolve()
    if any(resolved.is_relative_to(root.resolve()) for root in roots):
        return path.name
    return str(path)


def write_sentences(path: Path, sentence_set: SentenceSet) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "text", "language", "audio", "speaker"])
    for s in sentence_set.sentences:
        writer.writerow([s.id, s.text, s.language, s.audio or "", s.speaker or ""])
    return write_text(path, buf.getvalue())


def read_sentences(path: Path, name: str) -> SentenceSet:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return SentenceSet(
        name,
        tuple(
            Sentence(r["id"], r["text"], r["language"], r.get("audio") or None, r.get("speaker") or None) for r in rows
        ),
    )
