"""An evaluation sharded over a Ray cluster: one worker (a Ray actor) per GPU loads its TTS, ASR and SIM/MOS
models once and runs work units; the driver (the app's EvalRun) commits their rows into the same results.csv,
summary.json and report.html as a local run.

Units are the sequential loop's batches (``EvalRun.work_units``: ground truth first, then system by system, so
checkpoint-major when ranking checkpoints), so every executor decodes the same batches and gives the same rows.
A worker writes each finished unit to ``shards/<hash of its keys>.json`` before returning it: a unit is
idempotent (a retried unit whose file exists is read back, not redone), a killed worker is restarted by Ray and
its unit retried, and a resumed driver commits the shard files first and skips what they hold.

Workers read and write the run folder directly, so every node needs the workspace at the same path (one machine,
or a shared filesystem) and the project importable (``PYTHONPATH`` is set to this checkout for local workers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config import ROOT, Settings
from engines.core.audio import write_json
from engines.core.errors import LabError

if TYPE_CHECKING:
    from engines.eval.runner import EvalRun, WorkUnit
    from engines.eval.store import RunProgress

log = logging.getLogger(__name__)

SHARDS_DIR = "shards"
POLL_SECONDS = 0.5  # how often the driver looks at the stop event while units are in flight


def shard_path(folder: Path, keys: list[str]) -> Path:
    """Where a unit's rows are kept: named by its keys, so the same unit always has the same file."""
    digest = hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()[:20]
    return folder / SHARDS_DIR / f"{digest}.json"


def read_shard(path: Path, keys: list[str] | None = None) -> list[dict[str, Any]] | None:
    """A shard file's rows (None when it is missing, unreadable or holds other keys)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if keys is not None and data.get("keys") != keys:
        return None
    return list(data.get("rows") or [])


def shard_rows(folder: Path) -> list[dict[str, Any]]:
    """Every row the run's shard files hold (units finished by workers, committed or not)."""
    rows: list[dict[str, Any]] = []
    for path in sorted((folder / SHARDS_DIR).glob("*.json")):
        rows.extend(read_shard(path) or [])
    return rows


def connect(settings: Settings) -> Any:
    """Ray, connected: the cluster this process already joined (tests, notebooks), else ``settings.ray_address``
    ("" starts a local Ray on this machine; "auto" joins one started with ``ray start``; ``ray://host:10001``).

    Raises:
        LabError: Ray is not installed, or the cluster cannot be reached.
    """
    try:
        import ray
    except ImportError as exc:
        raise LabError("Ray is not installed: pip install -r requirements.lock (it lists ray).") from exc
    if ray.is_initialized():
        return ray
    address = (getattr(settings, "ray_address", "") or "").strip() or None
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    try:
        ray.init(address=address, runtime_env={"env_vars": env}, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise LabError(f"Could not reach the Ray cluster at {address or 'a new local Ray'}: {exc}") from exc
    return ray


class EvalWorker:
    """What runs in each Ray actor: the app's engines (models load on first use, once) and the run, reopened
    from its folder."""

    def __init__(self, settings: Settings, run_id: str, threads: int | None = None) -> None:
        from engines import Engines

        if threads:  # the driver's CPU thread count (see run_on_ray)
            import torch

            torch.set_num_threads(threads)
        self.engines = Engines.create(settings)
        self.run_id = run_id
        self._run: EvalRun | None = None

    def _opened(self) -> EvalRun:
        if self._run is None:
            from engines.core.progress import log_info, no_progress
            from engines.eval.config import EvalConfig
            from engines.eval.runner import EvalRun

            ev = self.engines.eval
            meta = ev.store.meta(self.run_id)
            config = EvalConfig.from_dict(meta["config"], self.engines.settings.generation)
            self._run = EvalRun.resume(
                ev.store,
                ev.planner,
                config,
                self.run_id,
                settings=self.engines.settings,
                tts=ev.tts,
                asr=ev.asr,
                sim=ev.sim,
                mos=ev.mos,
                stop=threading.Event(),
                progress=no_progress,
                log_fn=log_info,
            )
        return self._run

    def run_unit(self, unit: dict[str, Any]) -> list[dict[str, Any]]:
        """Run one unit (a ``WorkUnit`` as a dict), or read it back when an earlier try finished it."""
        from engines.eval.runner import WorkUnit

        work = WorkUnit(unit["index"], unit["system"], tuple((sid, int(rep)) for sid, rep in unit["items"]))
        run = self._opened()
        path = shard_path(run.folder, work.keys)
        rows = read_shard(path, work.keys)
        if rows is None:
            rows = run.run_unit(work)
            write_json(path, {"keys": work.keys, "rows": rows})
        return rows

    def pid(self) -> int:
        return os.getpid()


def actor_name(run_id: str, index: int) -> str:
    return f"xtts-lab-eval-{run_id}-{index}"


def worker_count(ray: Any, requested: int | None) -> tuple[int, float]:
    """How many workers, and the GPUs each asks for: one per GPU of the cluster, else one per 2 CPUs."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return (requested or gpus), 1.0
    return (requested or max(1, int(resources.get("CPU", 1)) // 2)), 0.0


def run_on_ray(run: EvalRun, units: list[WorkUnit]) -> Iterator[RunProgress]:
    """Run the units on Ray workers, committing rows as units finish (in any order; results.csv is sorted by
    the summary, not by arrival). Stop: no new unit starts, those in flight finish and are kept."""
    ray = connect(run.settings)
    earlier = [r for r in shard_rows(run.folder) if r["key"] not in run.done_keys]
    if earlier:  # units a worker finished before the driver went away
        run._commit(earlier)
        run.log_fn(f"{len(earlier)} utterance(s) recovered from finished shards.")
        units = run.work_units()
    if not units:
        return
    n, gpus = worker_count(ray, run.config.workers)
    n = min(n, len(units))
    import torch

    # Ray gives an actor OMP_NUM_THREADS = its num_cpus (1). CPU kernels sum in a thread-count dependent order
    # (tiny XTTS: 6 samples 1 LSB apart at 1 vs 2 threads), so workers use the driver's count: a Ray run's
    # results.csv equals a local one's (at the price of oversubscribed cores when several share a machine).
    threads = torch.get_num_threads()
    env = {"env_vars": {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}}
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=-1, max_task_retries=-1)(EvalWorker)
    actors = [
        remote.options(name=actor_name(run.run_id, i), runtime_env=env).remote(
            run.settings, run.run_id, threads
        )  # named: reachable by id
        for i in range(n)
    ]
    run.log_fn(f"Ray: {n} worker(s){' with 1 GPU each' if gpus else ''} for {len(units)} unit(s).")
    queue = list(units)
    in_flight: dict[Any, tuple[Any, WorkUnit]] = {}
    idle = list(actors)
    try:
        while queue or in_flight:
            while idle and queue and not run.stop_event.is_set():
                actor, unit = idle.pop(), queue.pop(0)
                in_flight[actor.run_unit.remote(asdict(unit))] = (actor, unit)
            if not in_flight:
                break  # stopped with nothing running
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                actor, unit = in_flight.pop(ref)
                idle.append(actor)
                run._commit([r for r in ray.get(ref) if r["key"] not in run.done_keys])
                run._tick(f"{unit.system}: {run.done}/{run.total}")
                yield run._status("running", f"{unit.system} {run.done}/{run.total} (Ray, {n} workers)")
    finally:
        for actor in actors:
            ray.kill(actor)
