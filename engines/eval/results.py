"""results.csv: one typed row per utterance (``ResultRow``); its fields are the file's columns, in order.

Wall-clock timings (``TIMING_COLUMNS``) go to timings.csv beside it, keyed like results.csv: they differ from
run to run, and without them the same config and seed give a byte-identical results.csv on the same device.

Rows travel as dicts (``ResultRow.as_dict()``) between the runner, the summary and the report, so a
results.csv read back and a run in memory are the same data; ``ResultRow`` is the one definition of
what a row holds, and building one checks that nothing is missing.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np

from engines.core.audio import write_text
from engines.scoring import metrics

GROUND_TRUTH = "ground truth"  # the system name of rows that score real recordings
# What a system's numbers rest on: each row records whether its TTS and its ASR had trained or random weights
# ("" = no TTS: the ground-truth recordings).
RANDOM = "random"  # tiny random-weight models (tiny mode, or a model fine-tuned from one)
REAL = "real"  # trained weights


@dataclass(frozen=True)
class ResultRow:
    """One scored utterance. Field order = column order of results.csv; types drive parsing on read."""

    key: str  # "<system>|<sentence id>|<repeat>": what a resumed run skips
    system: str
    model: str
    voice: str
    checkpoint: str
    sentence_id: str
    repeat: int
    language: str
    length_bucket: str
    ref_text: str
    hyp_text: str
    ref_norm: str
    hyp_norm: str
    normalizer: str
    unit: str  # "word" or "char": the headline unit of the language
    ref_words: int
    word_errors: int
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    wer: float
    ref_chars: int
    char_errors: int
    char_substitutions: int
    char_deletions: int
    char_insertions: int
    cer: float
    audio_seconds: float
    gen_seconds: float | None  # None for ground truth (no synthesis)
    rtf: float | None
    sim: float | None  # cosine of the SIM encoder's embeddings: this audio vs the reference voice
    sim_encoder: str  # the encoder's id (engines.scoring.sim): numbers of different encoders never pool
    sim_reference: str  # which reference voice SIM was computed against ("" = no SIM)
    dnsmos_ovrl: float | None  # DNSMOS P.835 overall / signal / background, and P.808 (predicted MOS 1-5)
    dnsmos_sig: float | None
    dnsmos_bak: float | None
    dnsmos_p808: float | None
    utmos: float | None  # UTMOS naturalness, when its weights are there
    seed: int | None
    audio_file: str  # relative to the run folder
    asr_seconds: float
    asr_notice: str
    flag_cut_off: bool
    flag_hallucinated_tail: bool
    flag_long_silence: bool
    flag_clipping: bool
    flags: str
    trailing_deleted: int
    trailing_inserted: int
    repeat_ngram: int
    trailing_silence_s: float
    clipped_fraction: float
    tts_notices: str
    tts_weights: str  # RANDOM / REAL; "" for ground truth (no TTS)
    asr_weights: str  # RANDOM / REAL

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _column_types() -> tuple[tuple[str, type], ...]:
    hints = get_type_hints(ResultRow)
    out = []
    for f in dataclasses.fields(ResultRow):
        kind = hints[f.name]
        base = next((t for t in (bool, int, float, str) if t is kind or t in getattr(kind, "__args__", ())), str)
        out.append((f.name, base))
    return tuple(out)


# (column, type) in file order.
RESULT_COLUMNS: tuple[tuple[str, type], ...] = _column_types()
COLUMN_NAMES = tuple(name for name, _ in RESULT_COLUMNS)
MOS_COLUMNS = ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808", "utmos")
TIMING_COLUMNS = ("gen_seconds", "rtf", "asr_seconds")  # in timings.csv, not results.csv
FILE_COLUMNS = tuple(name for name in COLUMN_NAMES if name not in TIMING_COLUMNS)
TIMINGS_FILE = "timings.csv"


def score_row(
    *,
    system: str,
    model: str,
    voice: str,
    checkpoint: str | None,
    sentence: Any,
    repeat: int,
    transcript: Any,
    audio: np.ndarray,
    sr: int,
    audio_file: str,
    gen_seconds: float | None,
    rtf: float | None,
    seed: int | None,
    notices: list[str],
    weights: tuple[str, str],
    quality: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score one utterance (an ``engines.eval.sentences.Sentence`` and its ASR ``Transcript``) into a row.

    ``quality`` holds the audio-only metrics (``sim``, ``sim_encoder``, ``sim_reference`` and ``MOS_COLUMNS``);
    missing ones are empty.
    """
    q = quality or {}
    hyp = (transcript.text or "").strip()
    s = metrics.score(sentence.text, hyp, sentence.language)
    flags = metrics.failure_flags(s, audio, sr)
    return ResultRow(
        key=f"{system}|{sentence.id}|{repeat}",
        system=system,
        model=model,
        voice=voice,
        checkpoint=checkpoint or "",
        sentence_id=sentence.id,
        repeat=repeat,
        language=sentence.language,
        length_bucket=metrics.length_bucket(s.words.ref_len, sentence.language),
        ref_text=sentence.text,
        hyp_text=hyp,
        ref_norm=s.ref_norm,
        hyp_norm=s.hyp_norm,
        normalizer=s.normalizer,
        unit="char" if metrics.is_char_language(sentence.language) else "word",
        ref_words=s.words.ref_len,
        word_errors=s.words.errors,
        substitutions=s.words.substitutions,
        deletions=s.words.deletions,
        insertions=s.words.insertions,
        hits=s.words.hits,
        wer=s.wer,
        ref_chars=s.chars.ref_len,
        char_errors=s.chars.errors,
        char_substitutions=s.chars.substitutions,
        char_deletions=s.chars.deletions,
        char_insertions=s.chars.insertions,
        cer=s.cer,
        audio_seconds=len(audio) / sr if sr else float("nan"),
        gen_seconds=gen_seconds,
        rtf=rtf,
        sim=q.get("sim"),
        sim_encoder=q.get("sim_encoder") or "",
        sim_reference=q.get("sim_reference") or "",
        **{name: q.get(name) for name in MOS_COLUMNS},
        seed=seed,
        audio_file=audio_file,
        asr_seconds=transcript.seconds,
        asr_notice=transcript.notice or "",
        flag_cut_off=flags.cut_off,
        flag_hallucinated_tail=flags.hallucinated_tail,
        flag_long_silence=flags.long_silence,
        flag_clipping=flags.clipping,
        flags=" ".join(flags.names()),
        trailing_deleted=flags.trailing_deleted,
        trailing_inserted=flags.trailing_inserted,
        repeat_ngram=flags.repeat_ngram,
        trailing_silence_s=flags.trailing_silence_s,
        clipped_fraction=flags.clipped_fraction,
        tts_notices=" | ".join(notices),
        tts_weights=weights[0],
        asr_weights=weights[1],
    ).as_dict()


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


def _csv_text(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_format_cell(row.get(name)) for name in columns])
    return buf.getvalue()


def write_results(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write results.csv and, beside it, timings.csv (key + ``TIMING_COLUMNS``), each atomically (readers never
    see half a file). Timings first: a results row never lacks its timings."""
    write_text(path.with_name(TIMINGS_FILE), _csv_text(rows, ("key", *TIMING_COLUMNS)))
    return write_text(path, _csv_text(rows, FILE_COLUMNS))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_results(path: Path) -> list[dict[str, Any]]:
    """Read results.csv (and its timings.csv) back into typed rows.

    A missing file = no rows; columns an older file lacks default to empty, and older files that still hold the
    timing columns themselves keep them.
    """
    if not path.is_file():
        return []
    types = dict(RESULT_COLUMNS)
    raw_rows = _read_csv(path)
    timings_path = path.with_name(TIMINGS_FILE)
    if timings_path.is_file():
        timings = {t["key"]: t for t in _read_csv(timings_path)}
        raw_rows = [
            {**raw, **{k: v for k, v in timings.get(raw.get("key", ""), {}).items() if k != "key"}} for raw in raw_rows
        ]
    return [
        {name: _parse_cell(raw.get(name, "") or "", types.get(name, str)) for name in COLUMN_NAMES} for raw in raw_rows
    ]
