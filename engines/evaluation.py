"""Closed-loop evaluation: TTS -> ASR -> WER/CER, RTF and speaker similarity, with reports.

Runs without the UI::

    python -m engines.evaluation --config eval.json            # writes workspace/reports/<run-id>/
    python -m engines.evaluation --config eval.json --tiny-models --workspace /tmp/ws

or from Python::

    from config import load_settings
    from engines import Engines
    from engines.evaluation import EvalConfig
    eng = Engines.create(load_settings())
    run = eng.evaluation.run(EvalConfig(sentences="builtin:en", models=("xtts_v2",), voices=("me.wav",)))
    print(run.folder / "report.html")

A run folder holds ``config.json`` (everything needed to resume), ``sentences.csv``,
``results.csv`` (one row per utterance, rewritten atomically after every batch), ``summary.json``
(metrics + provenance), ``report.html`` and ``audio/``. A stopped or crashed run keeps its
finished utterances; ``resume(run_id)`` skips them.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import math
import random
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from config import XTTS_LANGUAGES, Settings
from engines import metrics, report
from engines.audio import load_audio, resample, save_wav, write_json, write_text
from engines.dataset_format import metadata_path, read_info, read_metadata
from engines.errors import BusyError, InputError, LabError
from engines.options import TTSOptions
from engines.provenance import git_commit, utc_now, versions

if TYPE_CHECKING:
    from engines import Engines

log = logging.getLogger(__name__)

GROUND_TRUTH = "ground truth"  # the system name of rows that score real recordings
ASR_SR = 16000
BATCH_MAX_SECONDS = 30.0  # Whisper's window: shorter clips are decoded in batches
RUN_STATES = ("running", "stopped", "failed", "done")
# What a system's numbers rest on: each row records whether its TTS and its ASR had trained or random weights
# (results.csv columns tts_weights / asr_weights; "" = no TTS, the ground-truth recordings).
RANDOM = "random"  # tiny random-weight models (tiny mode, or a model fine-tuned from one)
REAL = "real"  # trained weights
TINY_GPT_CHANNELS = 256  # an XTTS GPT narrower than this is a toy (the tiny model or one fine-tuned from it)

ProgressFn = Callable[..., Any]
LogFn = Callable[[str], Any]


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation: sentences x systems (models x voices) x repeats, and how to score them."""

    sentences: str  # "builtin:<name>" (samples/sentences), "dataset:<name>" (its eval split) or a .csv/.txt path
    models: tuple[str, ...] = ()  # TTS model ids ("xtts_v2", "tiny", a workspace/models name or folder); () = default
    voices: tuple[str, ...] = ()  # "speaker:<built-in name>", "voice:<saved voice>" or an audio file path
    language: str | None = None  # language of sentences that name none (TXT files, CSVs without a language column)
    max_sentences: int | None = None  # evaluate the first N sentences only
    repeats: int = 1  # syntheses per sentence and system (seed + repeat index each)
    seed: int = 1234  # generation seed (utterance seed = seed + repeat) and bootstrap seed
    # sampling settings of every system (language and seed are set per utterance); None = settings.generation
    generation: TTSOptions | None = None
    # ASR
    asr_model: str | None = None  # Whisper size or checkpoint; None = the ASR engine's default
    beam_size: int | None = 5  # None = greedy
    asr_batch_size: int = 16  # clips under 30 s decoded together
    ground_truth: bool = True  # also transcribe the set's real recordings (system "ground truth")
    bootstrap: int = 1000  # bootstrap resamples for confidence intervals
    name: str = ""  # a label for the run (shown in the run list)
    # checkpoint ranking (filled by rank_checkpoints): model folder -> checkpoint file, and the training run
    checkpoints: tuple[tuple[str, str], ...] = ()
    training_run: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], defaults: TTSOptions | None = None) -> EvalConfig:
        """Build from JSON-like data (lists become tuples; unknown keys are an error).

        Generation settings come as ``"generation": {...}`` or by their own names at the top level (as older
        run folders store them); either way they start from ``defaults`` (the app's ``settings.generation``).

        Raises:
            InputError: an unknown key or a missing ``sentences``.
        """
        data = dict(data)
        flat = {k: data.pop(k) for k in list(data) if k in _GENERATION_KEYS}
        nested = data.pop("generation", None)
        if nested is not None and not isinstance(nested, dict | TTSOptions):
            raise InputError("The eval config's 'generation' must be an object of generation settings.")
        given = {**(asdict(nested) if isinstance(nested, TTSOptions) else nested or {}), **flat}
        given = {k: v for k, v in given.items() if k not in ("language", "seed")}  # set per utterance
        bad = sorted(set(given) - _GENERATION_KEYS)
        if bad:
            raise InputError(
                f"Unknown generation setting(s): {', '.join(bad)}. Known: {', '.join(sorted(_GENERATION_KEYS))}."
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"Unknown eval config key(s): {', '.join(unknown)}. Known keys: {', '.join(sorted(known))}."
            )
        if not data.get("sentences"):
            raise InputError('The eval config needs \'sentences\' (e.g. "builtin:en", "dataset:<name>" or a CSV path).')
        values = dict(data)
        for key in ("models", "voices"):
            if isinstance(values.get(key), str):
                values[key] = (values[key],)
            if key in values:
                values[key] = tuple(str(v) for v in values[key] or ())
        if "checkpoints" in values:
            values["checkpoints"] = tuple((str(a), str(b)) for a, b in values["checkpoints"] or ())
        if given or defaults is not None:
            values["generation"] = dataclasses.replace(defaults or TTSOptions(), **given)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_defaults(self, defaults: TTSOptions) -> EvalConfig:
        """This config with ``generation`` filled in from ``defaults`` when it has none."""
        return self if self.generation is not None else dataclasses.replace(self, generation=defaults)

    def tts_options(self, language: str, repeat: int) -> TTSOptions:
        """The options of one utterance: the run's generation settings, its language, seed + repeat."""
        return dataclasses.replace(self.generation or TTSOptions(), language=language, seed=self.seed + repeat)


_GENERATION_KEYS = frozenset(f.name for f in dataclasses.fields(TTSOptions))


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


@dataclass(frozen=True)
class Voice:
    """A reference voice as the TTS engine takes it."""

    spec: str  # as given
    kind: str  # "file" | "saved" | "speaker"
    label: str  # short name for tables
    files: tuple[str, ...] = ()  # reference clips (file / saved voice)
    speaker: str | None = None  # built-in speaker
    display: str = ""  # "speaker:Name", "voice:name" or "file:clip.wav" (tables show this, never full paths)


@dataclass(frozen=True)
class System:
    """A model speaking with a voice."""

    name: str  # unique label, "model / voice"
    slug: str  # folder-safe name for audio/
    model_id: str
    model_label: str
    voice: Voice
    checkpoint: str | None = None  # when ranking checkpoints


@dataclass
class RunProgress:
    """What a running evaluation reports after each batch."""

    run_id: str
    folder: Path
    done: int  # utterances finished (including ones from before a resume)
    total: int
    state: str  # running / stopped / failed / done
    message: str = ""
    summary: dict[str, Any] | None = None  # filled when the run ends

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass
class RunInfo:
    """A past run, for the run list."""

    run_id: str
    folder: Path
    name: str
    created: str
    state: str
    done: int
    total: int
    sentences: str
    systems: list[str]
    has_report: bool


# --------------------------------------------------------------------------- results.csv

# (column, type) in file order; types drive parsing when results.csv is read back.
RESULT_COLUMNS: tuple[tuple[str, type], ...] = (
    ("key", str),
    ("system", str),
    ("model", str),
    ("voice", str),
    ("checkpoint", str),
    ("sentence_id", str),
    ("repeat", int),
    ("language", str),
    ("length_bucket", str),
    ("ref_text", str),
    ("hyp_text", str),
    ("ref_norm", str),
    ("hyp_norm", str),
    ("normalizer", str),
    ("unit", str),
    ("ref_words", int),
    ("word_errors", int),
    ("substitutions", int),
    ("deletions", int),
    ("insertions", int),
    ("hits", int),
    ("wer", float),
    ("ref_chars", int),
    ("char_errors", int),
    ("char_substitutions", int),
    ("char_deletions", int),
    ("char_insertions", int),
    ("cer", float),
    ("audio_seconds", float),
    ("gen_seconds", float),
    ("rtf", float),
    ("sim", float),
    ("sim_encoder", str),
    ("seed", int),
    ("audio_file", str),
    ("asr_seconds", float),
    ("asr_notice", str),
    ("flag_cut_off", bool),
    ("flag_hallucinated_tail", bool),
    ("flag_long_silence", bool),
    ("flag_clipping", bool),
    ("flags", str),
    ("trailing_deleted", int),
    ("trailing_inserted", int),
    ("repeat_ngram", int),
    ("trailing_silence_s", float),
    ("clipped_fraction", float),
    ("tts_notices", str),
    ("tts_weights", str),  # "random" / "real"; "" for ground truth (no TTS)
    ("asr_weights", str),  # "random" / "real"
)
COLUMN_NAMES = tuple(name for name, _ in RESULT_COLUMNS)


def _format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(round(value, 6))
    return str(value)


def _parse_cell(text: str, kind: type) -> Any:
    if kind is str:
        return text
    if text == "":
        return float("nan") if kind is float else (False if kind is bool else None)
    if kind is bool:
        return text.strip().lower() in ("1", "true", "yes")
    if kind is int:
        return int(float(text))
    return float(text)


def write_results(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write results.csv atomically (readers never see half a file)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMN_NAMES)
    for row in rows:
        writer.writerow([_format_cell(row.get(name)) for name in COLUMN_NAMES])
    return write_text(path, buf.getvalue())


def read_results(path: Path) -> list[dict[str, Any]]:
    """Read results.csv back into typed rows (missing file = no rows)."""
    if not path.is_file():
        return []
    types = dict(RESULT_COLUMNS)
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            {name: _parse_cell(raw.get(name, "") or "", types.get(name, str)) for name in COLUMN_NAMES}
            for raw in csv.DictReader(fh)
        ]


# --------------------------------------------------------------------------- sentence sets


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
            f"Dataset {name!r} has no eval split ({meta} not found). Datasets with one: {', '.join(known) or 'none'}."
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
    if not spec:
        raise InputError("Pick a sentence set: a built-in one, a dataset's eval split, or upload a CSV/TXT file.")
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        path = settings.path("samples_dir") / "sentences" / f"{name}.csv"
        if not path.is_file():
            raise InputError(f"No built-in sentence set {name!r}. Built-in sets: {', '.join(builtin_sets(settings))}.")
        sentences = _read_csv_sentences(path, language)
    elif spec.startswith("dataset:"):
        sentences = _read_dataset(settings, spec.split(":", 1)[1])
        if language:
            sentences = [dataclasses.replace(s, language=s.language or language) for s in sentences]
    else:
        path = Path(spec.removeprefix("file:")).expanduser()
        if not path.is_file():
            raise InputError(f"Sentence file not found: {path}")
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
        raise InputError(f"The sentence set {spec!r} holds no sentences. Add at least one non-empty line.")
    missing = [s.id for s in sentences if not s.language]
    if missing:
        raise InputError(
            f"{len(missing)} sentence(s) have no language ({', '.join(missing[:5])}): pick the language of the set."
        )
    from engines.names import xtts_language

    fixed = []
    for s in sentences:
        try:
            fixed.append(dataclasses.replace(s, language=xtts_language(s.language)))
        except InputError as exc:
            raise InputError(f"Sentence {s.id!r}: {exc}") from None
        if not metrics.normalize(s.text, fixed[-1].language):
            raise InputError(f"Sentence {s.id!r} ({s.text!r}) has no words left after normalization; remove it.")
    return SentenceSet(spec, tuple(_unique_ids(fixed)))


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


# --------------------------------------------------------------------------- helpers


def slug(text: str, max_len: int = 48) -> str:
    """A folder/file-safe ASCII fragment."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return out[:max_len].rstrip("-.") or "x"


def library_versions() -> dict[str, str]:
    """App and library versions for provenance, with the checkout's commit."""
    return {**versions(), "git_commit": git_commit() or "unknown"}


# --------------------------------------------------------------------------- summary


def _finite(values: Sequence[Any]) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def _rate_block(rows: list[dict], unit: str, n_boot: int, seed: int) -> dict[str, Any]:
    """Corpus and per-utterance statistics of one error rate (unit "word" or "char")."""
    if unit == "word":
        errs, lens, rates = "word_errors", "ref_words", "wer"
    else:
        errs, lens, rates = "char_errors", "ref_chars", "cer"
    e = [r[errs] or 0 for r in rows]
    n = [r[lens] or 0 for r in rows]
    v = _finite(r[rates] for r in rows)
    return {
        "corpus": metrics.bootstrap_ratio(e, n, n_boot, seed).as_dict(),
        "mean": metrics.bootstrap(v, np.mean, n_boot, seed).as_dict(),
        "median": metrics.bootstrap(v, np.median, n_boot, seed).as_dict(),
        "p90": metrics.bootstrap(v, metrics.percentile(90), n_boot, seed).as_dict(),
        "any_error": metrics.bootstrap(v, metrics.share_nonzero, n_boot, seed).as_dict(),
        "errors": int(sum(e)),
        "ref_units": int(sum(n)),
        "substitutions": int(
            sum((r["substitutions"] if unit == "word" else r["char_substitutions"]) or 0 for r in rows)
        ),
        "deletions": int(sum((r["deletions"] if unit == "word" else r["char_deletions"]) or 0 for r in rows)),
        "insertions": int(sum((r["insertions"] if unit == "word" else r["char_insertions"]) or 0 for r in rows)),
    }


def _system_block(rows: list[dict], n_boot: int, seed: int, detail: bool = True) -> dict[str, Any]:
    rtf = _finite(r["rtf"] for r in rows)
    sim = _finite(r["sim"] for r in rows)
    languages = sorted({r["language"] for r in rows})
    block: dict[str, Any] = {
        "n": len(rows),
        "headline": "cer" if languages and all(metrics.is_char_language(x) for x in languages) else "wer",
        "wer": _rate_block(rows, "word", n_boot, seed),
        "cer": _rate_block(rows, "char", n_boot, seed),
        "rtf": {
            "mean": metrics.bootstrap(rtf, np.mean, n_boot, seed).as_dict(),
            "std": float(np.std(rtf, ddof=1)) if len(rtf) > 1 else (0.0 if rtf else None),
            "p50": metrics.bootstrap(rtf, metrics.percentile(50), n_boot, seed).as_dict(),
            "p95": metrics.bootstrap(rtf, metrics.percentile(95), n_boot, seed).as_dict(),
        },
        "sim": {"mean": metrics.bootstrap(sim, np.mean, n_boot, seed).as_dict()},
        "audio_seconds": round(sum(_finite(r["audio_seconds"] for r in rows)), 3),
        "gen_seconds": round(sum(_finite(r["gen_seconds"] for r in rows)), 3),
        "flags": {
            k: int(sum(bool(r[f"flag_{k}"]) for r in rows))
            for k in ("cut_off", "hallucinated_tail", "long_silence", "clipping")
        },
        "empty_hypotheses": int(sum(1 for r in rows if not (r["hyp_norm"] or "").strip())),
    }
    if detail:
        block["by_language"] = {
            lang: _system_block([r for r in rows if r["language"] == lang], n_boot, seed, detail=False)
            for lang in languages
        }
        buckets = sorted({r["length_bucket"] for r in rows}, key=_bucket_order)
        block["by_length"] = {
            b: _system_block([r for r in rows if r["length_bucket"] == b], n_boot, seed, detail=False) for b in buckets
        }
    return block


def _bucket_order(label: str) -> tuple[int, str]:
    for i, word in enumerate(("short", "medium", "long")):
        if label.startswith(word):
            return i, label
    return 9, label


def paired_comparison(
    rows: Sequence[dict], system_a: str, system_b: str, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """A minus B on the sentences both systems have (repeats summed per sentence).

    Args:
        rows: results rows.
        system_a: first system's name.
        system_b: second system's name.
        n_boot: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        ``{"a", "b", "n", "wer", "cer", "sim"}`` with each difference and its CI (see
        ``metrics.PairedDifference``).
    """

    def per_sentence(name: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["system"] != name:
                continue
            d = out.setdefault(r["sentence_id"], {"we": 0.0, "wn": 0.0, "ce": 0.0, "cn": 0.0, "sim": []})
            d["we"] += r["word_errors"] or 0
            d["wn"] += r["ref_words"] or 0
            d["ce"] += r["char_errors"] or 0
            d["cn"] += r["ref_chars"] or 0
            if r["sim"] is not None and math.isfinite(r["sim"]):
                d["sim"].append(r["sim"])
        return out

    a, b = per_sentence(system_a), per_sentence(system_b)
    common = sorted(set(a) & set(b))
    nan = float("nan")
    # Ref lengths: A's and B's are equal per sentence when repeats match; use the mean of both.
    wl = [(a[s]["wn"] + b[s]["wn"]) / 2 for s in common]
    cl = [(a[s]["cn"] + b[s]["cn"]) / 2 for s in common]
    wa = [a[s]["we"] * wl[i] / a[s]["wn"] if a[s]["wn"] else 0.0 for i, s in enumerate(common)]
    wb = [b[s]["we"] * wl[i] / b[s]["wn"] if b[s]["wn"] else 0.0 for i, s in enumerate(common)]
    ca = [a[s]["ce"] * cl[i] / a[s]["cn"] if a[s]["cn"] else 0.0 for i, s in enumerate(common)]
    cb = [b[s]["ce"] * cl[i] / b[s]["cn"] if b[s]["cn"] else 0.0 for i, s in enumerate(common)]
    sa = [float(np.mean(a[s]["sim"])) if a[s]["sim"] else nan for s in common]
    sb = [float(np.mean(b[s]["sim"])) if b[s]["sim"] else nan for s in common]
    return {
        "a": system_a,
        "b": system_b,
        "n": len(common),
        "wer": metrics.paired_difference(wa, wb, wl, "wer", n_boot=n_boot, seed=seed).as_dict(),
        "cer": metrics.paired_difference(ca, cb, cl, "cer", n_boot=n_boot, seed=seed).as_dict(),
        "sim": metrics.paired_difference(
            sa, sb, None, "sim", higher_is_better=True, n_boot=n_boot, seed=seed
        ).as_dict(),
    }


def summarize(rows: Sequence[dict], systems: Sequence[str], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Per-system metrics with bootstrap CIs, breakdowns and paired comparisons, from results rows only.

    Args:
        rows: results.csv rows (typed, see ``read_results``).
        systems: system names in display order (ground truth first when present).
        n_boot: bootstrap resamples.
        seed: bootstrap seed (same seed, same intervals).

    Returns:
        ``{"systems": {name: block}, "paired": [...], "ranking": [...]}``.
    """
    rows = list(rows)
    present = [s for s in systems if any(r["system"] == s for r in rows)]
    present += sorted({r["system"] for r in rows} - set(present))
    out: dict[str, Any] = {"systems": {}, "paired": []}
    for name in present:
        sys_rows = [r for r in rows if r["system"] == name]
        block = _system_block(sys_rows, n_boot, seed)
        block["model"] = sys_rows[0]["model"]
        block["voice"] = sys_rows[0]["voice"]
        block["checkpoint"] = sys_rows[0]["checkpoint"]
        block["weights"] = _weights_of(sys_rows)
        out["systems"][name] = block
    tts_systems = [s for s in present if s != GROUND_TRUTH]
    pairs = [(a, b) for i, a in enumerate(tts_systems) for b in tts_systems[i + 1 :]]
    if len(pairs) > 15:  # many systems: compare each with the first one only
        pairs = [(tts_systems[0], b) for b in tts_systems[1:]]
    out["paired"] = [paired_comparison(rows, a, b, n_boot, seed) for a, b in pairs]
    out["ranking"] = rank_systems(out["systems"])
    return out


def _weights_of(rows: Sequence[dict]) -> dict[str, Any]:
    """What a system's numbers rest on: ``{"tts": "random"|"real"|None (no TTS), "asr": ..., "random": bool}``.

    A kind counts as random when any of its rows had random weights.
    """

    def kind(column: str) -> str | None:
        values = {r.get(column) or "" for r in rows}
        return RANDOM if RANDOM in values else REAL if REAL in values else None

    tts, asr = kind("tts_weights"), kind("asr_weights")
    return {"tts": tts, "asr": asr, "random": RANDOM in (tts, asr)}


def rank_systems(blocks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """TTS systems ordered best first: lowest corpus headline error, then highest SIM."""
    entries = []
    for name, b in blocks.items():
        if name == GROUND_TRUTH:
            continue
        head = b["headline"]
        err = b[head]["corpus"]["value"]
        sim = b["sim"]["mean"]["value"]
        entries.append(
            {
                "system": name,
                "model": b.get("model"),
                "checkpoint": b.get("checkpoint"),
                "metric": head,
                "error": err,
                "wer": b["wer"]["corpus"]["value"],
                "cer": b["cer"]["corpus"]["value"],
                "sim": sim,
                "n": b["n"],
            }
        )
    entries.sort(
        key=lambda e: (
            e["error"] if e["error"] is not None else math.inf,
            -(e["sim"] if e["sim"] is not None else -math.inf),
        )
    )
    for i, e in enumerate(entries, start=1):
        e["rank"] = i
    return entries


# --------------------------------------------------------------------------- engine


def _last(updates: Iterator[RunProgress]) -> RunProgress:
    """Drain a progress iterator and return its final update."""
    final = None
    for final in updates:  # noqa: B007 - only the last update matters
        continue
    if final is None:
        raise LabError("The evaluation produced no result.")
    return final


class EvalEngine:
    """Runs evaluations, one at a time; results live in workspace/reports/<run-id>/."""

    def __init__(self, engines: Engines) -> None:
        self.engines = engines
        self.settings: Settings = engines.settings
        self._stop = threading.Event()
        self._run_lock = threading.Lock()
        self._current: str | None = None

    # ------------------------------------------------------------------ folders and listing

    @property
    def reports_dir(self) -> Path:
        return self.settings.workspace_sub("reports")

    def run_dir(self, run_id: str) -> Path:
        """The folder of a run.

        Raises:
            InputError: unknown or unsafe run id.
        """
        run_id = (run_id or "").strip()
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise InputError(f"Run id {run_id!r} is not allowed.")
        folder = self.reports_dir / run_id
        if not (folder / "config.json").is_file():
            known = ", ".join(r.run_id for r in self.list_runs()[:10]) or "none yet"
            raise InputError(f"No eval run {run_id!r} in {self.reports_dir}. Recent runs: {known}.")
        return folder

    def list_runs(self) -> list[RunInfo]:
        """Past and current runs, newest first."""
        runs = []
        for folder in self.reports_dir.iterdir():
            cfg_path = folder / "config.json"
            if not folder.is_dir() or not cfg_path.is_file():
                continue
            try:
                cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
                status = json.loads((folder / "status.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            state = status.get("state", "unknown")
            if state == "running" and self._current != folder.name:
                state = "interrupted"  # no live process is writing it: crashed or killed
            runs.append(
                RunInfo(
                    run_id=folder.name,
                    folder=folder,
                    name=cfg.get("config", {}).get("name", ""),
                    created=cfg.get("created", ""),
                    state=state,
                    done=int(status.get("done", 0)),
                    total=int(status.get("total", 0)),
                    sentences=cfg.get("config", {}).get("sentences", ""),
                    systems=[s["name"] for s in cfg.get("systems", [])],
                    has_report=(folder / "report.html").is_file(),
                )
            )
        runs.sort(key=lambda r: (r.created, r.run_id), reverse=True)
        return runs

    def load_run(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
        """(config.json, results rows, summary.json or None) of a run."""
        folder = self.run_dir(run_id)
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        summary_path = folder / "summary.json"
        summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else None
        return cfg, read_results(folder / "results.csv"), summary

    @property
    def running(self) -> str | None:
        """The id of the run in progress, if any."""
        return self._current

    def stop(self) -> bool:
        """Ask the running evaluation to stop after the utterance in progress (it stays resumable).

        Returns:
            True when a run was in progress.
        """
        self._stop.set()
        return self._current is not None

    # ------------------------------------------------------------------ validation

    def parse_voice(self, spec: str) -> Voice:
        """Turn a voice spec into a Voice (files checked to be audio).

        Raises:
            InputError / AudioError: unknown saved voice, missing file, a file that is not audio.
        """
        spec = (spec or "").strip()
        if not spec:
            raise InputError("An empty reference voice was given.")
        if spec.startswith("speaker:"):
            name = spec.split(":", 1)[1].strip()
            return Voice(spec, "speaker", name, speaker=name, display=f"speaker:{name}")
        if spec.startswith("voice:"):
            name = spec.split(":", 1)[1].strip()
            files = self.engines.tts.voice_files(name)
            for f in files:
                load_audio(f, sr=16000, max_mb=self.settings.max_upload_mb)
            return Voice(spec, "saved", name, files=tuple(str(f) for f in files), display=f"voice:{name}")
        path = Path(spec.removeprefix("file:")).expanduser()
        if not path.is_file():
            raise InputError(f"Reference voice file not found: {path}")
        audio, sr = load_audio(path, sr=16000, max_mb=self.settings.max_upload_mb)
        if len(audio) / sr < self.settings.min_audio_seconds:
            raise InputError(
                f"Reference voice {path.name} is only {len(audio) / sr:.2f} s long; give 3-10 s of speech."
            )
        return Voice(spec, "file", path.stem, files=(str(path),), display=f"file:{path.name}")

    def _model_languages(self, model_id: str) -> list[str]:
        """Languages in the model's config.json (all of XTTS's when unknown)."""
        try:
            folder = self.engines.tts.model_dir(model_id)
        except LabError:
            raise
        if folder is None:
            return list(XTTS_LANGUAGES)
        try:
            cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return list(XTTS_LANGUAGES)
        langs = cfg.get("languages") or list(XTTS_LANGUAGES)
        return [str(x) for x in langs]

    def _model_label(self, model_id: str) -> str:
        path = Path(model_id)
        return path.name if path.is_absolute() else model_id

    def plan(self, config: EvalConfig) -> tuple[SentenceSet, list[System]]:
        """Check the whole config before any model runs.

        Returns:
            The sentences and the systems (model x voice), in run order.

        Raises:
            InputError / AudioError / MissingWeightsError: with a message naming what is wrong.
        """
        config = config.with_defaults(self.settings.generation)
        if config.repeats < 1 or config.repeats > 100:
            raise InputError(f"Repeats must be between 1 and 100, got {config.repeats}.")
        if config.asr_batch_size < 1:
            raise InputError(f"ASR batch size must be at least 1, got {config.asr_batch_size}.")
        if config.bootstrap < 100:
            raise InputError(f"Bootstrap resamples must be at least 100, got {config.bootstrap}.")
        sentence_set = load_sentences(config.sentences, self.settings, config.language, config.max_sentences)
        self._plan_asr(config, sentence_set)
        systems = self._plan_systems(config, sentence_set)
        self._plan_requests(config, sentence_set, systems)
        if config.ground_truth:
            missing = [s for s in sentence_set.sentences if s.audio and not Path(s.audio).is_file()]
            if missing:
                raise InputError(
                    f"{len(missing)} recording(s) of {sentence_set.name} are missing ({', '.join(s.audio or '' for s in missing[:3])}"
                    f"{'...' if len(missing) > 3 else ''}). Restore them, or untick 'Score the real recordings too' "
                    "(config key ground_truth)."
                )
        return sentence_set, systems

    def _plan_asr(self, config: EvalConfig, sentence_set: SentenceSet) -> None:
        """The ASR options and model must handle every language of the set (checked without decoding anything).

        Raises:
            InputError: bad ASR options, or an English-only Whisper with sentences in another language.
            MissingWeightsError: a Whisper checkpoint path that does not exist (for non-English sets).
        """
        from engines.asr import ASROptions, check_options

        asr_model = config.asr_model or self.engines.asr.default_model()
        for lang in sentence_set.languages:
            check_options(ASROptions(language=lang, beam_size=config.beam_size, temperature=0.0))
            try:
                self.engines.asr.check_language(asr_model, lang)
            except InputError as exc:
                ids = [s.id for s in sentence_set.sentences if s.language == lang]
                reason = "it is English-only" if "English-only" in str(exc) else str(exc).rstrip(".")
                raise InputError(
                    f"ASR model {self._model_label(asr_model)!r} cannot transcribe the "
                    f"{XTTS_LANGUAGES.get(lang, lang)} ({lang}) sentences of {sentence_set.name} "
                    f"({', '.join(ids[:3])}{'...' if len(ids) > 3 else ''}): {reason}. Pick a multilingual Whisper "
                    "model (a size without '.en', e.g. 'small' or 'medium') under 'ASR and statistics' (config key "
                    "asr_model), or English sentences."
                ) from exc

    def _plan_requests(self, config: EvalConfig, sentence_set: SentenceSet, systems: list[System]) -> None:
        """Every synthesis request passes the TTS engine's own guard: option ranges, seeds, text length, the
        language's text packages."""
        from engines.tts import check_request

        voice = systems[0].voice
        kwargs: dict[str, Any] = {
            "reference": [Path(f) for f in voice.files] or None,
            "speaker": voice.speaker,
            "max_chars": self.settings.max_text_chars,
        }
        last = max(config.repeats - 1, 0)  # the highest seed used is seed + repeats - 1
        for lang in sentence_set.languages:
            check_request("a", config.tts_options(lang, 0), **kwargs)
            check_request("a", config.tts_options(lang, last), **kwargs)
        for s in sentence_set.sentences:
            try:
                check_request(s.text, config.tts_options(s.language, 0), **kwargs)
            except InputError as exc:
                raise InputError(f"Sentence {s.id!r}: {exc}") from None

    def _plan_systems(self, config: EvalConfig, sentence_set: SentenceSet) -> list[System]:
        models = list(
            dict.fromkeys(m.strip() for m in (config.models or (self.engines.tts.default_model(),)) if m.strip())
        )
        if not config.voices:
            raise InputError("Pick at least one reference voice (a file, a saved voice or a built-in speaker).")
        voices = [self.parse_voice(v) for v in dict.fromkeys(config.voices)]
        checkpoints = dict(config.checkpoints)
        systems: list[System] = []
        names: set[str] = set()
        for model_id in models:
            languages = self._model_languages(model_id)  # raises for unknown models
            lacking = [s for s in sentence_set.sentences if s.language not in languages]
            if lacking:
                langs = sorted({s.language for s in lacking})
                raise InputError(
                    f"Model {self._model_label(model_id)!r} does not speak {', '.join(langs)} (sentences "
                    f"{', '.join(s.id for s in lacking[:5])}{'...' if len(lacking) > 5 else ''}). It speaks: "
                    f"{', '.join(languages)}."
                )
            for voice in voices:
                if voice.kind == "speaker":
                    from engines.tts import check_speaker

                    check_speaker(voice.speaker or "", self.engines.tts.speakers(model_id))
                label = self._model_label(model_id)
                name = f"{label} / {voice.label}"
                n = 2
                while name in names or name == GROUND_TRUTH:
                    name, n = f"{label} / {voice.label} ({n})", n + 1
                names.add(name)
                systems.append(
                    System(
                        name=name,
                        slug=f"s{len(systems) + 1}-{slug(label, 24)}-{slug(voice.label, 16)}",
                        model_id=model_id,
                        model_label=label,
                        voice=voice,
                        checkpoint=checkpoints.get(model_id),
                    )
                )
        return systems

    # ------------------------------------------------------------------ running

    def _new_run_id(self, name: str) -> str:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{slug(name, 32)}" if name else stamp
        run_id, n = base, 2
        while (self.reports_dir / run_id).exists():
            run_id, n = f"{base}-{n}", n + 1
        return run_id

    def tts_weights(self, model_id: str) -> str:
        """``"random"`` for the tiny model or a model folder with a toy-sized GPT (e.g. fine-tuned from the tiny
        model), else ``"real"``."""
        from engines.tts import TINY_ID

        if model_id == TINY_ID:
            return RANDOM
        try:
            folder = self.engines.tts.model_dir(model_id)
            args = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_args", {})
        except (LabError, OSError, TypeError, AttributeError, json.JSONDecodeError):
            return REAL
        return RANDOM if int(args.get("gpt_n_model_channels") or 1024) < TINY_GPT_CHANNELS else REAL

    def asr_weights(self, asr_model: str) -> str:
        """``"random"`` for a random-weight Whisper (the ASR engine's rule: by id or checkpoint width), else
        ``"real"``. Never loads the weights."""
        return RANDOM if self.engines.asr.random_weights(asr_model) else REAL

    def _provenance(self, config: EvalConfig, systems: list[System], asr_model: str) -> dict[str, Any]:
        from engines.device import gpu_memory, resolve_device

        device = resolve_device(self.settings.device)
        models = {}
        for s in systems:
            if s.model_id in models:
                continue
            try:
                folder = self.engines.tts.model_dir(s.model_id)
            except LabError:
                folder = None
            info: dict[str, Any] = {"dir": str(folder) if folder else None}
            if folder is not None and (folder / "model.pth").is_file():
                stat = (folder / "model.pth").stat()
                info.update(
                    {
                        "model_pth_bytes": stat.st_size,
                        "model_pth_mtime": datetime.fromtimestamp(stat.st_mtime).isoformat(timespec="seconds"),
                    }
                )
            models[s.model_id] = info
        return {
            "versions": library_versions(),
            "device": device,
            "gpu": gpu_memory(device),
            "platform": sys.platform,
            "tts_models": models,
            "asr_model": asr_model,
            "speaker_encoder": "XTTS v2 speaker encoder (ResNet H/ASP, 512-d) of each system's own model",
            "normalizers": {lang: metrics.normalizer_name(lang) for lang in XTTS_LANGUAGES},
            "tiny_models_setting": self.settings.tiny_models,
        }

    def run(
        self,
        config: EvalConfig,
        *,
        run_id: str | None = None,
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
    ) -> RunProgress:
        """Run an evaluation to the end (or until ``stop()``); see ``iter_run``.

        Returns:
            The final progress (state "done" or "stopped", the summary filled).
        """
        return _last(self.iter_run(config, run_id=run_id, progress=progress, log_fn=log_fn))

    def resume(self, run_id: str, *, progress: ProgressFn | None = None, log_fn: LogFn | None = None) -> RunProgress:
        """Finish a stopped or interrupted run, skipping the utterances it already has."""
        return _last(self.iter_resume(run_id, progress=progress, log_fn=log_fn))

    def iter_resume(
        self, run_id: str, *, progress: ProgressFn | None = None, log_fn: LogFn | None = None
    ) -> Iterator[RunProgress]:
        """Like ``resume``, yielding progress after every batch."""
        folder = self.run_dir(run_id)
        saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        config = EvalConfig.from_dict(saved["config"], self.settings.generation)
        yield from self.iter_run(config, run_id=folder.name, progress=progress, log_fn=log_fn, resume=True)

    def iter_run(
        self,
        config: EvalConfig,
        *,
        run_id: str | None = None,
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
        resume: bool = False,
    ) -> Iterator[RunProgress]:
        """Run an evaluation, yielding progress after every batch of utterances.

        Args:
            config: what to evaluate.
            run_id: a new run's id (default: timestamp + name), or the run to resume.
            progress: ``progress(fraction, desc=...)`` (gr.Progress works).
            log_fn: receives status lines.
            resume: continue ``run_id``, skipping utterances already in its results.csv.

        Yields:
            RunProgress after each batch; the last one has state "done" (or "stopped") and the summary.

        Raises:
            BusyError: another evaluation is running.
            InputError / AudioError / MissingWeightsError: bad config (checked before any synthesis).
        """
        if not self._run_lock.acquire(blocking=False):
            raise BusyError(f"An evaluation is already running ({self._current}); stop it or wait for it to finish.")
        try:
            self._stop.clear()
            config = config.with_defaults(self.settings.generation)  # recorded in config.json as used
            yield from self._iter_run(config, run_id, progress or (lambda *a, **k: None), log_fn or log.info, resume)
        finally:
            self._current = None
            self._run_lock.release()

    def _iter_run(
        self, config: EvalConfig, run_id: str | None, progress: ProgressFn, log_fn: LogFn, resume: bool
    ) -> Iterator[RunProgress]:
        if resume:
            folder = self.run_dir(run_id or "")
            saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            sentence_set = read_sentences(folder / "sentences.csv", config.sentences)
            systems = self._saved_systems(folder, saved)
            run_id = folder.name
            created = saved.get("created", utc_now())
            refs = saved.get("references", {})
        else:
            saved = {}
            sentence_set, systems = self.plan(config)
            run_id = run_id or self._new_run_id(config.name)
            folder = self.reports_dir / slug(run_id, 120)
            run_id = folder.name
            if (folder / "config.json").exists():
                raise InputError(f"Run {run_id!r} already exists; resume it or pick another id.")
            folder.mkdir(parents=True, exist_ok=True)
            created = utc_now()
            write_sentences(folder / "sentences.csv", sentence_set)
            refs = self._copy_references(folder, systems)
        self._current = run_id
        # A resumed run keeps the ASR it started with, even if the default changed since (e.g. tiny mode off).
        saved_asr = (saved.get("provenance") or {}).get("asr_model") if resume else None
        asr_model = config.asr_model or saved_asr or self.engines.asr.default_model()
        system_dicts = [
            {
                "name": s.name,
                "slug": s.slug,
                "model_id": s.model_id,
                "model_label": s.model_label,
                "voice": s.voice.spec,
                "voice_label": s.voice.label,
                "voice_kind": s.voice.kind,
                "voice_display": s.voice.display,
                "checkpoint": s.checkpoint,
                "tts_weights": self.tts_weights(s.model_id),
            }
            for s in systems
        ]
        asr_weights = self.asr_weights(asr_model)
        tts_weights = {d["name"]: d["tts_weights"] for d in system_dicts}
        provenance = self._provenance(config, systems, asr_model)
        meta = {
            "run_id": run_id,
            "created": created,
            "config": config.to_dict(),
            "systems": system_dicts,
            "sentence_set": sentence_set.name,
            "n_sentences": len(sentence_set.sentences),
            "has_recordings": sentence_set.has_audio,
            "references": refs,
            "provenance": provenance,
            "asr_weights": asr_weights,
            # any number of this run rests on a random-weight model (summary.json says which, per system)
            "tiny": asr_weights == RANDOM or any(d["tts_weights"] == RANDOM for d in system_dicts),
        }
        write_json(folder / "config.json", meta)

        results_path = folder / "results.csv"
        rows = read_results(results_path) if resume else []
        done_keys = {r["key"] for r in rows if r["audio_file"] and (folder / r["audio_file"]).is_file()}
        rows = [r for r in rows if r["key"] in done_keys]

        gt_work = [s for s in sentence_set.sentences if s.audio] if config.ground_truth else []
        tts_work = [(sy, se, rep) for sy in systems for se in sentence_set.sentences for rep in range(config.repeats)]
        total = len(gt_work) + len(tts_work)
        state = {"done": len(rows)}

        def status(st: str, message: str = "") -> RunProgress:
            write_json(
                folder / "status.json",
                {"state": st, "done": state["done"], "total": total, "updated": utc_now(), "message": message},
            )
            return RunProgress(run_id, folder, state["done"], total, st, message)

        def commit(new_rows: list[dict]) -> None:
            rows.extend(new_rows)
            done_keys.update(r["key"] for r in new_rows)
            state["done"] = len(rows)
            write_results(results_path, rows)

        if resume and rows:
            log_fn(f"Resuming {run_id}: {len(rows)} of {total} utterances already done.")
        yield status("running", "starting")
        asr_opts_by_lang = {}
        from engines.asr import ASROptions

        for lang in sentence_set.languages:
            asr_opts_by_lang[lang] = ASROptions(language=lang, beam_size=config.beam_size, temperature=0.0)

        try:
            # Ground truth: the same ASR on the real recordings, so the ASR's own error is visible.
            pending_gt = [s for s in gt_work if f"{GROUND_TRUTH}|{s.id}|0" not in done_keys]
            for start in range(0, len(pending_gt), config.asr_batch_size):
                if self._stop.is_set():
                    break
                chunk = pending_gt[start : start + config.asr_batch_size]
                progress(state["done"] / max(total, 1), desc=f"Ground truth: transcribing {len(chunk)} recording(s)")
                commit(self._score_ground_truth(folder, chunk, asr_model, asr_opts_by_lang, asr_weights))
                yield status("running", f"ground truth {state['done']}/{total}")

            for system in systems:
                if self._stop.is_set():
                    break
                pending = [
                    (se, rep)
                    for sy, se, rep in tts_work
                    if sy is system and f"{system.name}|{se.id}|{rep}" not in done_keys
                ]
                if not pending:
                    continue
                log_fn(f"System {system.name}: {len(pending)} utterance(s) to go.")
                progress(state["done"] / max(total, 1), desc=f"{system.name}: warming up")
                self._warm_up(system, config, pending[0][0])
                ref_emb = self._reference_embedding(system)
                for start in range(0, len(pending), config.asr_batch_size):
                    if self._stop.is_set():
                        break
                    batch = []
                    for sentence, rep in pending[start : start + config.asr_batch_size]:
                        if self._stop.is_set():
                            break
                        progress(
                            state["done"] / max(total, 1),
                            desc=f"{system.name}: {sentence.id} ({state['done'] + len(batch) + 1}/{total})",
                        )
                        batch.append(self._synthesize(folder, system, sentence, rep, config))
                    if batch:
                        commit(
                            self._score_batch(
                                batch,
                                system,
                                asr_model,
                                asr_opts_by_lang,
                                ref_emb,
                                (tts_weights[system.name], asr_weights),
                            )
                        )
                        yield status("running", f"{system.name} {state['done']}/{total}")
        except Exception as exc:
            final = status("failed", f"{type(exc).__name__}: {exc}")
            if rows:
                self._write_outputs(folder, meta, rows, config, final.state)
            raise

        finished = state["done"] >= total
        st = "done" if finished else "stopped"
        if not finished:
            log_fn(f"Stopped {run_id} after {state['done']} of {total} utterances; resume it to finish.")
        summary = self._write_outputs(folder, meta, rows, config, st)
        final = status(st, "finished" if finished else "stopped by the user")
        final.summary = summary
        progress(1.0, desc="Done" if finished else "Stopped")
        yield final

    def _saved_systems(self, folder: Path, saved: dict[str, Any]) -> list[System]:
        """The systems of a run as it recorded them (names unchanged; voices from the copies in refs/)."""
        refs = saved.get("references", {})
        systems = []
        for d in saved["systems"]:
            files = tuple(str(folder / rel) for rel in refs.get(d["voice"], []))
            speaker = d["voice_label"] if d["voice_kind"] == "speaker" else None
            voice = Voice(
                d["voice"],
                d["voice_kind"],
                d["voice_label"],
                files=files,
                speaker=speaker,
                display=d.get("voice_display") or d["voice_label"],
            )
            self._model_languages(d["model_id"])  # the model must still be there
            systems.append(System(d["name"], d["slug"], d["model_id"], d["model_label"], voice, d.get("checkpoint")))
        return systems

    # ------------------------------------------------------------------ steps

    def _copy_references(self, folder: Path, systems: list[System]) -> dict[str, list[str]]:
        """Copy the reference clips into the run (the report plays them; SIM is against them)."""
        out: dict[str, list[str]] = {}
        for s in systems:
            v = s.voice
            if v.spec in out:
                continue
            out[v.spec] = []
            for i, f in enumerate(v.files):
                src = Path(f)
                dst = folder / "refs" / f"{slug(v.label, 32)}-{i + 1}{src.suffix.lower()}"
                if not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
                out[v.spec].append(dst.relative_to(folder).as_posix())
        return out

    def _warm_up(self, system: System, config: EvalConfig, sentence: Sentence) -> None:
        """One uncounted synthesis: loads the model and caches the voice latents, so RTF measures generation.

        It speaks the first pending sentence (right language and script), capped to a few tokens.
        """
        options = config.tts_options(sentence.language, 0)
        self.engines.tts.synthesize(
            sentence.text,
            model_id=system.model_id,
            reference=[Path(f) for f in system.voice.files] or None,
            speaker=system.voice.speaker,
            save=False,
            options=dataclasses.replace(options, max_audio_tokens=min(options.max_audio_tokens or 64, 64)),
        )

    def _reference_embedding(self, system: System) -> np.ndarray | None:
        """The reference voice's speaker embedding (mean over its clips), from this system's model."""
        tts = self.engines.tts
        if system.voice.kind == "speaker":
            model = tts.load(system.model_id)
            entry = model.speaker_manager.speakers.get(system.voice.speaker)
            if entry is None:
                return None
            emb = entry["speaker_embedding"].reshape(-1).float().cpu().numpy()
        else:
            embs = []
            for f in system.voice.files:
                try:
                    embs.append(tts.speaker_embedding(Path(f), model_id=system.model_id))
                except LabError as exc:
                    log.warning("No speaker embedding for %s: %s", f, exc)
            if not embs:
                return None
            emb = np.mean(embs, axis=0)
        norm = float(np.linalg.norm(emb))
        return emb / norm if norm > 0 else emb

    def _synthesize(
        self, folder: Path, system: System, sentence: Sentence, rep: int, config: EvalConfig
    ) -> dict[str, Any]:
        options = config.tts_options(sentence.language, rep)
        result = self.engines.tts.synthesize(
            sentence.text,
            model_id=system.model_id,
            reference=[Path(f) for f in system.voice.files] or None,
            speaker=system.voice.speaker,
            options=options,
            save=False,
        )
        rel = f"audio/{system.slug}/{slug(sentence.id, 60)}_r{rep}.wav"
        save_wav(folder / rel, result.audio, result.sample_rate)
        return {
            "sentence": sentence,
            "repeat": rep,
            "audio": result.audio,
            "sr": result.sample_rate,
            "gen_seconds": result.gen_seconds,
            "audio_seconds": result.audio_seconds,
            "rtf": result.rtf,
            "seed": options.seed,
            "audio_file": rel,
            "notices": result.notices,
        }

    def _transcribe(
        self,
        clips: list[np.ndarray],
        languages: list[str],
        asr_model: str,
        options: dict[str, Any],
        batch_size: int,
        labels: list[str],
    ) -> list[Any]:
        """Batched Whisper per language (clips over 30 s fall back to sequential decoding inside the engine);
        ``labels`` name the clips in notices."""
        out: list[Any] = [None] * len(clips)
        by_lang: dict[str, list[int]] = {}
        for i, lang in enumerate(languages):
            by_lang.setdefault(lang, []).append(i)
        for lang, idx in by_lang.items():
            transcripts = self.engines.asr.transcribe_batch(
                [clips[i] for i in idx],
                options[lang],
                model_id=asr_model,
                batch_size=batch_size,
                sources=[labels[i] for i in idx],
            )
            for i, t in zip(idx, transcripts):
                out[i] = t
        return out

    def _row(
        self,
        *,
        system: str,
        model: str,
        voice: str,
        checkpoint: str | None,
        sentence: Sentence,
        rep: int,
        transcript: Any,
        audio: np.ndarray,
        sr: int,
        audio_file: str,
        gen_seconds: float | None,
        rtf: float | None,
        sim: float | None,
        sim_encoder: str,
        seed: int | None,
        notices: list[str],
        weights: tuple[str, str],
    ) -> dict:
        hyp = (transcript.text or "").strip()
        s = metrics.score(sentence.text, hyp, sentence.language)
        flags = metrics.failure_flags(s, audio, sr)
        return {
            "key": f"{system}|{sentence.id}|{rep}",
            "system": system,
            "model": model,
            "voice": voice,
            "checkpoint": checkpoint or "",
            "sentence_id": sentence.id,
            "repeat": rep,
            "language": sentence.language,
            "length_bucket": metrics.length_bucket(s.words.ref_len, sentence.language),
            "ref_text": sentence.text,
            "hyp_text": hyp,
            "ref_norm": s.ref_norm,
            "hyp_norm": s.hyp_norm,
            "normalizer": s.normalizer,
            "unit": "char" if metrics.is_char_language(sentence.language) else "word",
            "ref_words": s.words.ref_len,
            "word_errors": s.words.errors,
            "substitutions": s.words.substitutions,
            "deletions": s.words.deletions,
            "insertions": s.words.insertions,
            "hits": s.words.hits,
            "wer": s.wer,
            "ref_chars": s.chars.ref_len,
            "char_errors": s.chars.errors,
            "char_substitutions": s.chars.substitutions,
            "char_deletions": s.chars.deletions,
            "char_insertions": s.chars.insertions,
            "cer": s.cer,
            "audio_seconds": len(audio) / sr if sr else float("nan"),
            "gen_seconds": gen_seconds,
            "rtf": rtf,
            "sim": sim,
            "sim_encoder": sim_encoder,
            "seed": seed,
            "audio_file": audio_file,
            "asr_seconds": transcript.seconds,
            "asr_notice": transcript.notice or "",
            "flag_cut_off": flags.cut_off,
            "flag_hallucinated_tail": flags.hallucinated_tail,
            "flag_long_silence": flags.long_silence,
            "flag_clipping": flags.clipping,
            "flags": " ".join(flags.names()),
            "trailing_deleted": flags.trailing_deleted,
            "trailing_inserted": flags.trailing_inserted,
            "repeat_ngram": flags.repeat_ngram,
            "trailing_silence_s": flags.trailing_silence_s,
            "clipped_fraction": flags.clipped_fraction,
            "tts_notices": " | ".join(notices),
            "tts_weights": weights[0],
            "asr_weights": weights[1],
        }

    def _score_ground_truth(
        self, folder: Path, chunk: list[Sentence], asr_model: str, options: dict[str, Any], asr_weights: str
    ) -> list[dict]:
        clips, natives, files = [], [], []
        for s in chunk:
            src = Path(s.audio or "")
            audio, sr = load_audio(src, max_mb=self.settings.max_upload_mb)
            rel = f"audio/ground-truth/{slug(s.id, 60)}{src.suffix.lower() or '.wav'}"
            dst = folder / rel
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
            clips.append(resample(audio, sr, ASR_SR))
            natives.append((audio, sr))
            files.append(rel)
        transcripts = self._transcribe(
            clips, [s.language for s in chunk], asr_model, options, len(chunk), [f"recording {s.id}" for s in chunk]
        )
        return [
            self._row(
                system=GROUND_TRUTH,
                model="",
                voice=s.speaker or "",
                checkpoint=None,
                sentence=s,
                rep=0,
                transcript=t,
                audio=a,
                sr=sr,
                audio_file=f,
                gen_seconds=None,
                rtf=None,
                sim=None,
                sim_encoder="",
                seed=None,
                notices=[],
                weights=("", asr_weights),  # real recordings: no TTS
            )
            for s, t, (a, sr), f in zip(chunk, transcripts, natives, files)
        ]

    def _score_batch(
        self,
        batch: list[dict],
        system: System,
        asr_model: str,
        options: dict[str, Any],
        ref_emb: np.ndarray | None,
        weights: tuple[str, str],
    ) -> list[dict]:
        clips = [resample(b["audio"], b["sr"], ASR_SR) for b in batch]
        transcripts = self._transcribe(
            clips,
            [b["sentence"].language for b in batch],
            asr_model,
            options,
            len(batch),
            [f"{system.name} / {b['sentence'].id}" + (f" r{b['repeat']}" if b.get("repeat") else "") for b in batch],
        )
        rows = []
        encoder = f"xtts-speaker-encoder:{system.model_label}"
        for b, t in zip(batch, transcripts):
            sim = None
            if ref_emb is not None and b["audio_seconds"] > 0.2:
                try:
                    emb = self.engines.tts.speaker_embedding(b["audio"], sr=b["sr"], model_id=system.model_id)
                    sim = metrics.cosine(ref_emb, emb)
                except LabError as exc:
                    log.warning("No SIM for %s: %s", b["audio_file"], exc)
            rows.append(
                self._row(
                    system=system.name,
                    model=system.model_label,
                    voice=system.voice.display,
                    checkpoint=system.checkpoint,
                    sentence=b["sentence"],
                    rep=b["repeat"],
                    transcript=t,
                    audio=b["audio"],
                    sr=b["sr"],
                    audio_file=b["audio_file"],
                    gen_seconds=b["gen_seconds"],
                    rtf=b["rtf"],
                    sim=sim,
                    sim_encoder=encoder if sim is not None else "",
                    seed=b["seed"],
                    notices=b["notices"],
                    weights=weights,
                )
            )
        return rows

    def _write_outputs(
        self, folder: Path, meta: dict[str, Any], rows: list[dict], config: EvalConfig, state: str
    ) -> dict[str, Any]:
        """summary.json and report.html from the rows (what results.csv holds)."""
        rows = self._fill_weights(meta, rows)
        order = ([GROUND_TRUTH] if any(r["system"] == GROUND_TRUTH for r in rows) else []) + [
            s["name"] for s in meta["systems"]
        ]
        summary = {
            "run_id": meta["run_id"],
            "created": meta["created"],
            "updated": utc_now(),
            "state": state,
            "complete": state == "done",
            "n_rows": len(rows),
            "seed": config.seed,
            "bootstrap": config.bootstrap,
            "config": meta["config"],
            "systems_config": meta["systems"],
            "provenance": meta["provenance"],
            "normalizers_used": sorted({r["normalizer"] for r in rows}),
            "languages": sorted({r["language"] for r in rows}),
            "training_run": config.training_run,
            **summarize(rows, order, config.bootstrap, config.seed),
        }
        blocks = summary["systems"]
        # "tiny" (kept for readers of older summaries): some number here rests on a random-weight model;
        # "random_systems" and each system's "weights" say which numbers, "note" says it in words.
        summary["tiny"] = any(b["weights"]["random"] for b in blocks.values()) if blocks else bool(meta.get("tiny"))
        summary["random_systems"] = [name for name, b in blocks.items() if b["weights"]["random"]]
        summary["note"] = report.random_note(blocks) if blocks else ""
        write_json(folder / "summary.json", summary)
        report.write_report(folder, summary, rows, meta)
        return summary

    def _fill_weights(self, meta: dict[str, Any], rows: list[dict]) -> list[dict]:
        """Rows of runs recorded before results.csv had tts_weights/asr_weights get them from the run's models."""
        if all(r.get("asr_weights") for r in rows):
            return rows
        asr = meta.get("asr_weights") or self.asr_weights((meta.get("provenance") or {}).get("asr_model") or "")
        tts = {d["name"]: d.get("tts_weights") or self.tts_weights(d["model_id"]) for d in meta.get("systems", [])}
        return [
            r
            if r.get("asr_weights")
            else {
                **r,
                "asr_weights": asr,
                "tts_weights": "" if r["system"] == GROUND_TRUTH else tts.get(r["system"], ""),
            }
            for r in rows
        ]

    def rebuild_report(self, run_id: str) -> Path:
        """Recompute summary.json and report.html from results.csv (e.g. after a code update)."""
        folder = self.run_dir(run_id)
        meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        status = json.loads((folder / "status.json").read_text(encoding="utf-8"))
        rows = read_results(folder / "results.csv")
        self._write_outputs(
            folder,
            meta,
            rows,
            EvalConfig.from_dict(meta["config"], self.settings.generation),
            status.get("state", "stopped"),
        )
        return folder / "report.html"

    # ------------------------------------------------------------------ comparison

    def compare_runs(self, run_a: str, run_b: str) -> list[dict[str, Any]]:
        """Two runs side by side: one row per system (matched by name) with both runs' headline numbers.

        Returns:
            Rows with ``system`` and, for runs A and B, corpus WER, CER, mean SIM, mean RTF and n.
        """
        out = []
        summaries = []
        for rid in (run_a, run_b):
            _, rows, summary = self.load_run(rid)
            if summary is None:
                raise InputError(f"Run {rid!r} has no summary yet (it has not finished a batch).")
            summaries.append(summary)
        names = list(dict.fromkeys([*summaries[0]["systems"], *summaries[1]["systems"]]))
        for name in names:
            row: dict[str, Any] = {"system": name}
            for tag, summary in zip(("A", "B"), summaries):
                b = summary["systems"].get(name)
                row[f"{tag} n"] = b["n"] if b else None
                row[f"{tag} WER"] = b["wer"]["corpus"]["value"] if b else None
                row[f"{tag} CER"] = b["cer"]["corpus"]["value"] if b else None
                row[f"{tag} SIM"] = b["sim"]["mean"]["value"] if b else None
                row[f"{tag} RTF"] = b["rtf"]["mean"]["value"] if b else None
            out.append(row)
        return out

    # ------------------------------------------------------------------ checkpoint ranking

    def checkpoint_models(self, training_run: str, progress: ProgressFn | None = None) -> list[tuple[str, str]]:
        """Export every checkpoint of a training run to workspace/cache/eval-checkpoints (reused when present).

        Returns:
            (model folder, checkpoint file) per checkpoint, oldest first.

        Raises:
            InputError: no training engine, unknown run, or a run without checkpoints.
        """
        training = getattr(self.engines, "training", None)
        if training is None:
            raise InputError("Fine-tuning is not available in this app, so there are no checkpoints to rank.")
        checkpoints = [Path(p) for p in training.checkpoints(training_run)]
        if not checkpoints:
            raise InputError(f"Training run {training_run!r} has no saved checkpoints yet.")
        cache = self.settings.workspace_sub("cache", "eval-checkpoints", slug(training_run, 80))
        out = []
        for i, ckpt in enumerate(checkpoints):
            dest = cache / slug(ckpt.stem, 60)
            stamp = dest / ".source.json"
            want = {"checkpoint": str(ckpt), "mtime_ns": ckpt.stat().st_mtime_ns, "size": ckpt.stat().st_size}
            fresh = False
            if stamp.is_file():
                try:
                    fresh = json.loads(stamp.read_text(encoding="utf-8")) == want and (dest / "model.pth").is_file()
                except (OSError, json.JSONDecodeError):
                    fresh = False
            if not fresh:
                if progress:
                    progress(i / len(checkpoints), desc=f"Exporting checkpoint {ckpt.name}")
                dest = Path(training.export(training_run, ckpt, dest.name, dest_dir=cache, overwrite=True))
                write_json(dest / ".source.json", want)
            out.append((str(dest.resolve()), str(ckpt)))
        return out

    def iter_rank_checkpoints(
        self,
        training_run: str,
        base: EvalConfig,
        *,
        include_base_model: str | None = None,
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
    ) -> Iterator[RunProgress]:
        """Evaluate every checkpoint of a training run on the same sentences (one eval run, one system each).

        Args:
            training_run: a run id from the Finetune tab.
            base: sentences, voices and settings; its ``models`` are ignored.
            include_base_model: also evaluate this model (e.g. "xtts_v2") as a reference point.
            progress: ``progress(fraction, desc=...)``.
            log_fn: receives status lines.

        Yields:
            RunProgress as ``iter_run``; the final summary holds ``ranking``.
        """
        pairs = self.checkpoint_models(training_run, progress)
        models = tuple(m for m, _ in pairs) + ((include_base_model,) if include_base_model else ())
        config = dataclasses.replace(
            base,
            models=models,
            checkpoints=tuple(pairs),
            training_run=training_run,
            name=base.name or f"checkpoints-{training_run}",
        )
        yield from self.iter_run(config, progress=progress, log_fn=log_fn)

    def rank_checkpoints(self, training_run: str, base: EvalConfig, **kwargs: Any) -> RunProgress:
        """``iter_rank_checkpoints`` to the end."""
        return _last(self.iter_rank_checkpoints(training_run, base, **kwargs))

    def export_best(self, run_id: str, name: str | None = None) -> Path:
        """Export the best-ranked checkpoint of a checkpoint-ranking run as workspace/models/<name>.

        Args:
            run_id: a run made by ``rank_checkpoints``.
            name: the model folder name; None = the training engine's default ("<dataset>-step<step>").

        Returns:
            The new model folder (it appears in the TTS model list).

        Raises:
            InputError: the run did not rank checkpoints, or has no ranked checkpoint.
        """
        _, _, summary = self.load_run(run_id)
        if not summary or not summary.get("training_run"):
            raise InputError(f"Run {run_id!r} did not rank the checkpoints of a training run.")
        ranked = [e for e in summary.get("ranking", []) if e.get("checkpoint")]
        if not ranked:
            raise InputError(f"Run {run_id!r} has no scored checkpoint yet.")
        training = getattr(self.engines, "training", None)
        if training is None:
            raise InputError("Fine-tuning is not available in this app.")
        best = ranked[0]
        log.info(
            "Exporting best checkpoint %s (%s %.4f) as %s",
            best["checkpoint"],
            best["metric"],
            best["error"] if best["error"] is not None else float("nan"),
            name,
        )
        return Path(training.export(summary["training_run"], Path(best["checkpoint"]), name))

    # ------------------------------------------------------------------ listening test

    def _listening_dir(self, run_id: str, test_id: str) -> Path:
        folder = self.run_dir(run_id) / "listening"
        if not test_id or "/" in test_id or "\\" in test_id or test_id.startswith("."):
            raise InputError(f"Listening test id {test_id!r} is not allowed.")
        return folder / test_id

    def list_listening_tests(self, run_id: str) -> list[str]:
        folder = self.run_dir(run_id) / "listening"
        return sorted(p.name for p in folder.iterdir() if (p / "plan.json").is_file()) if folder.is_dir() else []

    def create_listening_test(
        self, run_id: str, system_a: str, system_b: str, *, mode: str = "ab+mos", max_items: int = 20, seed: int = 0
    ) -> str:
        """A blind test: the same sentences from two systems, in random order, sides shuffled per trial.

        Args:
            run_id: the eval run with both systems' audio.
            system_a: a system name (may be "ground truth").
            system_b: another system name.
            mode: "ab" (preference), "mos" (1-5 ratings of both clips) or "ab+mos".
            max_items: trials (sentences) at most.
            seed: order and side shuffling.

        Returns:
            The test id (folder under the run's listening/).

        Raises:
            InputError: same system twice, unknown system, or no sentence both systems have.
        """
        if mode not in ("ab", "mos", "ab+mos"):
            raise InputError(f"Mode must be 'ab', 'mos' or 'ab+mos', got {mode!r}.")
        if system_a == system_b:
            raise InputError("Pick two different systems for a listening test.")
        _, rows, _ = self.load_run(run_id)
        systems = sorted({r["system"] for r in rows})
        for s in (system_a, system_b):
            if s not in systems:
                raise InputError(f"System {s!r} is not in run {run_id}. Systems: {', '.join(systems)}.")
        clips: dict[str, dict[str, dict]] = {system_a: {}, system_b: {}}
        for r in rows:
            if r["system"] in clips and r["repeat"] == 0:
                clips[r["system"]][r["sentence_id"]] = r
        common = sorted(set(clips[system_a]) & set(clips[system_b]))
        if not common:
            raise InputError(f"{system_a!r} and {system_b!r} share no sentence in run {run_id}.")
        rng = random.Random(seed)
        rng.shuffle(common)
        trials = []
        for i, sid in enumerate(common[: max(1, int(max_items))]):
            pair = [system_a, system_b]
            rng.shuffle(pair)
            trials.append(
                {
                    "index": i,
                    "sentence_id": sid,
                    "text": clips[system_a][sid]["ref_text"],
                    "clip1": clips[pair[0]][sid]["audio_file"],
                    "clip2": clips[pair[1]][sid]["audio_file"],
                    "system1": pair[0],
                    "system2": pair[1],
                }
            )
        test_id = f"{datetime.now():%Y%m%d-%H%M%S}-{slug(system_a, 16)}-vs-{slug(system_b, 16)}"
        folder = self._listening_dir(run_id, test_id)
        n = 2
        while folder.exists():
            folder = self._listening_dir(run_id, f"{test_id}-{n}")
            n += 1
        write_json(
            folder / "plan.json",
            {
                "run_id": run_id,
                "test_id": folder.name,
                "created": utc_now(),
                "mode": mode,
                "seed": seed,
                "system_a": system_a,
                "system_b": system_b,
                "trials": trials,
            },
        )
        return folder.name

    def listening_plan(self, run_id: str, test_id: str) -> dict[str, Any]:
        path = self._listening_dir(run_id, test_id) / "plan.json"
        if not path.is_file():
            raise InputError(f"No listening test {test_id!r} in run {run_id!r}.")
        return json.loads(path.read_text(encoding="utf-8"))

    def listening_answers(self, run_id: str, test_id: str) -> list[dict[str, Any]]:
        path = self._listening_dir(run_id, test_id) / "answers.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []

    def record_listening(
        self,
        run_id: str,
        test_id: str,
        index: int,
        *,
        preference: str | None = None,
        mos1: float | None = None,
        mos2: float | None = None,
        listener: str = "",
    ) -> dict[str, Any]:
        """Save one trial's answer (answers.json and answers.csv, rewritten atomically).

        Args:
            run_id: the eval run.
            test_id: the listening test.
            index: trial index.
            preference: "1" / "2" (the clip as played) or "same"; required in "ab" modes.
            mos1: 1-5 rating of clip 1; required in "mos" modes.
            mos2: 1-5 rating of clip 2.
            listener: optional name.

        Returns:
            The stored answer (with the system each clip was, unblinded).

        Raises:
            InputError: unknown trial, or a missing/out-of-range answer for the test's mode.
        """
        plan = self.listening_plan(run_id, test_id)
        trials = plan["trials"]
        if not 0 <= int(index) < len(trials):
            raise InputError(f"Trial {index} does not exist (the test has {len(trials)}).")
        trial = trials[int(index)]
        mode = plan["mode"]
        if "ab" in mode and preference not in ("1", "2", "same"):
            raise InputError("Choose which clip sounds better (clip 1, clip 2 or about the same).")
        if "mos" in mode:
            for label, v in (("clip 1", mos1), ("clip 2", mos2)):
                if v is None or not 1 <= float(v) <= 5:
                    raise InputError(f"Rate {label} from 1 (bad) to 5 (excellent).")
        preferred = None
        if preference in ("1", "2"):
            preferred = trial[f"system{preference}"]
        elif preference == "same":
            preferred = "same"
        answer = {
            "index": int(index),
            "sentence_id": trial["sentence_id"],
            "listener": listener,
            "preference": preference or "",
            "preferred_system": preferred or "",
            "system1": trial["system1"],
            "system2": trial["system2"],
            "mos1": float(mos1) if mos1 is not None else None,
            "mos2": float(mos2) if mos2 is not None else None,
            "time": utc_now(),
        }
        answers = [
            a
            for a in self.listening_answers(run_id, test_id)
            if not (a["index"] == answer["index"] and a.get("listener", "") == listener)
        ]
        answers.append(answer)
        answers.sort(key=lambda a: (a.get("listener", ""), a["index"]))
        folder = self._listening_dir(run_id, test_id)
        write_json(folder / "answers.json", answers)
        buf = io.StringIO()
        fields = [
            "index",
            "sentence_id",
            "listener",
            "preference",
            "preferred_system",
            "system1",
            "system2",
            "mos1",
            "mos2",
            "time",
        ]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for a in answers:
            writer.writerow({k: "" if a.get(k) is None else a.get(k) for k in fields})
        write_text(folder / "answers.csv", buf.getvalue())
        write_json(folder / "summary.json", self.listening_summary(run_id, test_id))
        return answer

    def listening_summary(self, run_id: str, test_id: str, n_boot: int = 1000) -> dict[str, Any]:
        """Preference shares (with CIs) and MOS +- CI per system, from the saved answers."""
        plan = self.listening_plan(run_id, test_id)
        answers = self.listening_answers(run_id, test_id)
        a, b = plan["system_a"], plan["system_b"]
        seed = int(plan.get("seed", 0))
        prefs = [x for x in answers if x.get("preferred_system")]
        out: dict[str, Any] = {
            "test_id": test_id,
            "mode": plan["mode"],
            "system_a": a,
            "system_b": b,
            "answered": len(answers),
            "trials": len(plan["trials"]),
        }
        if prefs:
            out["preference"] = {
                name: metrics.bootstrap(
                    [1.0 if x["preferred_system"] == name else 0.0 for x in prefs], np.mean, n_boot, seed
                ).as_dict()
                for name in (a, b, "same")
            }
        mos: dict[str, list[float]] = {a: [], b: []}
        for x in answers:
            for k in ("1", "2"):
                v = x.get(f"mos{k}")
                if v is not None:
                    mos[x[f"system{k}"]].append(float(v))
        if any(mos.values()):
            out["mos"] = {name: metrics.bootstrap(vals, np.mean, n_boot, seed).as_dict() for name, vals in mos.items()}
        return out


# --------------------------------------------------------------------------- headless command


def main(argv: list[str] | None = None) -> int:
    """``python -m engines.evaluation --config eval.json``: run an evaluation without the UI.

    Returns:
        0 when the run finished, 1 on a user error, 2 when stopped (interrupted).
    """
    parser = argparse.ArgumentParser(
        prog="python -m engines.evaluation", description="XTTS Lab: TTS -> ASR evaluation without the UI."
    )
    parser.add_argument("--config", help="JSON file with EvalConfig fields (see docs)")
    parser.add_argument("--resume", metavar="RUN_ID", help="finish a stopped run instead of starting one")
    parser.add_argument("--run-id", help="id of the new run (default: timestamp + name)")
    parser.add_argument("--workspace", help="workspace folder (default from settings)")
    parser.add_argument("--datasets-dir", help="datasets folder (default from settings)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--tiny-models", action="store_true", default=None, help="use the tiny random models")
    args = parser.parse_args(argv)
    if not args.config and not args.resume:
        parser.error("give --config FILE (or --resume RUN_ID)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from config import load_settings
    from engines import Engines

    settings = load_settings(
        {
            "workspace": args.workspace,
            "datasets_dir": args.datasets_dir,
            "device": args.device,
            "tiny_models": args.tiny_models,
        }
    )
    engines = Engines.create(settings)
    evaluation: EvalEngine = engines.evaluation

    def show(fraction: float, desc: str = "") -> None:
        print(f"[{fraction * 100:5.1f}%] {desc}", file=sys.stderr, flush=True)

    try:
        if args.resume:
            final = evaluation.resume(args.resume, progress=show, log_fn=print)
        else:
            data = json.loads(Path(args.config).read_text(encoding="utf-8"))
            config = EvalConfig.from_dict(data, settings.generation)
            final = evaluation.run(config, run_id=args.run_id, progress=show, log_fn=print)
    except (LabError, json.JSONDecodeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the finished utterances are kept; resume with --resume", file=sys.stderr)
        return 2
    from engines.report import summary_table_text

    print(summary_table_text(final.summary or {}))
    print(f"\nReport: {final.folder / 'report.html'}")
    print(f"Results: {final.folder / 'results.csv'}\nSummary: {final.folder / 'summary.json'}")
    return 0 if final.state == "done" else 2


if __name__ == "__main__":
    sys.exit(main())
