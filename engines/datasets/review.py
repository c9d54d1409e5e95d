"""A built dataset afterwards: the list, the review table and its edits, stats, re-cuts, validation.

Every function takes the dataset's folder (``root``, known to exist) and its name; the caller
(``DatasetEngine``) checks the name and holds the dataset's claim around the ones that write.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engines.core.audio import atomic_file, frame_levels, load_audio, save_wav
from engines.core.errors import InputError
from engines.core.names import is_folder_name
from engines.core.progress import LogFn, ProgressFn, no_progress
from engines.core.provenance import utc_now
from engines.datasets import screening, store
from engines.datasets.build import CLEANED, ORIGINALS
from engines.datasets.clips import assign_split, clip_flags, transcribe_clips
from engines.datasets.cutting import clean_text, find_pauses, plan_recut, split_text
from engines.datasets.options import MIN_MINUTES, SAMPLE_RATE, DatasetOptions, check_options
from engines.datasets.results import (
    ClipRow,
    DatasetStats,
    DatasetSummary,
    DroppedRow,
    Mismatch,
    SaveResult,
    ValidationReport,
)
from engines.scoring.metrics import text_cer

log = logging.getLogger(__name__)

CHOICES = ("keep", "asr", "edit")
VALIDATE_BATCH = 16  # clips re-transcribed per batched Whisper call (and per progress step)
TokenCounter = Callable[[str, str], int]


def list_datasets(datasets_root: Path) -> list[DatasetSummary]:
    """Every dataset under ``datasets_root`` (ours, and coqui-format folders made elsewhere)."""
    out: list[DatasetSummary] = []
    for folder in sorted(p for p in datasets_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not is_folder_name(folder.name):
            continue
        if not (folder / "dataset.json").is_file() and not (folder / "metadata_train.csv").is_file():
            continue
        try:
            meta = store.load(folder, folder.name)
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


def _mos(entry: Mapping[str, Any], key: str) -> float | None:
    value = (entry.get("dnsmos") or {}).get(key)
    return None if value is None else round(float(value), 2)


def _row(clip: str, e: Mapping[str, Any], flags: str) -> ClipRow:
    return ClipRow(
        clip,
        round(float(e.get("duration", 0.0)), 2),
        e.get("text", ""),
        e.get("speaker", ""),
        e.get("split", "train"),
        flags,
        None if e.get("sim") is None else round(float(e["sim"]), 3),
        _mos(e, "sig"),
        _mos(e, "bak"),
        _mos(e, "ovrl"),
        e.get("cps"),
    )


def load_table(root: Path, name: str, token_counter: TokenCounter | None = None) -> list[ClipRow]:
    """The review table: one row per clip with its scores and current quality flags."""
    meta = store.load(root, name)
    limits = store.limits(meta)
    return [
        _row(clip, e, "; ".join(clip_flags(e, limits, meta.get("language", ""), token_counter)))
        for clip, e in meta["clips"].items()
    ]


def dropped_table(root: Path, name: str) -> list[DroppedRow]:
    """The clips kept out of the training lists, with the reason and score of each decision."""
    meta = store.load(root, name)
    return [
        DroppedRow(
            clip,
            str(e.get("drop_reason", "")),
            round(float(e.get("duration", 0.0)), 2),
            e.get("text", ""),
            e.get("speaker", ""),
            e.get("source", ""),
            None if e.get("sim") is None else round(float(e["sim"]), 3),
            _mos(e, "bak"),
            e.get("cps"),
        )
        for clip, e in meta.get("dropped_clips", {}).items()
    ]


def _resplit(meta: dict[str, Any], new: Sequence[str]) -> None:
    """Splits for clips that come back: what ``assign_split`` gives them; the other clips keep theirs."""
    limits = store.limits(meta)
    split = assign_split(meta["clips"], limits["eval_share"], limits["seed"])
    for clip in new:
        meta["clips"][clip]["split"] = split[clip]
    if "eval" not in {e.get("split") for e in meta["clips"].values()} and len(meta["clips"]) >= 2:
        for clip, s in split.items():
            meta["clips"][clip]["split"] = s


def restore(root: Path, name: str, clips: Sequence[str]) -> list[str]:
    """Put dropped clips back into the training lists (the user's decision: later builds keep it).

    Raises:
        InputError: a clip that is not in the dropped list.
    """
    meta = store.load(root, name)
    dropped = meta.setdefault("dropped_clips", {})
    missing = [c for c in clips if c not in dropped]
    if missing or not clips:
        raise InputError(f"Not in the dropped list of {name!r}: {', '.join(missing) or 'no clip picked'}.")
    for clip in clips:
        entry = dropped.pop(clip)
        entry["decision"] = "keep"
        entry["restored_from"] = entry.pop("drop_reason", "")
        entry["screen"] = []
        meta["clips"][clip] = entry
    meta["clips"] = dict(sorted(meta["clips"].items()))
    _resplit(meta, clips)
    store.save(root, meta)
    return list(clips)


AUDIO_CHOICES = ("cleaned", "original")


def use_audio(root: Path, name: str, clip: str, which: str) -> str:
    """Train one clip on its original (uncleaned) span, or back on the cleaned audio: undoing a clean-up per clip.

    The build keeps the original span of every cleaned clip in ``wavs_original/``; choosing it copies that span
    into ``wavs/`` and parks the cleaned audio in ``wavs_cleaned/``, so either choice can be taken back. The
    clip's entry records ``audio: "original"`` and its flags say so (its scores were measured on the cleaned
    audio).

    Returns:
        What the clip trains on now: "original" or "cleaned".

    Raises:
        InputError: an unknown clip or choice, or a clip no clean-up ran on.
    """
    if which not in AUDIO_CHOICES:
        raise InputError(f"Audio must be one of {', '.join(AUDIO_CHOICES)}; got {which!r}.")
    meta = store.load(root, name)
    entry = meta["clips"].get(clip) or meta.get("dropped_clips", {}).get(clip)
    if entry is None:
        raise InputError(f"Clip {clip!r} is not in dataset {name!r}.")
    wav, original, cleaned = root / "wavs" / clip, root / ORIGINALS / clip, root / CLEANED / clip
    if not original.is_file():
        raise InputError(f"No clean-up ran on {clip!r}: it has no other audio to use.")
    current = entry.get("audio", "cleaned")
    if which == current:
        return current
    if which == "original":
        cleaned.parent.mkdir(exist_ok=True)
        shutil.copy2(wav, cleaned)  # the cleaned audio first: nothing is lost if we stop half-way
        _copy_into(original, wav)
        entry["audio"] = "original"
    else:
        if not cleaned.is_file():
            raise InputError(f"The cleaned audio of {clip!r} is gone ({CLEANED}/): rebuild the dataset to clean again.")
        _copy_into(cleaned, wav)
        cleaned.unlink()
        entry.pop("audio", None)
    store.save(root, meta)
    return which


def _copy_into(source: Path, target: Path) -> None:
    with atomic_file(target) as tmp:
        shutil.copyfile(source, tmp)


def drop(root: Path, name: str, clips: Sequence[str], check_not_in_use: Callable[[str, str], None]) -> list[str]:
    """Move clips out of the training lists into the dropped list (reason "dropped by hand"; restorable).

    Raises:
        InputError: an unknown clip, or no clip left in the lists.
    """
    meta = store.load(root, name)
    missing = [c for c in clips if c not in meta["clips"]]
    if missing or not clips:
        raise InputError(f"Not in the training lists of {name!r}: {', '.join(missing) or 'no clip picked'}.")
    if len(clips) >= len(meta["clips"]):
        raise InputError("That would drop every clip: to remove the whole dataset, use Delete in the datasets list.")
    check_not_in_use(name, "drop clips")
    dropped = meta.setdefault("dropped_clips", {})
    for clip in clips:
        entry = meta["clips"].pop(clip)
        entry["decision"] = "drop"
        entry["drop_reason"] = "dropped by hand"
        dropped[clip] = entry
    meta["dropped_clips"] = dict(sorted(dropped.items()))
    _resplit(meta, [])
    store.save(root, meta)
    return list(clips)


def apply_thresholds(
    root: Path, name: str, changes: Mapping[str, Any], check_not_in_use: Callable[[str, str], None]
) -> tuple[int, int]:
    """Keep or drop every automatically decided clip by new thresholds, in one step.

    The stored scores are judged again (``screening.decide``); clips restored or dropped by hand keep the
    user's decision. The thresholds are recorded in the dataset's settings (a rebuild uses them).

    Args:
        changes: any of ``screening.Thresholds``' fields (min_similarity, min_bak, min_sig, min_ovrl,
            cps_ratio, quality_action).

    Returns:
        (clips now in the lists, clips now dropped).

    Raises:
        InputError: an unknown threshold or a value out of range (``check_options``'s rules), or nothing left.
    """
    meta = store.load(root, name)
    allowed = set(screening.Thresholds.__dataclass_fields__)
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise InputError(f"Unknown threshold(s) {', '.join(unknown)}; use {', '.join(sorted(allowed))}.")
    settings = {**store.limits(meta), **{k: v for k, v in changes.items() if v is not None}}
    check_options(DatasetOptions(**{k: v for k, v in settings.items() if k in DatasetOptions.__dataclass_fields__}))
    everything = {**meta.get("dropped_clips", {}), **meta["clips"]}
    kept, dropped = screening.decide(everything, screening.Thresholds.of(settings), meta.get("language", ""))
    if not kept:
        raise InputError("These thresholds drop every clip; loosen them.")
    if set(dropped) - set(meta.get("dropped_clips", {})):
        check_not_in_use(name, "drop clips")
    back = [c for c in kept if c not in meta["clips"]]
    meta["clips"] = dict(sorted(kept.items()))
    meta["dropped_clips"] = dict(sorted(dropped.items()))
    meta.setdefault("settings", {}).update({k: settings[k] for k in allowed})
    if "screening" in meta:
        meta["screening"]["thresholds"] = {k: settings[k] for k in allowed}
    _resplit(meta, back)
    store.save(root, meta)
    return len(kept), len(dropped)


SCORE_COLUMNS = ("duration", "sim", "sig", "bak", "ovrl", "cps")


def score_histogram(root: Path, name: str, column: str, bins: int = 12) -> list[tuple[str, int]]:
    """Counts of clips (kept and dropped) per bin of one score column, for the review's histogram.

    Raises:
        InputError: a column not in ``SCORE_COLUMNS``.
    """
    if column not in SCORE_COLUMNS:
        raise InputError(f"Histogram column must be one of {', '.join(SCORE_COLUMNS)} (got {column!r}).")
    meta = store.load(root, name)
    values = []
    for e in [*meta["clips"].values(), *meta.get("dropped_clips", {}).values()]:
        v = (
            e.get("duration")
            if column == "duration"
            else e.get(column)
            if column in ("sim", "cps")
            else (e.get("dnsmos") or {}).get(column)
        )
        if v is not None:
            values.append(float(v))
    if not values:
        return []
    counts, edges = np.histogram(values, bins=bins)
    return [(f"{a:.2f}-{b:.2f}", int(c)) for a, b, c in zip(edges, edges[1:], counts)]


def save_table(
    root: Path,
    name: str,
    rows: Sequence[ClipRow | Mapping[str, Any]],
    check_not_in_use: Callable[[str, str], None],
) -> SaveResult:
    """Apply the user's table edits (``DatasetEngine.save_table``); rows left out are deleted (wav removed).

    Args:
        check_not_in_use: ``check_not_in_use(name, what)``, called before any clip is deleted.

    Raises:
        InputError: an unknown or repeated clip, an empty text, a '|' in a text, a bad split, or no row left.
    """
    meta = store.load(root, name)
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
        check_not_in_use(name, "delete clips")
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
        for clip, split in assign_split(clips, store.limits(meta)["eval_share"], store.limits(meta)["seed"]).items():
            clips[clip]["split"] = split
    store.save(root, meta)
    return SaveResult(edited=edited, deleted=len(deleted), clips=len(clips))


def stats(root: Path, name: str, token_counter: TokenCounter | None = None) -> DatasetStats:
    """Clip count, kept minutes, duration histogram (1-s bins), per-speaker counts, a warning under 2 minutes."""
    meta = store.load(root, name)
    clips = meta["clips"]
    durations = [float(e.get("duration", 0.0)) for e in clips.values()]
    seconds = float(sum(durations))
    top = int(np.ceil(max(durations))) if durations else 0
    counts = Counter(min(int(d), max(top - 1, 0)) for d in durations)
    width = len(str(max(top, 1)))
    histogram = [(f"{b:0{width}d}-{b + 1:0{width}d} s", counts.get(b, 0)) for b in range(top)]
    limits = store.limits(meta)
    flagged = sum(bool(clip_flags(e, limits, meta.get("language", ""), token_counter)) for e in clips.values())
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


def reference_clip(root: Path, name: str, target_seconds: float = 8.0) -> Path:
    """A clean train clip near ``target_seconds`` (for an exported model's reference.wav).

    Raises:
        InputError: no clip.
    """
    meta = store.load(root, name)
    limits = store.limits(meta)
    candidates = [
        (
            bool(clip_flags(e, limits, "")),
            e.get("split") != "train",
            abs(float(e.get("duration", 0.0)) - target_seconds),
            clip,
        )
        for clip, e in meta["clips"].items()
    ]
    if not candidates:
        raise InputError(f"Dataset {name!r} has no clips.")
    return root / "wavs" / min(candidates)[3]


def recut(root: Path, name: str, clip: str, max_clip: float | None = None) -> list[str]:
    """Split a clip at its pauses (``DatasetEngine.recut``); the text is split at word boundaries in
    proportion to the speech before each cut.

    Raises:
        InputError: the clip is short enough already, holds no pause to cut at, or its text has too few words.
    """
    meta = store.load(root, name)
    path = store.clip_file(root, name, store.check_clip(name, clip))
    if clip not in meta["clips"]:
        raise InputError(f"Clip {clip!r} is not in dataset {name!r}.")
    entry = meta["clips"][clip]
    limits = store.limits(meta)
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
    store.save(root, meta)
    log.info("Re-cut %s/%s into %s", name, clip, names)
    return names


def validate(
    root: Path,
    name: str,
    asr: Any,
    model_id: str | None = None,
    cer_threshold: float | None = None,
    progress: ProgressFn | None = None,
    log_fn: LogFn | None = None,
) -> ValidationReport:
    """Re-transcribe every clip and store its ASR text and CER (``DatasetEngine.validate``).

    Each clip is decoded the way the build transcribes it (``clips.transcribe_clips``: each clip on its own,
    ``VALIDATE_BATCH`` of them decoded together), so a clip built from Whisper's text re-transcribes to it. The CER is
    ``segment.text_cer``: the evaluation's normalizer (``engines.scoring.metrics.normalize``), so "1455" and
    "fourteen fifty-five" agree.

    Args:
        asr: an ``engines.asr.engine.engine.ASREngine``.

    Raises:
        InputError: bad threshold, a Whisper model that cannot hear the dataset's language.
    """
    progress = progress or no_progress
    log_fn = log_fn or print
    meta = store.load(root, name)
    limits = store.limits(meta)
    threshold = float(cer_threshold if cer_threshold is not None else limits["cer_threshold"])
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"The mismatch threshold (CER) must be above 0 and at most 1 (got {threshold:g}).")
    model_id = model_id or meta.get("settings", {}).get("model_id") or asr.default_model()
    language = meta.get("language") or None
    if language:
        asr.check_language(model_id, language)
    clips = list(meta["clips"].items())
    started = datetime.now(UTC)
    for i in range(0, len(clips), VALIDATE_BATCH):
        group = clips[i : i + VALIDATE_BATCH]
        progress(i / max(1, len(clips)), desc=f"Re-transcribing clip {i + 1} of {len(clips)}")
        audio = [load_audio(root / "wavs" / clip, sr=SAMPLE_RATE)[0] for clip, _ in group]
        heard = transcribe_clips(asr, audio, language, model_id, [clip for clip, _ in group])
        for (_, entry), (text, _) in zip(group, heard, strict=True):
            entry["asr_text"] = text
            entry["cer"] = round(text_cer(entry["text"], entry["asr_text"], language), 4)
            entry.pop("choice", None)
    meta.setdefault("settings", {})["cer_threshold"] = threshold
    meta["validation"] = {"model_id": model_id, "threshold": threshold, "time": utc_now()}
    store.save(root, meta)
    progress(1.0, desc="Validation done")
    mismatches = sorted(
        (
            Mismatch(clip, e["text"], e["asr_text"], e["cer"])
            for clip, e in meta["clips"].items()
            if e["cer"] > threshold
        ),
        key=lambda m: -m.cer,
    )
    log_fn(f"Validated {len(clips)} clips with {model_id}: {len(mismatches)} mismatch(es) over CER {threshold:g}.")
    return ValidationReport(
        checked=len(clips),
        threshold=threshold,
        model_id=model_id,
        mismatches=mismatches,
        seconds=(datetime.now(UTC) - started).total_seconds(),
    )


def check_choice(choice: str) -> str:
    """The choice, normalized: one of ``CHOICES``.

    Raises:
        InputError: naming the choices.
    """
    choice = (choice or "").strip().lower()
    if choice not in CHOICES:
        raise InputError(f"Choice must be one of {', '.join(CHOICES)} (keep original / take ASR / edit).")
    return choice


def apply_choice(
    root: Path, name: str, clip: str, choice: str, text: str | None = None, token_counter: TokenCounter | None = None
) -> ClipRow:
    """Resolve a validation mismatch with a ``check_choice``-ed choice (``DatasetEngine.apply_choice``).

    Raises:
        InputError: unknown clip, no ASR text to take, an empty or '|'-holding edit.
    """
    meta = store.load(root, name)
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
    store.save(root, meta)
    limits = store.limits(meta)
    return ClipRow(
        clip,
        round(float(entry["duration"]), 2),
        entry["text"],
        entry["speaker"],
        entry.get("split", "train"),
        "; ".join(clip_flags(entry, limits, meta.get("language", ""), token_counter)),
    )
