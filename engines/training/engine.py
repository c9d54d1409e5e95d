"""XTTS GPT fine-tuning as a managed background process (coqui ``GPTTrainer`` + ``trainer.Trainer``).

The engine never trains in the app's process: ``start`` writes a run folder and spawns
``python -m engines.training.worker <run_dir>`` in its own session, so training survives a browser refresh
or an app restart and can be stopped, killed and resumed. Everything about a run lives in its folder::

    workspace/runs/<run-id>/
        run.json        status, options, dataset, base model, pid, device, steps, error
        config.json     the GPTTrainerConfig the worker built (written by the worker)
        train.log       the worker's stdout/stderr (coqui's console log included)
        metrics.jsonl   one JSON line per training step and per evaluation
        checkpoints/    checkpoint_<step>.pth (written atomically) + index.json (step, epoch, losses)
        trainer/        coqui Trainer's own output folder (its log and config copy)

Checkpoints hold the trained part only (the GPT, ``xtts.gpt.*``, in coqui Trainer's key format) plus
optimizer, scheduler and position; the frozen parts (HiFi-GAN decoder, speaker encoder, DVAE) are the
base model's and are taken from it again on resume and export.

``TrainingEngine`` is the one face the pages, the API and the Eval engine use; each job is a module of
its own: ``base`` (which base model, its files), ``checks`` (a run's preconditions), ``process`` (the
worker's launch and lifecycle), ``views`` (status, runs list, metrics and checkpoint tables), ``export``
(a checkpoint as a model folder), ``sizing`` (batch size for free GPU memory); ``options`` and ``runs``
(the run folder's files) are shared with ``worker``, the training process. No gradio here; cheap to import.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config import Settings, resolve_path
from engines.training import sizing, views
from engines.training.base import BaseResolver
from engines.training.checks import validate_run
from engines.training.export import export_run
from engines.training.options import (
    PRESETS,
    RankPlan,
    TrainOptions,
    estimate_vram_gib,
    options_from_dict,
    preset_options,
    rank_plan,
    select_gpus,
)
from engines.training.process import WORKER_SCRIPT, RunProcesses, launch_command, rank_pids
from engines.training.runs import (
    METRICS_FILE,
    BaseModel,
    RunStatus,
    RunSummary,
    checkpoint_files,
    read_dataset,
    read_metrics,
    read_run,
)
from engines.tts.vocab import CoverageReport, coverage

if TYPE_CHECKING:
    import pandas as pd

    from engines.tiny import TinyModels
    from engines.tts.engine import TTSEngine


class TrainingEngine:
    """Start, watch, stop, resume and export XTTS fine-tuning runs (one at a time)."""

    def __init__(
        self,
        settings: Settings,
        gpu_lock: threading.RLock | None = None,
        tiny: TinyModels | None = None,
        tts: TTSEngine | None = None,
    ) -> None:
        """
        Args:
            settings: app settings (workspace, datasets_dir, device, tiny_models, xtts_cache_dir).
            gpu_lock: the app's GPU lock; training itself runs in another process, so it is held only
                while this process touches weights (export).
            tiny: engines.tiny.TinyModels in tiny mode (built on demand when None).
            tts: the TTS engine (kept for callers that pass it; the XTTS v2 search is the model catalogue's).
        """
        self.settings = settings
        self.gpu_lock = gpu_lock or threading.RLock()
        self._tts = tts
        self.bases = BaseResolver(settings, tiny)
        self.processes = RunProcesses(settings, self.validate)

    # ----------------------------------------------------------------- folders and names

    @property
    def runs_dir(self) -> Path:
        return self.processes.runs_dir

    @property
    def models_dir(self) -> Path:
        return self.bases.models_dir

    @property
    def datasets_dir(self) -> Path:
        return resolve_path(self.settings.datasets_dir)

    def run_dir(self, run_id: str) -> Path:
        """The folder of an existing run.

        Raises:
            InputError: bad id or no such run.
        """
        return self.processes.run_dir(run_id)

    def list_datasets(self) -> list[str]:
        """Dataset folder names (those with a metadata_train.csv)."""
        root = self.datasets_dir
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "metadata_train.csv").is_file())

    # ----------------------------------------------------------------- base model

    def base_models(self) -> list[tuple[str, str]]:
        """(label, model id) choices for the base: the tiny or XTTS v2 base, then workspace/models/*."""
        return self.bases.choices()

    def default_base(self) -> str:
        return self.bases.default()

    def xtts_base_candidates(self) -> list[Path]:
        """Folders that may hold XTTS v2, in search order (the model catalogue's)."""
        return self.bases.xtts_candidates()

    def xtts_base_dir(self) -> Path:
        """The XTTS v2 folder to fine-tune from: the first candidate with model.pth, else the first candidate."""
        return self.bases.xtts_dir()

    def resolve_base(self, model_id: str) -> BaseModel:
        """Find the files a fine-tune starts from (see ``BaseResolver.resolve``).

        Raises:
            InputError: unknown id, or "tiny" outside tiny mode.
            MissingWeightsError: files missing, naming the folder and the files.
        """
        return self.bases.resolve(model_id)

    def recorded_base(self, info: dict[str, Any]) -> BaseModel:
        """The base files a run trained from (run.json keeps absolute paths), re-resolved if they moved.

        Raises:
            MissingWeightsError: the base's files are gone.
        """
        return self.bases.recorded(info)

    # ----------------------------------------------------------------- lifecycle

    def validate(self, options: TrainOptions) -> tuple[Path, BaseModel, dict[str, Any]]:
        """Check options, dataset and base before anything is spawned.

        Returns:
            (dataset folder, resolved base, facts: gpus, language, clip counts, GPT limits).

        Raises:
            InputError: a bad value (the message names the allowed range), no dataset, no clips.
            MissingWeightsError: base files missing.
        """
        return validate_run(options, self.datasets_dir, self.bases, self.settings.device)

    def vocabulary(self, options: TrainOptions) -> CoverageReport:
        """How well the base's vocabulary spells the dataset's text (what ``start`` will extend, and why).

        Raises:
            InputError / MissingWeightsError: as ``validate``.
        """
        dataset_dir, base, facts = self.validate(options)
        train, evals, _ = read_dataset(dataset_dir)
        return coverage([row["text"] for row in (*train, *evals)], base.vocab, facts["language"])

    def active_run(self) -> str | None:
        """The id of the run whose worker is alive (also one started by an earlier app session)."""
        return self.processes.active_run()

    def start(self, options: TrainOptions) -> str:
        """Validate, create the run folder and spawn the training worker.

        Args:
            options: what to train.

        Returns:
            The new run's id.

        Raises:
            InputError: bad options, dataset missing or without clips.
            MissingWeightsError: base model files missing.
            BusyError: another run is running.
        """
        return self.processes.start(options)

    def stop(self, run_id: str, timeout: float = 120.0) -> RunStatus:
        """Ask the worker to stop (SIGTERM: it saves a checkpoint and exits); after ``timeout`` SIGKILL its
        whole process group.

        Args:
            run_id: the running run.
            timeout: seconds to wait for a clean exit before SIGKILL.

        Returns:
            The run's status afterwards ("stopped"; checkpoints kept).

        Raises:
            InputError: the run is not running.
        """
        self.processes.stop(run_id, timeout)
        return self.status(run_id)

    def resume(self, run_id: str) -> RunStatus:
        """Continue a stopped, crashed or failed run from its last complete checkpoint.

        The worker loads the newest checkpoint that loads (falling back to an older one), restores the
        optimizer, scheduler and step count, skips the batches of the interrupted epoch already done,
        and appends to metrics.jsonl (the global step continues). Without any checkpoint it starts over.

        Raises:
            InputError: the run finished (start a new run from its export to train more) or is running.
            BusyError: another run is running.
        """
        self.processes.resume(run_id)
        return self.status(run_id)

    def in_use(self, dataset: str) -> bool:
        """True while a running run trains on ``dataset`` (the dataset page refuses to delete it then)."""
        return self.processes.in_use(dataset)

    def delete_run(self, run_id: str) -> None:
        """Delete a run folder (checkpoints included).

        Raises:
            BusyError: the run is running.
        """
        self.processes.delete(run_id)

    # ----------------------------------------------------------------- reading runs

    def status(self, run_id: str, log_lines: int = 40) -> RunStatus:
        """The live view of one run (cheap: reads run.json, metrics.jsonl and the log's end).

        Raises:
            InputError: no such run.
        """
        run_dir = self.run_dir(run_id)
        info = read_run(run_dir)
        return views.run_status(run_dir, info, self.processes.status_of(run_id, info), log_lines)

    def list_runs(self) -> list[RunSummary]:
        """All runs, newest first."""
        return views.list_runs(self.runs_dir, self.processes.status_of)

    def latest_run(self) -> str | None:
        """The running run, else the newest one (what the page shows on load)."""
        running = self.active_run()
        if running:
            return running
        runs = self.list_runs()
        return runs[0].run_id if runs else None

    def metrics(self, run_id: str) -> pd.DataFrame:
        """Metrics as a pandas DataFrame (columns: kind, session, epoch, step, loss, loss_text_ce,
        loss_mel_ce, lr, time, step_time, gpu_mem_gib), one row per (kind, step): steps replayed after a
        crash replace the lost ones."""
        return views.metrics_table(self.run_dir(run_id))

    def checkpoints(self, run_id: str) -> list[Path]:
        """The run's complete checkpoints, oldest first."""
        return checkpoint_files(self.run_dir(run_id))

    def checkpoint_info(self, run_id: str) -> list[dict[str, Any]]:
        """Per checkpoint: path, step, epoch, kind, train_loss, eval_loss (from checkpoints/index.json)."""
        return views.checkpoint_table(self.run_dir(run_id))

    def best_checkpoint(self, run_id: str) -> Path | None:
        """The checkpoint with the lowest evaluation loss, else the newest one."""
        return views.best_checkpoint(self.run_dir(run_id))

    def suggest_batch_size(self, device: str | None = None, options: TrainOptions | None = None) -> int | None:
        """A batch size that should fit in free GPU memory (see ``estimate_vram_gib``); None on CPU.

        Args:
            device: torch device; default from settings.
            options: for the base model's GPT shape and the max audio length (defaults: XTTS v2, 11 s).
        """
        from engines.core.device import gpu_memory, resolve_device

        memory = gpu_memory(device or resolve_device(self.settings.device))
        if memory is None:
            return None
        options = options or TrainOptions(base_model=self.default_base())
        return sizing.suggest_batch_size(float(memory["free_gib"]), options, self.bases)

    # ----------------------------------------------------------------- export

    def export(
        self,
        run_id: str,
        checkpoint: Path | str | None = None,
        name: str | None = None,
        dest_dir: Path | None = None,
        *,
        overwrite: bool = False,
    ) -> Path:
        """Write a ready XTTS model directory from a checkpoint.

        The folder holds config.json (the base's XTTS config), model.pth (inference format: the base's
        weights with the GPT replaced by the checkpoint's, no optimizer, no "xtts." prefix, no DVAE or mel
        keys), vocab.json, speakers_xtts.pth (when the base has one), reference.wav (the dataset's longest
        clip under 10 s) and export.json (run, checkpoint, step, eval loss). Written to a temp folder and
        renamed, so the TTS picker never sees half a model.

        Args:
            run_id: the run.
            checkpoint: a checkpoint path (or file name) of the run; None = best by eval loss, else latest.
            name: folder name (letters, digits, . _ -); None = "<dataset>-step<step>".
            dest_dir: parent folder; None = workspace/models (where the TTS and Eval pickers look).
            overwrite: replace an existing folder of that name.

        Returns:
            The model directory.

        Raises:
            InputError: no checkpoint, a checkpoint of another run, a bad or taken name.
            MissingWeightsError: the base model files are gone.
        """
        run_dir = self.run_dir(run_id)
        parent = Path(dest_dir) if dest_dir is not None else self.models_dir
        return export_run(
            run_dir,
            checkpoint,
            name,
            parent,
            overwrite=overwrite,
            base_of=self.bases.recorded,
            lock=self.gpu_lock,
        )


# The Finetune tab and scripts import options and run views from here, the engine's one public face.
__all__ = [
    "METRICS_FILE",
    "PRESETS",
    "WORKER_SCRIPT",
    "BaseModel",
    "RankPlan",
    "RunStatus",
    "RunSummary",
    "TrainOptions",
    "TrainingEngine",
    "estimate_vram_gib",
    "launch_command",
    "options_from_dict",
    "preset_options",
    "rank_pids",
    "rank_plan",
    "read_metrics",
    "read_run",
    "select_gpus",
]
