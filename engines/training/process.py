"""The training worker as a managed process: its launch command, spawn, status, stop, kill and resume.

A run's worker runs in its own session (so it outlives the app and can be killed as a group); run.json
keeps its pid, so a later app session still knows whether it lives. One run at a time: ``start`` and
``resume`` refuse while another worker is alive, under a file lock (two app processes cannot race).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from config import ROOT, Settings
from engines.core.audio import write_json
from engines.core.errors import BusyError, InputError, LabError
from engines.core.process import pid_alive
from engines.core.provenance import name_stamp, utc_now
from engines.training.options import TrainOptions, options_from_dict, rank_plan
from engines.training.runs import (
    CHECKPOINT_DIR,
    CRASHED,
    FAILED,
    LOG_FILE,
    RESUMABLE,
    RUN_FILE,
    RUNNING,
    STOPPED,
    BaseModel,
    checkpoint_files,
    file_lock,
    find_run,
    read_dataset,
    read_run,
    update_run,
)
from engines.training.vocabulary import prepare_base

log = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).resolve().with_name("worker.py")  # trainer.distribute runs a script path

# Checks a run's options, dataset and base before a worker is spawned: (dataset folder, base, facts).
Validator = Callable[[TrainOptions], tuple[Path, BaseModel, dict[str, Any]]]


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


class RunProcesses:
    """The workers of the runs in workspace/runs: spawn, watch, stop, resume (one run at a time)."""

    def __init__(self, settings: Settings, validate: Validator) -> None:
        """
        Args:
            settings: app settings (workspace, device).
            validate: checks a run before its worker is spawned (on start and on resume).
        """
        self.settings = settings
        self._validate = validate
        self._lock = threading.RLock()
        self.children: dict[str, subprocess.Popen[bytes]] = {}  # workers this process started (reaped on poll)

    @property
    def runs_dir(self) -> Path:
        return self.settings.workspace_sub("runs")

    def run_dir(self, run_id: str) -> Path:
        """The folder of an existing run.

        Raises:
            InputError: bad id or no such run.
        """
        return find_run(self.runs_dir, run_id)

    # ----------------------------------------------------------------- watching

    def status_of(self, run_id: str, info: dict[str, Any]) -> str:
        """A run's status: run.json's, except that a "running" run whose worker is gone has crashed."""
        status: str = info.get("status", FAILED)
        if status == RUNNING:
            proc = self.children.get(run_id)
            if proc is not None:
                if proc.poll() is None:  # our own child, not exited: its Popen handle is the authority
                    return RUNNING
                self.children.pop(run_id, None)  # reaped, so it is not a zombie
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
                    if self.status_of(folder.name, read_run(folder)) == RUNNING:
                        return folder.name
        return None

    def in_use(self, dataset: str) -> bool:
        """True while a running run trains on ``dataset``."""
        running = self.active_run()
        if not running:
            return False
        return bool(read_run(self.runs_dir / running).get("dataset") == dataset)

    def refuse_if_busy(self) -> None:
        """Raises BusyError while a run is running (one run at a time)."""
        running = self.active_run()
        if running:
            raise BusyError(
                f"Training run {running!r} is still running; stop it (or let it finish) first. One run at a time."
            )

    # ----------------------------------------------------------------- starting

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
        self.children[run_id] = proc
        return proc.pid

    def start(self, options: TrainOptions) -> str:
        """Validate, create the run folder and spawn the training worker (see ``TrainingEngine.start``)."""
        from engines.core.device import resolve_device

        dataset_dir, base, facts = self._validate(options)
        device = resolve_device(self.settings.device)
        world_size = len(facts["gpus"]) if facts["gpus"] else 1
        with self._lock, file_lock(self.runs_dir / ".start.lock"):
            self.refuse_if_busy()
            run_id = self._new_run_id(options.dataset)
            run_dir = self.runs_dir / run_id
            (run_dir / CHECKPOINT_DIR).mkdir(parents=True)
            try:  # a language the base's vocabulary lacks: the run trains from an extended copy of the base
                train, evals, _ = read_dataset(dataset_dir)
                texts = [row["text"] for row in (*train, *evals)]
                base, vocabulary = prepare_base(run_dir, base, texts, facts["language"])
            except BaseException:
                shutil.rmtree(run_dir, ignore_errors=True)
                raise
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
                "vocabulary": vocabulary,  # coverage of the dataset's text, and the extension when one was made
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

    def resume(self, run_id: str) -> None:
        """Respawn the worker of a stopped, crashed or failed run (see ``TrainingEngine.resume``)."""
        run_dir = self.run_dir(run_id)
        with self._lock, file_lock(self.runs_dir / ".start.lock"):
            info = read_run(run_dir)
            status = self.status_of(run_id, info)
            if status == RUNNING:
                raise InputError(f"Run {run_id!r} is already running.")
            if status not in RESUMABLE:
                raise InputError(
                    f"Run {run_id!r} has {status}; only a stopped, crashed or failed run can resume. "
                    "To train a finished voice further, export it and start a new run from it."
                )
            self.refuse_if_busy()
            options = options_from_dict(info["options"])
            facts = self._validate(options)[2]  # dataset and base must still be there (and the GPUs)
            files = checkpoint_files(run_dir)
            resumes = [
                *info.get("resumes", []),
                {"time": utc_now(), "after": status, "checkpoint": files[-1].name if files else None},
            ]
            update_run(run_dir, status=RUNNING, error=None, ended=None, pid=None, resumes=resumes)
            pid = self._spawn(run_id, run_dir, info.get("device", "cpu"), facts["gpus"])
            update_run(run_dir, pid=pid)
        log.info("Resumed training run %s (pid %s)", run_id, pid)

    # ----------------------------------------------------------------- ending

    def stop(self, run_id: str, timeout: float = 120.0) -> None:
        """SIGTERM the worker (it saves a checkpoint and exits); after ``timeout`` SIGKILL its process group
        (see ``TrainingEngine.stop``).

        Raises:
            InputError: the run is not running.
        """
        run_dir = self.run_dir(run_id)
        info = read_run(run_dir)
        if self.status_of(run_id, info) != RUNNING:
            raise InputError(f"Run {run_id!r} is not running (status: {self.status_of(run_id, info)}).")
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

    def _wait_exit(self, run_id: str, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        proc = self.children.get(run_id)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self.children.pop(run_id, None)
                return True
            if proc is None and not pid_alive(pid):
                return True
            time.sleep(0.2)
        return False

    def delete(self, run_id: str) -> None:
        """Delete a run folder (checkpoints included).

        Raises:
            BusyError: the run is running.
        """
        run_dir = self.run_dir(run_id)
        if self.status_of(run_id, read_run(run_dir)) == RUNNING:
            raise BusyError(f"Run {run_id!r} is running; stop it before deleting it.")
        shutil.rmtree(run_dir)
        self.children.pop(run_id, None)
