"""A training run's folder and its files, shared by the app (``engines.training.engine``) and the worker process.

Writes to run.json go through ``update_run`` (atomic, under a file lock both processes take).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import XTTS_LANGUAGES
from engines.core.audio import atomic_file, write_json
from engines.core.errors import InputError
from engines.core.names import check_name, speech_language
from engines.core.provenance import utc_now
from engines.datasets.manifest import read_info, read_metadata

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
INDEX_FILE = "index.json"
CHECKPOINT_RE = re.compile(r"^checkpoint_(\d+)\.pth$")
TRAINED_PREFIX = "xtts.gpt."  # the only weights GPTTrainer's optimizer updates
RUNNING, FINISHED, FAILED, STOPPED, CRASHED = "running", "finished", "failed", "stopped", "crashed"
RESUMABLE = (STOPPED, CRASHED, FAILED)


@dataclass(frozen=True)
class BaseModel:
    """A resolved fine-tuning base: the files GPTTrainer needs."""

    model_id: str  # as the user picked it
    model_dir: Path  # folder with model.pth, config.json, vocab.json
    checkpoint: Path  # model.pth
    config: Path  # config.json (its model_args give the GPT's shape)
    vocab: Path  # vocab.json (tokenizer)
    dvae: Path  # dvae.pth (audio codes for the GPT's targets)
    mel_stats: Path  # mel_stats.pth (mel normalisation)
    speakers: Path | None  # speakers_xtts.pth, copied on export when present


@dataclass
class RunStatus:
    """What the live view shows for one run."""

    run_id: str  # folder name under workspace/runs
    status: str  # running / finished / failed / stopped / crashed
    dataset: str  # dataset name
    base_model: str  # base model id
    device: str  # cpu / cuda...
    epoch: int  # current epoch, 1-based (0 before the first step)
    epochs: int  # epochs asked for
    step: int  # optimizer steps done (global, continues across resumes)
    total_steps: int | None  # steps the whole run takes (known once the worker has loaded the data)
    eta_seconds: float | None  # from recent step times; None when not running
    train_loss: float | None  # latest step's total loss
    eval_loss: float | None  # latest evaluation's loss
    best_eval_loss: float | None  # lowest evaluation loss so far
    lr: float | None  # latest learning rate
    gpu_memory_gib: float | None  # peak GPU memory of the worker; None on CPU
    log_tail: str  # last lines of train.log
    error: str | None  # why it failed
    checkpoints: int  # checkpoints on disk
    elapsed_seconds: float  # training time over all sessions
    resumable: bool  # stopped, crashed or failed: resume() continues from the last checkpoint


@dataclass
class RunSummary:
    """One row of the runs list."""

    run_id: str  # folder name
    status: str  # as in RunStatus
    dataset: str  # dataset name
    settings: str  # base model, epochs, batch, accumulation, learning rate
    best_eval_loss: float | None  # lowest evaluation loss
    duration_seconds: float  # training time
    created: str  # ISO time
    step: int  # steps done


# --------------------------------------------------------------------------- run folder files


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock shared with the worker process (read-modify-write of run.json)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def find_run(runs_dir: Path, run_id: str) -> Path:
    """The folder of an existing run.

    Raises:
        InputError: bad id or no such run.
    """
    run_id = check_name(run_id, "run")
    folder = runs_dir / run_id
    if not (folder / RUN_FILE).is_file():
        raise InputError(f"No training run named {run_id!r} (train_runs lists them).")
    return folder


def read_run(run_dir: Path) -> dict[str, Any]:
    """The run's run.json as a dict.

    Raises:
        InputError: the folder is not a run.
    """
    try:
        return json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"No training run in {run_dir.name!r} (run.json missing or unreadable).") from exc


def update_run(run_dir: Path, **changes: Any) -> dict[str, Any]:
    """Change fields of run.json atomically, under a lock shared by the app and the worker."""
    with file_lock(run_dir / ".run.lock"):
        info = read_run(run_dir)
        info.update(changes)
        info["updated"] = utc_now()
        write_json(run_dir / RUN_FILE, info)
        return info


def _metric_lines(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """(every parseable line of a metrics file in file order, whether the file is clean): a line cut short
    by a kill is skipped and makes the file unclean."""
    if not path.is_file():
        return [], True
    text = path.read_text(encoding="utf-8", errors="replace")
    rows, clean = [], text == "" or text.endswith("\n")
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            clean = False
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows, clean


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl as one row per (kind, step), in file order; a line cut short by a kill is skipped.

    A run resumed from a checkpoint trains the steps after it again. The worker drops their first lines
    when it resumes (``trim_metrics``); a step logged twice all the same (a file from before that, an
    evaluation repeated at the checkpoint's own step) keeps its last line, the one whose weights went on.
    """
    rows, _ = _metric_lines(run_dir / METRICS_FILE)
    last = {(r.get("kind"), r.get("step")): i for i, r in enumerate(rows)}
    return [r for i, r in enumerate(rows) if "step" not in r or last[(r.get("kind"), r.get("step"))] == i]


def trim_metrics(run_dir: Path, step: int) -> int:
    """Before a resume from ``step``'s checkpoint: drop the metrics lines after ``step`` (they are trained
    again) and a line a kill cut short (the next line would be appended to it), rewriting metrics.jsonl
    atomically; untouched when there is nothing to drop.

    Returns:
        How many complete lines were dropped.
    """
    path = run_dir / METRICS_FILE
    rows, clean = _metric_lines(path)
    kept = [r for r in rows if not isinstance(r.get("step"), int | float) or r["step"] <= step]
    if len(kept) != len(rows) or not clean:
        with atomic_file(path) as tmp:
            Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    return len(rows) - len(kept)


def read_index(run_dir: Path) -> dict[str, dict[str, Any]]:
    """checkpoints/index.json: checkpoint file name -> step, epoch, kind, train/eval loss."""
    try:
        return json.loads((run_dir / CHECKPOINT_DIR / INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def checkpoint_files(run_dir: Path) -> list[Path]:
    """Complete checkpoints (temp files of an interrupted save are never named like this), by step."""
    folder = run_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def checkpoint_step(path: Path) -> int:
    match = CHECKPOINT_RE.match(path.name)
    if not match:
        raise InputError(f"{path.name} is not a training checkpoint (expected checkpoint_<step>.pth).")
    return int(match.group(1))


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def log_tail(run_dir: Path, lines: int = 40) -> str:
    """Last lines of train.log with terminal colour codes removed."""
    path = run_dir / LOG_FILE
    if not path.is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        text = fh.read().decode("utf-8", errors="replace")
    text = _ANSI.sub("", text).replace("\r", "\n")
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def read_dataset(dataset_dir: Path) -> tuple[list[dict[str, str]], list[dict[str, str]], str]:
    """Read a coqui-format dataset: (train rows, eval rows, language).

    Rows are ``{"audio_file": absolute path, "text", "speaker_name"}``; rows whose audio file is missing
    or whose text is empty are left out.

    Raises:
        InputError: no dataset.json language, or an unsupported language.
    """
    try:
        meta = read_info(dataset_dir) or {}
    except (OSError, ValueError):
        meta = {}
    try:
        language = speech_language(str(meta.get("language") or ""))
    except InputError:
        raise InputError(
            f"Dataset {dataset_dir.name!r} has no valid language in dataset.json (got {meta.get('language')!r}): "
            f"XTTS's own are {', '.join(XTTS_LANGUAGES)}; any other ISO 639 code is a language to teach it."
        ) from None

    def rows(split: str) -> list[dict[str, str]]:
        return [
            {"audio_file": str(e.path(dataset_dir)), "text": e.text, "speaker_name": e.speaker_name or "speaker"}
            for e in read_metadata(dataset_dir, split)
            if e.path(dataset_dir).is_file()
        ]

    return rows("train"), rows("eval"), language


def clip_seconds(path: str | Path) -> float:
    """Duration from the file header (cheap; no decoding)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        return info.frames / float(info.samplerate)
    except Exception:  # noqa: BLE001 - an unreadable clip simply does not count
        return 0.0
