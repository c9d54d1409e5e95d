"""``DatasetEngine``: the datasets folder, one job at a time per dataset, and the calls pages and scripts make.

The work is done elsewhere in the package (``build``, ``review``); this class owns the settings, the
ASR engine, the in-use check and the per-dataset claims, and checks names at the boundary.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from config import Settings, resolve_path
from engines.core.errors import BusyError, InputError
from engines.core.process import pid_alive, process_exists
from engines.core.progress import ConsoleProgress, LogFn, ProgressFn
from engines.datasets import review, store
from engines.datasets.build import Builder
from engines.datasets.ingest import resolve_server_folder
from engines.datasets.options import NO_INPUT, DatasetOptions, check_language, check_name, check_options
from engines.datasets.results import (
    ClipRow,
    DatasetReport,
    DatasetStats,
    DatasetSummary,
    DroppedRow,
    SaveResult,
    ValidationReport,
)
from engines.datasets.screening import Cleanup, Scorer

log = logging.getLogger(__name__)

STAGING_PREFIX = "incoming-"  # workspace/cache/datasets/incoming-<pid>-*: one build's unpacked zips


def datasets_root(settings: Settings) -> Path:
    """The datasets folder setting, absolute.

    Raises:
        InputError: the setting is empty (a settings file that blanked it).
    """
    folder = settings.path("datasets_dir")
    if folder is None:
        raise InputError("The datasets_dir setting is empty: set it to the folder datasets are kept in.")
    return folder


def server_roots(settings: Settings) -> tuple[Path, ...]:
    """The folders a user may name as "a folder on the server" (resolved); empty = the feature is off.

    The project's own folders (``datasets_dir`` and the workspace) plus ``settings.server_folders``. When the
    app can be reached from other machines (``settings.exposed``), only with ``server_folders`` configured.
    """
    configured = [resolve_path(p).resolve() for p in settings.server_folders if str(p).strip()]
    if settings.exposed and not configured:
        return ()
    roots: list[Path] = []
    for root in [datasets_root(settings).resolve(), settings.workspace_dir.resolve(), *configured]:
        if root not in roots:
            roots.append(root)
    return tuple(roots)


def clean_staging(folder: Path) -> list[Path]:
    """Remove the staging folders of builds whose process is gone (killed mid-build), in ``folder``.

    Folders of this process and of live processes stay; a folder without a pid in its name (older
    versions) is removed.

    Returns:
        The folders removed.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for staging in folder.glob(f"{STAGING_PREFIX}*"):
        match = re.match(rf"{STAGING_PREFIX}(\d+)-", staging.name)
        pid = int(match.group(1)) if match else None
        if not staging.is_dir() or pid == os.getpid() or (pid is not None and process_exists(pid)):
            continue
        shutil.rmtree(staging, ignore_errors=True)
        removed.append(staging)
    if removed:
        log.info("Removed %d staging folder(s) of killed dataset builds in %s", len(removed), folder)
    return removed


def runs_using(settings: Settings, name: str) -> bool:
    """Default in-use check: a ``workspace/runs/*/run.json`` with status "running" on this dataset.

    A run.json naming a ``pid`` that no longer exists does not count (a crashed run must not lock
    the dataset forever).
    """
    runs = settings.workspace_dir / "runs"
    if not runs.is_dir():
        return False
    for run_json in runs.glob("*/run.json"):
        data = store.read_json(run_json)
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


class DatasetEngine:
    """Builds, reviews, checks and deletes training datasets under ``settings.datasets_dir``."""

    def __init__(
        self,
        settings: Settings,
        asr_engine: Any,
        in_use: Callable[[str], bool] | None = None,
        token_counter: Callable[[str, str], int] | None = None,
        sim: Any = None,
        mos: Any = None,
    ) -> None:
        """
        Args:
            settings: app settings (datasets_dir, workspace, max_upload_mb).
            asr_engine: an ``engines.asr.engine.engine.ASREngine`` (transcription and validation).
            in_use: ``in_use(name) -> bool``: a training run uses this dataset (default: scan run.json files).
                The training engine may replace it (``engine.in_use = training.uses_dataset``).
            token_counter: ``token_counter(text, language) -> tokens`` with the trainer's tokenizer, to flag
                texts over its token limit; None = flag by character count only.
            sim: an ``engines.scoring.sim.SimilarityEngine`` and
            mos: an ``engines.scoring.mos.MOSEngine`` for the speaker and quality screening; None = this
                engine makes its own (their models load on first use).
        """
        self.settings = settings
        self.asr = asr_engine
        self.in_use: Callable[[str], bool] = in_use or functools.partial(runs_using, settings)
        self.token_counter = token_counter
        if sim is None or mos is None:
            from engines.scoring.mos import MOSEngine
            from engines.scoring.sim import SimilarityEngine

            lock = getattr(asr_engine, "gpu_lock", None) or threading.RLock()
            sim = sim or SimilarityEngine(settings, lock)
            mos = mos or MOSEngine(settings, lock)
        self.scorer = Scorer(sim, mos)
        self._lock = threading.Lock()
        self._active: set[str] = set()
        clean_staging(settings.workspace_dir / "cache" / "datasets")  # unpacked zips of builds killed earlier

    # ----- paths -----

    @property
    def root(self) -> Path:
        """The datasets folder (created on demand)."""
        folder = datasets_root(self.settings)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def server_roots(self) -> tuple[Path, ...]:
        """Where a typed server folder may be (``server_roots``); empty = the feature is off."""
        return server_roots(self.settings)

    def server_folder(self, text: str) -> Path:
        """The guard for a folder a user typed: a real folder inside ``server_roots`` (resolved).

        Raises:
            InputError: the feature is off, or the folder is not inside the allowed roots (the message
                names them).
        """
        return resolve_server_folder(text, self.server_roots)

    def dataset_dir(self, name: str) -> Path:
        """``datasets_dir/<name>`` for a valid name (not created)."""
        return self.root / check_name(name)

    def clip_path(self, name: str, clip: str) -> Path:
        """The wav of one clip.

        Raises:
            InputError: no such clip (or a clip name that is a path).
        """
        clip = store.check_clip(name, clip)
        return store.clip_file(self._existing(name), name, clip)

    def _existing(self, name: str) -> Path:
        folder = self.dataset_dir(name)
        if not folder.is_dir():
            raise InputError(f"No dataset named {name!r} (datasets_list lists them).")
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
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
        cleanup: Cleanup | None = None,
    ) -> DatasetReport:
        """Turn recordings into a dataset: decode, mono, 22.05 kHz, loudness, Whisper, cut, check, write.

        A re-run with the same sources skips the files an earlier run finished ("already prepared -
        skipping"), so a build stopped half-way (crash, kill, Ctrl-C) resumes where it stopped.

        Args:
            name: dataset name (see ``check_name``).
            sources: audio files, zips of audio files, and/or server folders (searched recursively).
            language: one of the 17 XTTS language codes, or any ISO 639 code (a language to teach XTTS;
                Whisper must know it unless ``transcripts`` gives every text); Whisper is told this language.
            transcripts: optional transcripts file (``file|text``, LJSpeech or coqui metadata): files
                with a row skip Whisper and are kept whole.
            options: cutting, checks, split and overwrite (see ``DatasetOptions``).
            progress: ``progress(fraction, desc=...)`` (gr.Progress works); default a console bar.
            log_fn: ``log_fn(message)`` for per-file lines; default print.
            cleanup: an audio clean-up (denoise, music separation) run on each source before it is cut
                (``screening.Cleanup``: ``cleanup(audio, sr) -> audio`` with a ``name``); None = none.

        Returns:
            The report: per-file rows (seconds kept / dropped as another speaker / dropped or flagged for
            quality / cleaned), dropped clips per reason, totals.

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
        console = None
        if progress is None:
            console = ConsoleProgress()
            progress = console
        log_fn = log_fn or print
        with self._claim(name):
            staging = Path(
                tempfile.mkdtemp(
                    prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=self.settings.workspace_sub("cache", "datasets")
                )
            )
            try:
                builder = Builder(
                    self.asr,
                    self.settings.max_upload_mb,
                    self._check_not_in_use,
                    self.token_counter,
                    scorer=self.scorer,
                    cleanup=cleanup,
                )
                return builder.run(
                    self.dataset_dir(name), name, paths, language, transcripts, options, progress, log_fn, staging
                )
            finally:
                shutil.rmtree(staging, ignore_errors=True)
                if console is not None:
                    console.close()

    # ----- review -----

    def list_datasets(self) -> list[DatasetSummary]:
        """Every dataset under datasets_dir (ours, and coqui-format folders made elsewhere)."""
        return review.list_datasets(self.root)

    def info(self, name: str) -> dict[str, Any]:
        """dataset.json as a dict (language, settings, sources, per-file report, clips)."""
        return store.load(self._existing(name), name)

    def load_table(self, name: str) -> list[ClipRow]:
        """The review table: one row per clip with its current quality flags.

        Raises:
            InputError: no such dataset.
        """
        return review.load_table(self._existing(name), name, self.token_counter)

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
            return review.save_table(self._existing(name), name, rows, self._check_not_in_use)

    def stats(self, name: str) -> DatasetStats:
        """Clip count, kept minutes, duration histogram (1-s bins), per-speaker counts, a warning under 2 minutes."""
        return review.stats(self._existing(name), name, self.token_counter)

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
        return review.reference_clip(self._existing(name), name, target_seconds)

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
            return review.recut(self._existing(name), name, clip, max_clip)

    def validate(
        self,
        name: str,
        model_id: str | None = None,
        cer_threshold: float | None = None,
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
    ) -> ValidationReport:
        """Re-transcribe every clip and flag texts the ASR disagrees with (CER over the threshold).

        Each clip is decoded the way the build transcribes one, and compared with the evaluation's
        normalizer (``review.validate``). The result is stored per clip (shown in the flags column until
        the user picks keep / take ASR / edit with ``apply_choice``).

        Args:
            name: the dataset.
            model_id: Whisper model (None = the one the dataset was built with, else the ASR default).
            cer_threshold: mismatch above this character error rate (None = the dataset's setting;
                ``CER_THRESHOLD`` for new datasets).
            progress: ``progress(fraction, desc=...)``.
            log_fn: ``log_fn(message)``.

        Returns:
            The mismatches, worst first.

        Raises:
            InputError: no dataset, bad threshold, a Whisper model that cannot hear the dataset's
                language. BusyError: the dataset is busy.
        """
        name = check_name(name)
        with self._claim(name):
            return review.validate(self._existing(name), name, self.asr, model_id, cer_threshold, progress, log_fn)

    def apply_choice(self, name: str, clip: str, choice: str, text: str | None = None) -> ClipRow:
        """Resolve a validation mismatch: keep the original text, take the ASR text, or set an edited text.

        Raises:
            InputError: unknown clip or choice, no ASR text to take, an empty or '|'-holding edit.
        """
        name = check_name(name)
        choice = review.check_choice(choice)
        with self._claim(name):
            return review.apply_choice(self._existing(name), name, clip, choice, text, self.token_counter)

    # ----- speaker and quality screening: every automatic decision visible and reversible -----

    def dropped_table(self, name: str) -> list[DroppedRow]:
        """The clips kept out of the training lists (by the screening or by hand), with reason and score.

        Raises:
            InputError: no such dataset.
        """
        return review.dropped_table(self._existing(name), name)

    def restore(self, name: str, clips: Sequence[str]) -> list[str]:
        """Put dropped clips back into the training lists (a later build keeps the user's decision).

        Raises:
            InputError: a clip not in the dropped list. BusyError: the dataset is busy.
        """
        name = check_name(name)
        with self._claim(name):
            return review.restore(self._existing(name), name, list(clips))

    def use_audio(self, name: str, clip: str, which: str) -> str:
        """Train a cleaned clip on its original span ("original") or on the cleaned audio again ("cleaned").

        Raises:
            InputError: unknown clip or choice, or no clean-up ran on it. BusyError: busy, or a run uses it.
        """
        name = check_name(name)
        clip = store.check_clip(name, clip)
        with self._claim(name):
            self._check_not_in_use(name, "change a clip's audio")
            return review.use_audio(self._existing(name), name, clip, which)

    def drop(self, name: str, clips: Sequence[str]) -> list[str]:
        """Move clips out of the training lists into the dropped list (restorable; wavs kept).

        Raises:
            InputError: an unknown clip, or every clip. BusyError: busy, or a training run uses the dataset.
        """
        name = check_name(name)
        with self._claim(name):
            return review.drop(self._existing(name), name, list(clips), self._check_not_in_use)

    def apply_thresholds(self, name: str, **changes: Any) -> tuple[int, int]:
        """Keep or drop every automatically decided clip by new thresholds in one step (see ``review.apply_thresholds``).

        Returns:
            (clips in the lists, clips dropped).

        Raises:
            InputError: an unknown threshold, a value out of range, or thresholds that drop every clip.
            BusyError: busy, or a training run uses the dataset.
        """
        name = check_name(name)
        with self._claim(name):
            return review.apply_thresholds(self._existing(name), name, changes, self._check_not_in_use)

    def score_histogram(self, name: str, column: str, bins: int = 12) -> list[tuple[str, int]]:
        """Clips (kept and dropped) per bin of one score (``review.SCORE_COLUMNS``)."""
        return review.score_histogram(self._existing(name), name, column, bins)
