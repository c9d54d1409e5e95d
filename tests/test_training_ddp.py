"""Multi-GPU fine-tuning (DDP through coqui's trainer.distribute), to the point of the launch and the per-rank
plan: this machine has no CUDA, so no rank trains here. The launch test runs the real trainer.distribute with
the worker's --plan mode, which parses each rank's real argv and environment and writes nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from config import ROOT
from engines.core.errors import InputError
from engines.training.engine import WORKER_SCRIPT, launch_command
from engines.training.options import TrainOptions, parse_gpus, rank_plan, select_gpus
from engines.training.worker import parse_worker_args, writes_run_files


def test_one_gpu_is_the_single_process_launch(tmp_path):
    environ = {"PATH": "/usr/bin", "PYTHONPATH": "/x"}
    for value in ("1", 1, "", " 1 ", None):
        assert select_gpus(value, visible=0, device="cpu") is None  # never touches CUDA
    argv, env = launch_command(tmp_path, "cpu", None, environ, python="/venv/bin/python")
    assert argv == ["/venv/bin/python", "-m", "engines.training.worker", str(tmp_path)]
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["PYTHONPATH"] == os.pathsep.join([str(ROOT), "/x"])
    assert env["PATH"] == "/usr/bin" and "CUDA_DEVICE_ORDER" not in env
    _, env = launch_command(tmp_path, "cuda:1", None, environ, python="/venv/bin/python")
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    _, env = launch_command(tmp_path, "cuda", None, {"CUDA_VISIBLE_DEVICES": "3"})
    assert env["CUDA_VISIBLE_DEVICES"] == "3"  # left as the app has it


def test_several_gpus_build_the_distribute_launch(tmp_path):
    python = sys.executable  # a venv interpreter with python3 beside it
    bin_dir = str(Path(python).parent)
    argv, env = launch_command(tmp_path, "cuda", (0, 1), {"PATH": "/usr/bin"}, python=python)
    assert argv == [
        python, "-m", "trainer.distribute", "--script", str(WORKER_SCRIPT), "--gpus", "0,1", str(tmp_path),
    ]  # fmt: skip
    assert WORKER_SCRIPT == ROOT / "engines" / "training" / "worker.py" and WORKER_SCRIPT.is_file()
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env["PATH"] == os.pathsep.join([bin_dir, "/usr/bin"])  # distribute runs a bare "python3"
    # The app's indices are positions in its own CUDA_VISIBLE_DEVICES (which distribute prefers to --gpus).
    argv, env = launch_command(tmp_path, "cuda", (0, 2), {"CUDA_VISIBLE_DEVICES": "4, 5,GPU-abc"}, python=python)
    assert argv[argv.index("--gpus") + 1] == "4,GPU-abc" == env["CUDA_VISIBLE_DEVICES"]
    assert parse_gpus("2") == (0, 1) and parse_gpus("0,1") == (0, 1) and parse_gpus(" 3, 1 ") == (3, 1)


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "GPUs must be 1, a count"),
        ("-1", "GPUs must be 1, a count"),
        ("two", "GPUs must be 1, a count"),
        ("0,", "cuda:N"),
        ("0;1", "GPUs must be 1, a count"),
        ("0,0", "names a GPU twice"),
    ],
)
def test_bad_gpu_values_are_refused(value, message):
    with pytest.raises(InputError, match=message):
        select_gpus(value, visible=4, device="cuda")


def test_ddp_needs_cuda_and_enough_gpus():
    assert select_gpus("0,3", visible=4, device="cuda") == (0, 3)
    assert select_gpus("4", visible=4, device="cuda:0") == (0, 1, 2, 3)
    with pytest.raises(InputError, match=r"GPU 2 asked for, but this app sees 2 CUDA device\(s\) \(indices 0..1\)"):
        select_gpus("3", visible=2, device="cuda")
    with pytest.raises(InputError, match="GPU 5 asked for"):
        select_gpus("0,5", visible=4, device="cuda")
    with pytest.raises(InputError, match="device setting is 'cpu'.*NCCL, which has no CPU mode"):
        select_gpus("2", visible=4, device="cpu")
    with pytest.raises(InputError, match="no CUDA GPU is visible"):
        select_gpus("0,1", visible=0, device="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_engine_refuses_ddp_here_and_says_why(tmp_path, tiny_models, speak):
    from engines.training.engine import TrainingEngine
    from tests.test_training import ESPEAK_SENTENCES, make_dataset, make_settings

    engine = TrainingEngine(make_settings(tmp_path, tiny_models), tiny=tiny_models)
    make_dataset(engine.datasets_dir, "ok", [(speak(t), t) for t in ESPEAK_SENTENCES[:3]], n_eval=1)
    with pytest.raises(InputError, match="needs CUDA.*Set GPUs to 1"):
        engine.start(TrainOptions(dataset="ok", base_model="tiny", gpus="2"))
    assert engine.list_runs() == []  # refused before anything was spawned or written


@pytest.mark.parametrize("world", [1, 2, 4])
def test_rank_plan(world):
    options = TrainOptions(batch_size=3, grad_accum=2, seed=7)
    plans = [rank_plan(options, world, r, train_clips=10) for r in range(world)]
    assert [p.writes for p in plans] == [True] + [False] * (world - 1)  # rank 0 alone writes the run folder
    for p in plans:
        assert p.batch_per_rank == 3 and p.global_batch == 3 * 2 * world and p.seed == 7
        assert p.sharded == (world > 1)
    clips = {1: 10, 2: 5, 4: 3}[world]  # DistributedSampler pads 10 clips to equal shares
    steps = {1: 4, 2: 2, 4: 1}[world]
    assert {(p.clips_per_rank, p.steps_per_epoch) for p in plans} == {(clips, steps)}
    with pytest.raises(InputError, match="rank"):
        rank_plan(options, world, world)


def test_worker_parses_a_rank_argv_as_distribute_builds_it(tmp_path):
    argv = ["--continue_path=", "--restore_path=", "--group_id=group_x", "--use_ddp=true", str(tmp_path), "--rank=1"]
    args = parse_worker_args(argv, {"RANK": "1", "CUDA_VISIBLE_DEVICES": "4,6"})
    assert (args.rank, args.world_size, args.group_id, args.use_ddp) == (1, 2, "group_x", True)
    assert args.run_dir == tmp_path.resolve() and not writes_run_files(args)
    single = parse_worker_args([str(tmp_path)], {})
    assert (single.rank, single.world_size, single.use_ddp) == (0, 1, False) and writes_run_files(single)
    with pytest.raises(SystemExit):  # rank outside the visible GPUs
        parse_worker_args([*argv[:-1], "--rank=2"], {"CUDA_VISIBLE_DEVICES": "4,6"})
    with pytest.raises(SystemExit):  # coqui's resume path is not ours
        parse_worker_args(["--continue_path=/old", str(tmp_path)], {})


def test_distribute_starts_one_planning_rank_per_gpu(tmp_path):
    """The exact argv/env the engine builds for gpus "0,1", run through the real trainer.distribute; --plan
    makes each rank print what it parsed and exit before touching CUDA or the run folder."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    info = {"id": "run", "status": "finished", "options": {"batch_size": 2, "grad_accum": 3}, "usable_train_clips": 9}
    (run_dir / "run.json").write_text(json.dumps(info))
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    environ = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    argv, env = launch_command(run_dir, "cuda", (0, 1), environ)
    out = subprocess.run(
        [*argv, "--plan"], env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=240, check=True
    )
    # Both ranks share the launcher's stdout: their lines may run together, so decode each object in place.
    decoder, text = json.JSONDecoder(), out.stdout
    found = [decoder.raw_decode(text, m.start())[0] for m in re.finditer(r'\{"worker"', text)]
    ranks = sorted(found, key=lambda r: r["worker"]["rank"])
    assert [r["worker"]["rank"] for r in ranks] == [0, 1], out.stdout + out.stderr
    for rank, r in enumerate(ranks):
        assert r["worker"]["use_ddp"] and r["worker"]["world_size"] == 2
        assert r["worker"]["group_id"].startswith("group_") and r["worker"]["run_dir"] == str(run_dir)
        assert r["plan"]["writes"] == (rank == 0) and r["plan"]["global_batch"] == 2 * 3 * 2
        assert r["plan"]["clips_per_rank"] == 5 and r["plan"]["steps_per_epoch"] == 3
    assert len({r["worker"]["group_id"] for r in ranks}) == 1
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before  # nothing written


def test_the_page_passes_gpus_through_the_form():
    from pages import finetune_train as page

    filled = {**page.preset_values("quick"), "dataset": "voice", "base": "tiny"}
    assert page.build_options(filled).gpus == "1"  # an older form (or API call) without the field
    assert page.build_options({**filled, "gpus": " 0,1 "}).gpus == "0,1"
    with pytest.raises(InputError, match="no CUDA GPU is visible|device setting is 'cpu'"):
        select_gpus(page.build_options({**filled, "gpus": "2"}).gpus, visible=0, device="cuda")
