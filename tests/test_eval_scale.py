"""The eval loop run three ways — sequential, pipelined (synthesis overlapping scoring) and sharded over Ray
workers — gives the same results.csv, and a killed Ray worker or driver loses no row.

Ray runs as a local cluster on this machine with two *logical* GPUs (``num_gpus=2``), so the scheduling of
one worker per GPU is exercised without CUDA (the workers' models run on the CPU).
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from test_eval_quality import LONGER

from config import ROOT
from engines.eval import EvalConfig, read_results
from engines.eval.distributed import SHARDS_DIR, actor_name, worker_count
from tests.eval_helpers import tiny_engines

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            num_gpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def eng(tmp_path_factory, tiny_models):
    return tiny_engines(tmp_path_factory.mktemp("eval-scale"), tiny_models)


def _config(**kw) -> EvalConfig:
    base = {
        "sentences": "builtin:en",
        "max_sentences": 4,
        "models": ("tiny",),
        "voices": ("speaker:Tiny Alice", "speaker:Tiny Bob"),
        "seed": 5,
        "asr_batch_size": 2,  # 2 systems x 4 sentences = 4 units of 2
        "sim_encoder": "xtts",  # tiny-model noise has no speech for an independent verifier's VAD
        "mos": ("dnsmos",),
        **LONGER,
    }
    return EvalConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def local_run(eng):
    return eng.eval.run(_config(), run_id="seq")


def _results(folder) -> bytes:
    return (folder / "results.csv").read_bytes()


def test_pipelined_run_equals_the_sequential_one(eng, local_run):
    final = eng.eval.run(_config(pipeline=True), run_id="pipe")
    assert final.state == "done"
    assert _results(final.folder) == _results(local_run.folder)


def test_ray_schedules_one_worker_per_logical_gpu(ray_cluster):
    assert worker_count(ray_cluster, None) == (2, 1.0)
    assert worker_count(ray_cluster, 1) == (1, 1.0)


def test_ray_run_equals_the_sequential_one(eng, local_run, ray_cluster):
    logs: list[str] = []
    final = eng.eval.run(_config(executor="ray"), run_id="ray", log_fn=logs.append)
    assert final.state == "done"
    assert _results(final.folder) == _results(local_run.folder)
    assert any("Ray: 2 worker(s) with 1 GPU each" in line for line in logs), logs
    assert len(list((final.folder / SHARDS_DIR).glob("*.json"))) == 4  # 2 systems x 4 sentences in units of 2
    summary = json.loads((final.folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["n_rows"] == 8 and summary["state"] == "done"


def test_a_killed_worker_loses_no_row(eng, local_run, ray_cluster):
    job = eng.eval.start(_config(executor="ray"), run_id="ray-kill")
    folder = eng.eval.run_dir("ray-kill")
    deadline = time.monotonic() + 300
    pid = None
    while time.monotonic() < deadline and pid is None:  # a worker is up and working: kill it mid-unit
        try:
            actor = ray_cluster.get_actor(actor_name("ray-kill", 0))
            pid = ray_cluster.get(actor.pid.remote(), timeout=60)
        except ValueError:
            time.sleep(0.2)
    assert pid is not None, "no Ray worker came up"
    os.kill(pid, signal.SIGKILL)
    final = job.wait(timeout=600)
    assert final.state == "done"
    assert _results(folder) == _results(local_run.folder)


def test_a_resumed_driver_keeps_finished_shards(eng, local_run, ray_cluster):
    steps = eng.eval.iter_run(_config(executor="ray"), run_id="ray-resume")
    for update in steps:
        if update.done >= 2:  # one unit committed: the driver goes away (the caller stops reading)
            break
    steps.close()
    folder = eng.eval.run_dir("ray-resume")
    shards = {p: p.stat().st_mtime_ns for p in (folder / SHARDS_DIR).glob("*.json")}
    assert shards, "no shard was written"
    final = eng.eval.resume("ray-resume")
    assert final.state == "done"
    assert {p: p.stat().st_mtime_ns for p in shards} == shards  # read back, not redone
    assert _results(folder) == _results(local_run.folder)
    assert len(read_results(folder / "results.csv")) == 8
