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

No gradio here. The worker module holds the training loop; this module is cheap to import.

Layout: options and presets are in ``engines.training.engine.options``, the run folder's files (run.json under a lock,
metrics, checkpoints, pid check) in ``engines.training.engine.runs`` (the worker shares them), the loop in
``engines.training.engine.worker``. This module is still ~850 lines because ``TrainingEngine`` is one lifecycle
(validate, spawn, stop, kill, resume, status, export) over the same run folder and process handle.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from config import ROOT, Settings
from engines.core import catalog
from engines.core.audio import write_json
from engines.core.catalog import BASE_ID, MODEL_FILES, TINY_ID, TRAINING_ASSETS, TRAINING_FILES
from engines.core.errors import BusyError, InputError, LabError, MissingWeightsError
from engines.core.names import check_name
from engines.core.process import pid_alive
from engines.core.provenance import name_stamp, utc_now
from engines.training.options import (
    CODE_STRIDE,
    PRESETS,
    SAMPLE_RATE,
    RankPlan,
    TrainOptions,
    estimate_vram_gib,
    options_from_dict,
    parse_gpus,
    preset_options,
    rank_plan,
    select_gpus,
)
from engines.training.runs import (
    CHECKPOINT_DIR,
    CRASHED,
    FAILED,
    LOG_FILE,
    METRICS_FILE,
    RESUMABLE,
    RUN_FILE,
    RUNNING,
    STOPPED,
    TRAINED_PREFIX,
    BaseModel,
    RunStatus,
    RunSummary,
    checkpoint_files,
    checkpoint_step,
    clip_seconds,
    file_lock,
    log_tail,
    read_dataset,
    read_index,
    read_metrics,
    read_run,
    update_run,
)

log = logging.getLogger(__name__)
MAX_EPOCHS = 10_000  # more is a typo (10**9 would run for years), not a plan

WORKER_SCRIPT = Path(__file__).resolve().with_name("train_worker.py")  # trainer.distribute runs a script path

# --------------------------------------------------------------------------- launch


def launch_command(
    run_dir: Path,
    device: str,
    gpus: tuple[int, ...] | None,
    environ: dict[str, str],
    python: str = sys.executable,
) -> tuple[list[str], dict[str, str]]:
    """The worker's command line and environment (pure: nothing is started).

    One process (``gpus`` None): ``python -m engines.training.worker <run_dir>``. Several GPUs: coqui's
    ``python -m trainer.distribute --script engines/training/worker.py --gpus "a,b" <run_dir>``, which starts
    ``python3 <script> --continue_path= --restore_path= --group_id=group_<time> --use_ddp=true <run_dir>
    --rank=<r>`` per GPU with RANK=<r> and CUDA_VISIBLE_DEVICES=<the chosen GPUs>.

    Args:
        run_dir: the run folder.
        device: the resolved device ("cpu", "cuda", "cuda:N").
        gpus: None, or two or more GPU indices (see ``select_gpus``) in the app's numbering.
        environ: the environment to start from (the app's).
        python: the interpreter.

    Returns:
        (argv, env).

    Raises:
        LabError: several GPUs but no ``python3`` next to the interpreter (trainer.distribute runs "python3").
    """
    env = dict(environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    if gpus is None:
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""  # the trainer uses CUDA whenever it sees it
        elif device.startswith("cuda:"):
            env["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
        return [python, "-m", "engines.training.worker", str(run_dir)], env
    # The app's indices are positions in its own CUDA_VISIBLE_DEVICES (ids or UUIDs) when that is set;
    # trainer.distribute prefers CUDA_VISIBLE_DEVICES over --gpus, so both name the same devices.
    parent = [d.strip() for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    visible = ",".join(parent[i] if parent else str(i) for i in gpus)
    env["CUDA_VISIBLE_DEVICES"] = visible
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # what coqui's trainer sets in each rank anyway: one numbering
    # trainer.distribute starts each rank as a bare "python3": make that this interpreter (the venv's).
    bin_dir = str(Path(python).parent)
    if not (Path(bin_dir) / "python3").exists():
        raise LabError(f"Multi-GPU training needs a 'python3' next to {python} (trainer.distribute runs 'python3').")
    env["PATH"] = os.pathsep.join([bin_dir, *filter(None, [env.get("PATH")])])
    argv = [python, "-m", "trainer.distribute", "--script", str(WORKER_SCRIPT), "--gpus", visible, str(run_dir)]
    return argv, env


def rank_pids(launcher_pid: int) -> list[int]:
    """The training ranks trainer.distribute started (its direct children), oldest first."""
    import psutil

    try:
        children = psutil.Process(launcher_pid).children()
    except psutil.Error:
        return []
    return [c.pid for c in sorted(children, key=lambda c: c.create_time())]


# --------------------------------------------------------------------------- engine


class TrainingEngine:
    """Start, watch, stop, resume and export XTTS fine-tuning runs (one at a time)."""

    def __init__(
        self, settings: Settings, gpu_lock: threading.RLock | None = None, tiny: Any = None, tts: Any = None
    ) -> None:
        """
        Args:
            settings: app settings (workspace, datasets_dir, device, tiny_models, xtts_cache_dir).
            gpu_lock: the app's GPU lock; training itself runs in another process, so it is held only
                while this process touches weights (export).
            tiny: engines.tiny.TinyModels in tiny mode (built on demand when None).
            tts: the TTS engine, whose search for downloaded XTTS v2 weights is reused (optional).
        """
        self.settings = settings
        self.gpu_lock = gpu_lock or threading.RLock()
        self._tiny = tiny
        self._tts = tts
        self._lock = threading.RLock()
        self._procs: dict[str, subprocess.Popen] = {}  # workers this process started (reaped on poll)

    # ----------------------------------------------------------------- folders and names

    @property
    def runs_dir(self) -> Path:
        return self.settings.workspace_sub("runs")

    @property
    def models_dir(self) -> Path:
        return self.settings.workspace_sub("models")

    @property
    def datasets_dir(self) -> Path:
        return self.settings.path("datasets_dir")

    def run_dir(self, run_id: str) -> Path:
        """The folder of an existing run.

        Raises:
            InputError: bad id or no such run.
        """
        run_id = check_name(run_id, "run")
        folder = self.runs_dir / run_id
        if not (folder / RUN_FILE).is_file():
            raise InputError(f"No training run named {run_id!r} in {self.runs_dir}.")
        return folder

    def list_datasets(self) -> list[str]:
        """Dataset folder names (those with a metadata_train.csv)."""
        root = self.datasets_dir
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "metadata_train.csv").is_file())

    def base_models(self) -> list[tuple[str, str]]:
        """(label, model id) choices for the base: the tiny or XTTS v2 base, then workspace/models/*."""
        choices = [("Tiny XTTS (random weights)", TINY_ID)] if self.settings.tiny_models else []
        choices.append(("XTTS v2 (coqui base)", BASE_ID))
        choices += [(f"{f.name} (continue this voice)", f.name) for f in catalog.model_folders(self.models_dir)]
        return choices

    def default_base(self) -> str:
        return TINY_ID if self.settings.tiny_models else BASE_ID

    def xtts_base_candidates(self) -> list[Path]:
        """Folders that may hold XTTS v2, in search order (the model catalogue's)."""
        return catalog.base_search(self.settings).candidates()

    def xtts_base_dir(self) -> Path:
        """The XTTS v2 folder to fine-tune from: the first candidate with model.pth, else the first candidate."""
        candidates = self.xtts_base_candidates()
        for folder in candidates:
            if (folder / "model.pth").is_file():
                return folder
        return candidates[0]

    def _tiny_dir(self) -> Path:
        if self._tiny is None:
            from engines.tiny import ensure_tiny_models

            self._tiny = ensure_tiny_models(self.settings.workspace_sub("tiny-models"))
        return Path(self._tiny.xtts_dir)

    # ----------------------------------------------------------------- base model

    def resolve_base(self, model_id: str) -> BaseModel:
        """Find the files a fine-tune starts from.

        Args:
            model_id: "xtts_v2", "tiny" (tiny mode only) or a model directory (absolute, or a folder
                name under workspace/models) to continue training a fine-tuned voice.

        Returns:
            The resolved base.

        Raises:
            InputError: unknown id, or "tiny" outside tiny mode.
            MissingWeightsError: files missing, naming the folder and the files.
        """
        model_id = (model_id or "").strip() or self.default_base()
        if model_id == TINY_ID:
            if not self.settings.tiny_models:
                raise InputError("The 'tiny' base exists only in tiny-model mode (--tiny-models).")
            folder = self._tiny_dir()
        elif model_id == BASE_ID:
            folder = self.xtts_base_dir()
            missing = catalog.missing_files(folder, TRAINING_FILES)
            if missing:
                searched = ", ".join(str(c) for c in self.xtts_base_candidates())
                raise MissingWeightsError(
                    f"The XTTS v2 base for fine-tuning is incomplete: {folder} lacks {', '.join(missing)} "
                    f"(searched {searched}). Load XTTS v2 once in the TTS tab (that downloads model.pth, "
                    "config.json, vocab.json and speakers_xtts.pth; coqui skips dvae.pth), then put dvae.pth "
                    "and mel_stats.pth from https://huggingface.co/coqui/XTTS-v2 into that folder."
                )
        else:
            path = Path(model_id).expanduser()
            folder = path if path.is_absolute() else self.models_dir / check_name(model_id, "model")
            if not folder.is_dir():
                raise InputError(f"Base model {model_id!r} not found (looked in {folder}).")
        missing = catalog.missing_files(folder, MODEL_FILES)
        if missing:
            raise MissingWeightsError(
                f"Model folder {folder} lacks {', '.join(missing)}; it cannot be a fine-tuning base."
            )
        assets = self._training_assets(folder, model_id)
        speakers = folder / "speakers_xtts.pth"
        return BaseModel(
            model_id=model_id,
            model_dir=folder,
            checkpoint=folder / "model.pth",
            config=folder / "config.json",
            vocab=folder / "vocab.json",
            dvae=assets["dvae.pth"],
            mel_stats=assets["mel_stats.pth"],
            speakers=speakers if speakers.is_file() else None,
        )

    def _training_assets(self, folder: Path, model_id: str) -> dict[str, Path]:
        """dvae.pth / mel_stats.pth: in the folder, else where its export.json says, else the default base's."""
        candidates = [folder]
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads((folder / "export.json").read_text(encoding="utf-8")).get("training_assets")
            if recorded:
                candidates.append(Path(recorded))
        if model_id not in (TINY_ID, BASE_ID):
            candidates.append(self._tiny_dir() if self.settings.tiny_models else self.xtts_base_dir())
        for candidate in candidates:
            if all((candidate / name).is_file() for name in TRAINING_ASSETS):
                return {name: candidate / name for name in TRAINING_ASSETS}
        raise MissingWeightsError(
            f"Fine-tuning needs {' and '.join(TRAINING_ASSETS)} next to the base model; none found in "
            f"{', '.join(str(c) for c in candidates)}. Get them from https://huggingface.co/coqui/XTTS-v2."
        )

    def recorded_base(self, info: dict[str, Any]) -> BaseModel:
        """The base files a run trained from (run.json keeps absolute paths), re-resolved if they moved.

        Raises:
            MissingWeightsError: the base's files are gone.
        """
        recorded = info.get("base") or {}
        try:
            base = BaseModel(**{k: (Path(v) if v is not None and k != "model_id" else v) for k, v in recorded.items()})
        except TypeError:
            return self.resolve_base(info.get("base_model", ""))
        missing = [p for p in (base.checkpoint, base.config, base.vocab) if not p.is_file()]
        if missing:
            with contextlib.suppress(LabError):
                return self.resolve_base(base.model_id)
            raise MissingWeightsError(f"The base model this run trained from is gone: {', '.join(map(str, missing))}.")
        return base

    # ----------------------------------------------------------------- validation

    def validate(self, options: TrainOptions) -> tuple[Path, BaseModel, dict[str, Any]]:
        """Check options, dataset and base before anything is spawned.

        Returns:
            (dataset folder, resolved base, facts: language, clip counts, GPT limits).

        Raises:
            InputError: a bad value (the message names the allowed range), no dataset, no clips.
            MissingWeightsError: base files missing.
        """
        checks = [
            (1 <= options.epochs <= MAX_EPOCHS, f"epochs must be from 1 to {MAX_EPOCHS}"),
            (options.batch_size >= 1, "batch size must be at least 1"),
            (options.grad_accum >= 1, "gradient accumulation must be at least 1"),
            (0 < options.learning_rate < 1, "learning rate must be between 0 and 1 (XTTS: around 5e-6)"),
            (1.0 <= options.max_audio_seconds, "max audio length must be at least 1 s"),
            (options.save_every >= 1, "save-every must be at least 1 step"),
            (options.eval_every is None or options.eval_every >= 1, "eval-every must be empty (each epoch) or >= 1"),
            (options.keep_checkpoints >= 1, "keep at least 1 checkpoint"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"Invalid training setting: {message}.")
        if not options.dataset:
            raise InputError("Choose a dataset to train on (build one in '1. Dataset').")
        dataset_dir = self.datasets_dir / check_name(options.dataset, "dataset")
        if not dataset_dir.is_dir():
            raise InputError(f"Dataset {options.dataset!r} not found in {self.datasets_dir}.")
        base = self.resolve_base(options.base_model)
        train, evals, language = read_dataset(dataset_dir)
        if not train or not evals:
            raise InputError(
                f"Dataset {options.dataset!r} has no clips to train on (train: {len(train)}, eval: {len(evals)}); "
                "it needs at least one training and one evaluation clip."
            )
        model_args = json.loads(base.config.read_text(encoding="utf-8")).get("model_args", {})
        max_tokens = int(model_args.get("gpt_max_audio_tokens") or 605)
        limit = (max_tokens - 3) * CODE_STRIDE / SAMPLE_RATE
        if options.max_audio_seconds > limit:
            raise InputError(
                f"Max audio length {options.max_audio_seconds:g} s is more than this base model's GPT holds "
                f"({limit:.1f} s); lower it."
            )
        fitting = sum(1 for row in train if clip_seconds(row["audio_file"]) <= options.max_audio_seconds)
        if fitting == 0:
            raise InputError(
                f"All {len(train)} training clips are longer than the max audio length "
                f"({options.max_audio_seconds:g} s): raise it, or re-cut the dataset into shorter clips."
            )
        gpus = self._select_gpus(options)
        facts = {
            "gpus": gpus,
            "language": language,
            "train_clips": len(train),
            "eval_clips": len(evals),
            "train_clips_fitting": fitting,
            "model_args": model_args,
        }
        return dataset_dir, base, facts

    def _select_gpus(self, options: TrainOptions) -> tuple[int, ...] | None:
        """``select_gpus`` against this machine (a count of 1 never touches CUDA)."""
        from engines.core.device import resolve_device

        if parse_gpus(options.gpus) is None:  # one process: nothing to check against the hardware
            return None
        import torch

        device = resolve_device(self.settings.device)
        return select_gpus(options.gpus, torch.cuda.device_count() if torch.cuda.is_available() else 0, device)

    # ----------------------------------------------------------------- lifecycle

    def _status_of(self, run_id: str, info: dict[str, Any]) -> str:
        status = info.get("status", FAILED)
        if status == RUNNING:
            proc = self._procs.get(run_id)
            if proc is not None:
                if proc.poll() is None:  # our own child, not exited: its Popen handle is the authority
                    return RUNNING
                self._procs.pop(run_id, None)  # reaped, so it is not a zombie
            if info.get("pid") is None:  # being spawned right now (pid written a moment later), or never spawned
                age = time.time() - (self.runs_dir / run_id / RUN_FILE).stat().st_mtime
                return RUNNING if age < 60 else CRASHED
            if not pid_alive(info.get("pid")):
                return CRASHED
        return status

    def active_run(self) -> str | None:
        """The id of the run whose worker is alive (also one started by an earlier app session)."""
        if not self.runs_dir.is_dir():
            return None
        for folder in sorted(self.runs_dir.iterdir(), reverse=True):
            if (folder / RUN_FILE).is_file():
                with contextlib.suppress(LabError):
                    if self._status_of(folder.name, read_run(folder)) == RUNNING:
                        return folder.name
        return None

    def _refuse_if_busy(self) -> None:
        running = self.active_run()
        if running:
            raise BusyError(
                f"Training run {running!r} is still running; stop it (or let it finish) first. One run at a time."
            )

    def _new_run_id(self, dataset: str) -> str:
        stamp = name_stamp()
        base = f"{stamp}-{dataset}"[:90]
        run_id, n = base, 2
        while (self.runs_dir / run_id).exists():
            run_id, n = f"{base}-{n}", n + 1
        return run_id

    def _spawn(self, run_id: str, run_dir: Path, device: str, gpus: tuple[int, ...] | None = None) -> int:
        argv, env = launch_command(run_dir, device, gpus, dict(os.environ))
        with open(run_dir / LOG_FILE, "ab") as log_fh:
            proc = subprocess.Popen(
                argv,
                cwd=str(ROOT),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                # Its own process group (the DDP ranks join it): stop() can kill the group; it outlives the app.
                start_new_session=True,
            )
        self._procs[run_id] = proc
        return proc.pid

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
        from engines.core.device import resolve_device

        dataset_dir, base, facts = self.validate(options)
        device = resolve_device(self.settings.device)
        world_size = len(facts["gpus"]) if facts["gpus"] else 1
        with self._lock, file_lock(self.runs_dir / ".start.lock"):
            self._refuse_if_busy()
            run_id = self._new_run_id(options.dataset)
            run_dir = self.runs_dir / run_id
            (run_dir / CHECKPOINT_DIR).mkdir(parents=True)
            info = {
                "id": run_id,
                "status": RUNNING,
                "created": utc_now(),
                "started": utc_now(),
                "ended": None,
                "options": asdict(options),
                "dataset": options.dataset,
                "dataset_dir": str(dataset_dir),
                "language": facts["language"],
                "train_clips": facts["train_clips"],
                "eval_clips": facts["eval_clips"],
                "base_model": base.model_id,
                "base": {k: (str(v) if v is not None else None) for k, v in asdict(base).items()},
                "device": device,
                "gpus": list(facts["gpus"]) if facts["gpus"] else None,
                "world_size": world_size,
                "global_batch": rank_plan(options, world_size, 0).global_batch,
                "pid": None,
                "error": None,
                "total_steps": None,
                "steps_per_epoch": None,
                "elapsed_s": 0.0,
                "sessions": 0,
                "resumes": [],
            }
            write_json(run_dir / RUN_FILE, info)
            pid = self._spawn(run_id, run_dir, device, facts["gpus"])
            update_run(run_dir, pid=pid)
        log.info("Started training run %s (pid %s, %s, GPUs %s)", run_id, pid, device, facts["gpus"] or "-")
        return run_id

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
        run_dir = self.run_dir(run_id)
        info = read_run(run_dir)
        if self._status_of(run_id, info) != RUNNING:
            raise InputError(f"Run {run_id!r} is not running (status: {self._status_of(run_id, info)}).")
        pid = int(info["pid"])
        # SIGTERM to the worker alone: it finishes its step, saves and exits, and its data-loader
        # processes exit with it (signalling them too would break the step it is finishing). Under DDP
        # the pid is trainer.distribute's, which has no handler: signal its ranks instead (they agree on
        # the step to stop at); before they exist, the group.
        targets = rank_pids(pid) if int(info.get("world_size") or 1) > 1 else [pid]
        for target in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(target, signal.SIGTERM)
        if not targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        if not self._wait_exit(run_id, pid, timeout):
            log.warning("Run %s did not stop within %.0f s; killing it", run_id, timeout)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            self._wait_exit(run_id, pid, 10.0)
        with file_lock(run_dir / ".run.lock"):
            current = read_run(run_dir)
        if current.get("status") == RUNNING:  # killed before it could say so itself
            update_run(run_dir, status=STOPPED, ended=utc_now())
        return self.status(run_id)

    def _wait_exit(self, run_id: str, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        proc = self._procs.get(run_id)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self._procs.pop(run_id, None)
                return True
            if proc is None and not pid_alive(pid):
                return True
            time.sleep(0.2)
        return False

    def resume(self, run_id: str) -> RunStatus:
        """Continue a stopped, crashed or failed run from its last complete checkpoint.

        The worker loads the newest checkpoint that loads (falling back to an older one), restores the
        optimizer, scheduler and step count, skips the batches of the interrupted epoch already done,
        and appends to metrics.jsonl (the global step continues). Without any checkpoint it starts over.

        Raises:
            InputError: the run finished (start a new run from its export to train more) or is running.
            BusyError: another run is running.
        """
        run_dir = self.run_dir(run_id)
        with self._lock, file_lock(self.runs_dir / ".start.lock"):
            info = read_run(run_dir)
            status = self._status_of(run_id, info)
            if status == RUNNING:
                raise InputError(f"Run {run_id!r} is already running.")
            if status not in RESUMABLE:
                raise InputError(
                    f"Run {run_id!r} has {status}; only a stopped, crashed or failed run can resume. "
                    "To train a finished voice further, export it and start a new run from it."
                )
            self._refuse_if_busy()
            options = options_from_dict(info["options"])
            facts = self.validate(options)[2]  # dataset and base must still be there (and the GPUs)
            files = checkpoint_files(run_dir)
            resumes = [
                *info.get("resumes", []),
                {"time": utc_now(), "after": status, "checkpoint": files[-1].name if files else None},
            ]
            update_run(run_dir, status=RUNNING, error=None, ended=None, pid=None, resumes=resumes)
            pid = self._spawn(run_id, run_dir, info.get("device", "cpu"), facts["gpus"])
            update_run(run_dir, pid=pid)
        log.info("Resumed training run %s (pid %s)", run_id, pid)
        return self.status(run_id)

    # ----------------------------------------------------------------- reading runs

    def status(self, run_id: str, log_lines: int = 40) -> RunStatus:
        """The live view of one run (cheap: reads run.json, metrics.jsonl and the log's end).

        Raises:
            InputError: no such run.
        """
        run_dir = self.run_dir(run_id)
        info = read_run(run_dir)
        status = self._status_of(run_id, info)
        rows = read_metrics(run_dir)
        train = [r for r in rows if r.get("kind") == "train"]
        evals = [r for r in rows if r.get("kind") == "eval"]
        last = train[-1] if train else {}
        options = info.get("options", {})
        total = info.get("total_steps")
        step = int(last.get("step", 0))
        eta = None
        if status == RUNNING and total and len(train) >= 2:
            # Wall time between recent steps (includes data loading and evaluations), this session only.
            session = [r for r in train if r.get("session") == last.get("session")][-30:]
            gaps = [b["time"] - a["time"] for a, b in zip(session, session[1:]) if b["step"] > a["step"]]
            if gaps:
                eta = max(0.0, (total - step) * (sum(gaps) / len(gaps)))
        elapsed = float(info.get("elapsed_s") or 0.0)
        if status == RUNNING and info.get("session_started"):
            elapsed += max(0.0, time.time() - float(info["session_started"]))
        gpu = [r["gpu_mem_gib"] for r in train if r.get("gpu_mem_gib") is not None]
        eval_losses = [r["loss"] for r in evals if r.get("loss") is not None]
        return RunStatus(
            run_id=run_id,
            status=status,
            dataset=info.get("dataset", ""),
            base_model=info.get("base_model", ""),
            device=info.get("device", ""),
            epoch=int(last.get("epoch", 0)),
            epochs=int(options.get("epochs", 0)),
            step=step,
            total_steps=total,
            eta_seconds=eta,
            train_loss=last.get("loss"),
            eval_loss=evals[-1].get("loss") if evals else None,
            best_eval_loss=min(eval_losses) if eval_losses else None,
            lr=last.get("lr"),
            gpu_memory_gib=max(gpu) if gpu else None,
            log_tail=log_tail(run_dir, log_lines),
            error=info.get("error") if status in (FAILED, CRASHED) else None,
            checkpoints=len(checkpoint_files(run_dir)),
            elapsed_seconds=round(elapsed, 1),
            resumable=status in RESUMABLE,
        )

    def list_runs(self) -> list[RunSummary]:
        """All runs, newest first."""
        out = []
        if not self.runs_dir.is_dir():
            return out
        for folder in sorted(self.runs_dir.iterdir(), reverse=True):
            if not (folder / RUN_FILE).is_file():
                continue
            try:
                info = read_run(folder)
                st = self.status(folder.name, log_lines=0)
            except LabError:
                continue
            o = info.get("options", {})
            settings = (
                f"{info.get('base_model', '?')}, {o.get('epochs')} ep, batch {o.get('batch_size')}"
                f"x{o.get('grad_accum')}, lr {o.get('learning_rate'):g}"
            )
            if int(info.get("world_size") or 1) > 1:
                settings += f", {info['world_size']} GPUs"
            out.append(
                RunSummary(
                    run_id=folder.name,
                    status=st.status,
                    dataset=st.dataset,
                    settings=settings,
                    best_eval_loss=st.best_eval_loss,
                    duration_seconds=st.elapsed_seconds,
                    created=info.get("created", ""),
                    step=st.step,
                )
            )
        return out

    def latest_run(self) -> str | None:
        """The running run, else the newest one (what the page shows on load)."""
        running = self.active_run()
        if running:
            return running
        runs = self.list_runs()
        return runs[0].run_id if runs else None

    def metrics(self, run_id: str):
        """Metrics as a pandas DataFrame (columns: kind, session, epoch, step, loss, loss_text_ce,
        loss_mel_ce, lr, time, step_time, gpu_mem_gib), one row per (kind, step): steps replayed after a
        crash replace the lost ones."""
        import pandas as pd

        columns = [
            "kind",
            "session",
            "epoch",
            "step",
            "loss",
            "loss_text_ce",
            "loss_mel_ce",
            "lr",
            "time",
            "step_time",
            "gpu_mem_gib",
        ]
        rows = [r for r in read_metrics(self.run_dir(run_id)) if r.get("kind") in ("train", "eval")]
        frame = pd.DataFrame(rows, columns=columns)
        if frame.empty:
            return frame
        return (
            frame.drop_duplicates(subset=["kind", "step"], keep="last")
            .sort_values(["step", "kind"])
            .reset_index(drop=True)
        )

    def checkpoints(self, run_id: str) -> list[Path]:
        """The run's complete checkpoints, oldest first."""
        return checkpoint_files(self.run_dir(run_id))

    def checkpoint_info(self, run_id: str) -> list[dict[str, Any]]:
        """Per checkpoint: path, step, epoch, kind, train_loss, eval_loss (from checkpoints/index.json)."""
        run_dir = self.run_dir(run_id)
        index = read_index(run_dir)
        return [
            {"path": p, "step": checkpoint_step(p), **{k: v for k, v in index.get(p.name, {}).items() if k != "step"}}
            for p in checkpoint_files(run_dir)
        ]

    def best_checkpoint(self, run_id: str) -> Path | None:
        """The checkpoint with the lowest evaluation loss, else the newest one."""
        infos = self.checkpoint_info(run_id)
        scored = [i for i in infos if i.get("eval_loss") is not None]
        if scored:
            return min(scored, key=lambda i: (i["eval_loss"], -i["step"]))["path"]
        return infos[-1]["path"] if infos else None

    def in_use(self, dataset: str) -> bool:
        """True while a running run trains on ``dataset`` (the dataset page refuses to delete it then)."""
        running = self.active_run()
        return bool(running) and read_run(self.runs_dir / running).get("dataset") == dataset

    def delete_run(self, run_id: str) -> None:
        """Delete a run folder (checkpoints included).

        Raises:
            BusyError: the run is running.
        """
        run_dir = self.run_dir(run_id)
        if self._status_of(run_id, read_run(run_dir)) == RUNNING:
            raise BusyError(f"Run {run_id!r} is running; stop it before deleting it.")
        shutil.rmtree(run_dir)
        self._procs.pop(run_id, None)

    def suggest_batch_size(self, device: str | None = None, options: TrainOptions | None = None) -> int | None:
        """A batch size that should fit in free GPU memory (see ``estimate_vram_gib``); None on CPU.

        Args:
            device: torch device; default from settings.
            options: for the base model's GPT shape and the max audio length (defaults: XTTS v2, 11 s).
        """
        from engines.core.device import gpu_memory, resolve_device

        device = device or resolve_device(self.settings.device)
        memory = gpu_memory(device)
        if memory is None:
            return None
        options = options or TrainOptions(base_model=self.default_base())
        shape = {"gpt_params": 441.0e6, "layers": 30, "width": 1024, "heads": 16}
        with contextlib.suppress(LabError, OSError, ValueError):
            args = json.loads(self.resolve_base(options.base_model).config.read_text()).get("model_args", {})
            layers, width = int(args["gpt_layers"]), int(args["gpt_n_model_channels"])
            shape = {
                "gpt_params": 12 * layers * width**2 * 1.17,
                "layers": layers,
                "width": width,
                "heads": int(args["gpt_n_heads"]),
            }
        one = estimate_vram_gib(1, options.max_audio_seconds, **shape)
        two = estimate_vram_gib(2, options.max_audio_seconds, **shape)
        per_clip, fixed = two - one, one - (two - one)
        usable = memory["free_gib"] * 0.9  # leave room for fragmentation
        return int(max(1, min(32, (usable - fixed) // max(per_clip, 1e-3))))

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
        import torch

        run_dir = self.run_dir(run_id)
        info = read_run(run_dir)
        if checkpoint is None:
            ckpt = self.best_checkpoint(run_id)
            if ckpt is None:
                raise InputError(f"Run {run_id!r} has no checkpoint yet; train at least one epoch or save-every steps.")
        else:
            ckpt = Path(checkpoint)
            ckpt = ckpt if ckpt.is_absolute() else run_dir / CHECKPOINT_DIR / ckpt.name
            if ckpt.resolve().parent != (run_dir / CHECKPOINT_DIR).resolve() or not ckpt.is_file():
                raise InputError(f"{ckpt.name} is not a checkpoint of run {run_id!r}.")
        step = checkpoint_step(ckpt)
        name = check_name(name or f"{info.get('dataset', 'voice')}-step{step}", "model")
        parent = Path(dest_dir) if dest_dir is not None else self.models_dir
        parent.mkdir(parents=True, exist_ok=True)
        target = parent / name
        if target.exists() and not overwrite:
            raise InputError(f"A model named {name!r} already exists in {parent}; pick another name.")
        base = self.recorded_base(info)

        with self.gpu_lock:  # not GPU work, but it holds a whole model in RAM: one at a time
            state = _inference_state(base.checkpoint)
            ckpt_state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
            trained = {k[len("xtts.") :]: v for k, v in ckpt_state["model"].items() if k.startswith(TRAINED_PREFIX)}
            wrong = [k for k, v in trained.items() if k not in state or state[k].shape != v.shape]
            if not trained or wrong:
                raise LabError(
                    f"{ckpt.name} does not fit base {base.model_id!r} "
                    f"({len(wrong)} mismatched GPT weights); was the base model replaced?"
                )
            state.update(trained)
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
            try:
                torch.save({"model": state}, tmp / "model.pth")
                del state, ckpt_state, trained
                shutil.copy2(base.config, tmp / "config.json")
                shutil.copy2(base.vocab, tmp / "vocab.json")
                if base.speakers is not None:
                    shutil.copy2(base.speakers, tmp / "speakers_xtts.pth")
                reference = self._reference_clip(Path(info["dataset_dir"]))
                if reference is not None:
                    shutil.copy2(reference, tmp / "reference.wav")
                entry = read_index(run_dir).get(ckpt.name, {})
                write_json(
                    tmp / "export.json",
                    {
                        "run": run_id,
                        "checkpoint": ckpt.name,
                        "step": step,
                        "epoch": entry.get("epoch"),
                        "eval_loss": entry.get("eval_loss"),
                        "train_loss": entry.get("train_loss"),
                        "dataset": info.get("dataset"),
                        "language": info.get("language"),
                        "base_model": base.model_id,
                        "training_assets": str(base.dvae.parent),
                        "reference": reference.name if reference else None,
                        "exported": utc_now(),
                    },
                )
                if target.exists():
                    shutil.rmtree(target)
                os.replace(tmp, target)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        log.info("Exported %s (%s) to %s", run_id, ckpt.name, target)
        return target

    @staticmethod
    def _reference_clip(dataset_dir: Path, max_seconds: float = 10.0) -> Path | None:
        """The dataset's longest clip under ``max_seconds`` (a good cloning reference)."""
        with contextlib.suppress(LabError):
            train, evals, _ = read_dataset(dataset_dir)
            timed = [(clip_seconds(r["audio_file"]), r["audio_file"]) for r in train + evals]
            fitting = [t for t in timed if 0 < t[0] <= max_seconds]
            if fitting:
                return Path(max(fitting)[1])
        return None


def _inference_state(model_path: Path) -> dict[str, Any]:
    """A model.pth as XTTS inference weights, via coqui's own conversion (strips the Trainer's "xtts."
    prefix, drops DVAE and mel-spectrogram keys, upgrades legacy checkpoints)."""
    from TTS.tts.models.xtts import Xtts

    # get_compatible_checkpoint_state_dict reads no model state: no need to build a 450 M-parameter model.
    return Xtts.get_compatible_checkpoint_state_dict(object.__new__(Xtts), model_path)


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
