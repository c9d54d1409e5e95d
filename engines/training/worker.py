"""The training process: ``python -m engines.training.worker <run_dir>``, or one rank of a multi-GPU run.

Started by ``TrainingEngine.start``/``resume`` in its own session. Reads run.json, builds coqui's
``GPTTrainerConfig`` from the base model's config (so the GPT's shape is the base's: the tiny model
trains the same way as XTTS v2), trains with ``trainer.Trainer`` and records:

- metrics.jsonl: one line per step (epoch, step, loss_text_ce, loss_mel_ce, loss, lr, time, step
  time, GPU memory) and one per evaluation; a resume first drops the lines of the steps it trains
  again (those after its checkpoint), so a step keeps one line;
- checkpoints/checkpoint_<step>.pth every ``save_every`` steps, at each epoch end and on stop, each
  written to a temp file, fsynced and renamed (a kill never leaves half a checkpoint under that name);
- run.json status: running -> finished / stopped / failed (with the reason; CUDA out-of-memory says
  what to lower).

SIGTERM asks for a clean stop: the current step finishes, a checkpoint is saved, status "stopped".
On start it resumes from the newest checkpoint that loads, if there is one.

Several GPUs: coqui's ``trainer.distribute`` runs this file as a script once per GPU with
``--continue_path= --restore_path= --group_id=group_<time> --use_ddp=true <run_dir> --rank=<r>``
(``parse_worker_args``). Rank 0 alone writes the run folder's files; ranks agree every step on whether to
stop (so all stop at the same step and rank 0's checkpoint is the shared state); gradients are averaged
over the ranks before each optimizer step (coqui's Trainer 0.4 wraps the model in DDP but runs the forward
on ``ddp.module``, so DDP itself never synchronizes them); a failing rank takes the others down with it.
``--plan`` prints the rank's plan (JSON) and exits without touching the run folder.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and __package__ in (None, ""):
    # Run as a script (trainer.distribute): sys.path[0] is engines/training/, whose module names (base,
    # export, process, ...) would shadow other modules; the project root (on PYTHONPATH) is what we need.
    from pathlib import Path as _Path

    _here = _Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if _Path(p or ".").resolve() != _here]

import argparse
import contextlib
import itertools
import json
import logging
import os
import signal
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines.core.audio import atomic_file, write_json
from engines.core.errors import InputError, LabError
from engines.core.provenance import utc_now
from engines.training.options import (
    SAMPLE_RATE,
    RankPlan,
    TrainOptions,
    options_from_dict,
    rank_plan,
)
from engines.training.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    FAILED,
    FINISHED,
    INDEX_FILE,
    METRICS_FILE,
    RUNNING,
    STOPPED,
    TRAINED_PREFIX,
    checkpoint_files,
    clip_seconds,
    read_dataset,
    read_index,
    read_run,
    trim_metrics,
    update_run,
)

if TYPE_CHECKING:  # imported where used: the worker's --plan mode and the app need neither
    from TTS.tts.layers.xtts.trainer.gpt_trainer import GPTTrainerConfig

log = logging.getLogger("engines.training.worker")

CHECKPOINT_FORMAT = "xtts-lab-gpt-checkpoint/1"


@dataclass(frozen=True)
class WorkerArgs:
    """The worker's command line (one process, or one rank started by trainer.distribute)."""

    run_dir: Path
    rank: int = 0  # --rank (trainer.distribute also sets RANK)
    world_size: int = 1  # ranks: the GPUs in CUDA_VISIBLE_DEVICES under --use_ddp, else 1
    group_id: str = ""  # --group_id (trainer.distribute: group_<start time>)
    use_ddp: bool = False
    plan_only: bool = False  # --plan: print the plan, write nothing


def parse_worker_args(argv: list[str], environ: dict[str, str] | None = None) -> WorkerArgs:
    """Parse ``<run_dir>`` or what trainer.distribute passes each rank.

    Raises:
        SystemExit: unknown arguments (argparse), or a --continue_path/--restore_path (runs resume from
            their own checkpoints, not coqui's).
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m engines.training.worker")
    parser.add_argument("run_dir")
    parser.add_argument("--rank", type=int, default=None)
    parser.add_argument("--group_id", default="")
    parser.add_argument("--use_ddp", default="false", choices=["true", "false", "True", "False"])
    parser.add_argument("--continue_path", default="")
    parser.add_argument("--restore_path", default="")
    parser.add_argument("--plan", action="store_true")
    ns = parser.parse_args(argv)
    if ns.continue_path or ns.restore_path:
        parser.error("--continue_path/--restore_path are not used: a run resumes from its own checkpoints")
    use_ddp = ns.use_ddp.lower() == "true"
    rank = ns.rank if ns.rank is not None else int(env.get("RANK", 0) or 0)
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    world_size = len(visible) if use_ddp else 1
    if use_ddp and not 0 <= rank < world_size:
        parser.error(f"rank {rank} outside the {world_size} GPU(s) in CUDA_VISIBLE_DEVICES")
    return WorkerArgs(
        run_dir=Path(ns.run_dir).resolve(),
        rank=rank,
        world_size=world_size,
        group_id=ns.group_id,
        use_ddp=use_ddp,
        plan_only=ns.plan,
    )


def writes_run_files(args: WorkerArgs) -> bool:
    """Whether this process may write run.json, config.json, metrics.jsonl and checkpoints (rank 0 only)."""
    return args.rank == 0


class StopTraining(Exception):
    """Raised inside the training loop once a stop was asked for and the checkpoint is saved."""


class _StopFlag:
    """Set by SIGTERM. Before training starts it stops at once; during training, after the current step."""

    def __init__(self) -> None:
        self.requested = False
        self.training = False

    def handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        log.info("Stop requested (signal %d)", signum)
        if not self.training:
            raise StopTraining()


def oom_message(options: TrainOptions) -> str:
    """What to lower after CUDA ran out of memory, with this run's numbers."""
    return (
        f"The GPU ran out of memory (batch size {options.batch_size}, max audio {options.max_audio_seconds:g} s). "
        f"Lower the batch size (e.g. to {max(1, options.batch_size // 2)}) and raise gradient accumulation to keep "
        f"the effective batch (batch x accumulation), or lower the max audio length; close other GPU programs "
        "or unload the TTS/ASR models first. Checkpoints so far are kept: resume after changing nothing, or "
        "start a new run with the lower settings."
    )


def describe_failure(exc: BaseException, options: TrainOptions) -> str:
    """The message run.json records for a failed run."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return oom_message(options)
    if isinstance(exc, LabError):
        return str(exc)
    return f"{type(exc).__name__}: {exc} (see train.log)"


class _Head:
    """The first ``n`` batches of a loader (the rest of an epoch interrupted by a crash or stop)."""

    def __init__(self, loader: Any, n: int) -> None:
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.loader), self.n)


def usable_samples(
    rows: list[dict[str, str]], language: str, tokenizer: Any, max_wav_len: int, max_text_len: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """coqui sample dicts for the clips GPTTrainer can use, and counts of those left out by reason.

    XTTSDataset silently swaps a clip it cannot use for another one (and recurses forever when none is
    usable), so clips are checked here first: audio 0.5 s .. max length, text non-empty, within the
    token limit and free of unknown tokens.
    """
    kept, dropped = [], {"too long": 0, "too short": 0, "text too long": 0, "unknown characters": 0, "unreadable": 0}
    for row in rows:
        seconds = clip_seconds(row["audio_file"])
        if seconds <= 0:
            dropped["unreadable"] += 1
            continue
        if seconds * SAMPLE_RATE > max_wav_len:
            dropped["too long"] += 1
            continue
        if seconds < 0.5:
            dropped["too short"] += 1
            continue
        try:
            tokens = tokenizer.encode(row["text"], language)
        except Exception:  # noqa: BLE001 - e.g. a language needing an extra package: skip the clip, say so
            dropped["unknown characters"] += 1
            continue
        if 1 in tokens or 0 in tokens:  # [UNK] / [STOP]: XTTSDataset asserts on these
            dropped["unknown characters"] += 1
            continue
        if len(tokens) > max_text_len:
            dropped["text too long"] += 1
            continue
        kept.append(
            {
                "text": row["text"],
                "audio_file": row["audio_file"],
                "speaker_name": row["speaker_name"],
                "language": language,
                "root_path": str(Path(row["audio_file"]).parent),
                "audio_unique_name": Path(row["audio_file"]).stem,
            }
        )
    return kept, {k: v for k, v in dropped.items() if v}


def build_config(
    run_dir: Path, info: dict[str, Any], options: TrainOptions, device: str, world_size: int = 1
) -> GPTTrainerConfig:
    """GPTTrainerConfig with the base's GPT shape and audio settings, following coqui's XTTS recipe.

    ``batch_size`` is per process: under DDP each rank takes that many clips per step.
    """
    from TTS.tts.configs.xtts_config import XttsArgs, XttsConfig
    from TTS.tts.layers.xtts.trainer.gpt_trainer import GPTArgs, GPTTrainerConfig

    base = info["base"]
    base_config = XttsConfig()
    base_config.load_json(base["config"])
    inherited = {f: getattr(base_config.model_args, f) for f in XttsArgs.__dataclass_fields__}
    args = GPTArgs(**inherited)
    args.max_conditioning_length = 132300  # 6 s conditioning slices (coqui recipe)
    args.min_conditioning_length = 66150  # 3 s
    args.max_wav_length = int(options.max_audio_seconds * SAMPLE_RATE)
    args.max_text_length = min(200, int(base_config.model_args.gpt_max_text_tokens or 200))
    args.mel_norm_file = base["mel_stats"]
    args.dvae_checkpoint = base["dvae"]
    args.xtts_checkpoint = base["checkpoint"]
    args.tokenizer_file = base["vocab"]
    args.gpt_checkpoint = ""
    args.decoder_checkpoint = None
    args.gpt_use_masking_gt_prompt_approach = True
    args.gpt_num_audio_tokens = base_config.model_args.gpt_num_audio_tokens
    on_gpu = device.startswith("cuda")
    config = GPTTrainerConfig(
        epochs=options.epochs,
        output_path=str(run_dir / "trainer"),
        model_args=args,
        run_name="gpt",
        project_name="xtts-lab",
        run_description=f"XTTS Lab fine-tune of {info['base_model']} on {info['dataset']}",
        dashboard_logger="tensorboard",  # unused: the worker passes its own logger (metrics.jsonl)
        audio=base_config.audio,
        batch_size=options.batch_size,
        eval_batch_size=options.batch_size,
        # the CPU cores are shared by all ranks' loader workers
        num_loader_workers=max(1, min(4, (os.cpu_count() or 2) // 2 // world_size)) if on_gpu else 0,
        num_eval_loader_workers=0,
        eval_split_max_size=256,
        print_step=5,
        plot_step=10**9,
        log_model_step=10**9,
        save_step=10**9,
        save_n_checkpoints=1,
        save_checkpoints=False,  # checkpoints are written by the worker, atomically
        save_best_after=0,
        print_eval=False,
        run_eval=True,
        run_eval_steps=options.eval_every,
        test_delay_epochs=10**9,  # no test-sentence synthesis during training
        test_sentences=[],
        training_seed=options.seed,
        mixed_precision=False,
        optimizer="AdamW",
        optimizer_wd_only_on_weights=True,
        optimizer_params={"betas": [0.9, 0.96], "eps": 1e-8, "weight_decay": 1e-2},
        lr=options.learning_rate,
        # Halve the learning rate for the last quarter of the epochs (the scheduler steps per epoch).
        lr_scheduler="MultiStepLR",
        lr_scheduler_params={"milestones": [max(1, int(options.epochs * 0.75))], "gamma": 0.5, "last_epoch": -1},
        scheduler_after_epoch=True,
    )
    config.languages = list(getattr(base_config, "languages", []) or [])
    return config


def make_trainer_class() -> type[Any]:  # a subclass of trainer.Trainer, defined on first use
    """``trainer.Trainer`` with metrics lines, atomic checkpoints, mid-epoch resume and clean stop."""
    import torch
    from trainer import Trainer
    from trainer.generic_utils import KeepAverage

    class LabTrainer(Trainer):
        def __init__(
            self,
            *args: Any,
            run_dir: Path,
            options: TrainOptions,
            stop: _StopFlag,
            session: int,
            plan: RankPlan | None = None,
            **kwargs: Any,
        ) -> None:
            self.run_dir = run_dir
            self.options = options
            self.stop = stop
            self.session = session
            self.plan = plan or rank_plan(options, 1, 0)
            self.writer = self.plan.writes
            self.resume_skip = 0  # batches of the current epoch already trained before a crash/stop
            self.skip_offset = 0
            self.epoch_batches = 0
            self.last_eval: float | None = None
            self.last_train: float | None = None
            self.metrics_fh = (
                open(run_dir / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115 - open for the run
                if self.writer
                else open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - other ranks record nothing
            )
            callbacks = dict(kwargs.pop("callbacks", None) or {})
            callbacks["on_epoch_end"] = lambda trainer: trainer.stop_at_epoch_end()
            super().__init__(*args, callbacks=callbacks, **kwargs)
            if self.plan.world_size > 1:
                check_gradient_clipping = self.callbacks.before_gradient_clipping

                def before_gradient_clipping(trainer: Any) -> None:
                    trainer.average_gradients()
                    check_gradient_clipping(trainer)

                # runs before each step; coqui's callbacks object is patched per trainer
                self.callbacks.before_gradient_clipping = before_gradient_clipping  # type: ignore[method-assign]

        # -- several GPUs
        def average_gradients(self) -> None:
            """All-reduce the trained parameters' gradients to their mean over the ranks (see the module doc)."""
            import torch.distributed as dist

            for optimizer in self.optimizer:
                for group in optimizer.param_groups:
                    for param in group["params"]:
                        if param.grad is None:  # every rank must join every all_reduce, in the same order
                            param.grad = torch.zeros_like(param)
                        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                        param.grad.div_(self.plan.world_size)

        def agreed_stop(self) -> bool:
            """True when any rank was asked to stop (a collective: every rank calls it at the same point)."""
            if self.plan.world_size == 1:
                return self.stop.requested
            import torch.distributed as dist

            flag = torch.tensor([1.0 if self.stop.requested else 0.0], device="cuda")
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self.stop.requested = bool(flag.item())
            return self.stop.requested

        def stop_at_epoch_end(self) -> None:  # on_epoch_end callback: after rank 0's epoch checkpoint
            if self.agreed_stop():
                raise StopTraining()

        # -- records
        def write_metric(self, row: dict[str, Any]) -> None:
            if not self.writer:
                return
            row = {"session": self.session, "time": round(time.time(), 3), **row}
            self.metrics_fh.write(json.dumps(row) + "\n")
            self.metrics_fh.flush()

        def restart_metrics(self) -> None:
            """Keep metrics.jsonl to one line per step: drop the lines after the step training restarts from
            (the steps after the restored checkpoint, or all of them without one), then append again."""
            if not self.writer:
                return
            self.metrics_fh.close()
            dropped = trim_metrics(self.run_dir, self.total_steps_done)
            if dropped:
                log.info(
                    "Dropped %d metrics line(s) after step %d: those steps run again", dropped, self.total_steps_done
                )
            self.metrics_fh = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115

        def gpu_gib(self) -> float | None:
            if not self.use_cuda:
                return None
            return round(torch.cuda.max_memory_allocated() / 2**30, 2)

        # -- training loop hooks
        def train_epoch(self) -> None:
            if self.train_loader is None:
                self.train_loader = self.get_train_dataloader(self.train_samples, verbose=True)
                self.train_loader = self.prepare_accelerate_loader(self.train_loader)
            full = self.train_loader
            sampler = getattr(full, "sampler", None)
            # DistributedSampler: a new shuffle each epoch, the same on all ranks
            if sampler is not None and hasattr(sampler, "set_epoch"):
                sampler.set_epoch(self.epochs_done)
            self.skip_offset = min(self.resume_skip, len(full))
            self.resume_skip = 0
            if self.skip_offset:
                log.info(
                    "Resuming inside epoch %d: %d of %d batches already done",
                    self.epochs_done + 1,
                    self.skip_offset,
                    len(full),
                )
                # the rest of the epoch; coqui only iterates and measures its loader
                self.train_loader = _Head(full, len(full) - self.skip_offset)  # type: ignore[assignment]
            try:
                super().train_epoch()
            finally:
                self.train_loader = full
                self.skip_offset = 0

        def train_step(self, batch: Any, batch_n_steps: int, step: int, loader_start_time: float) -> tuple[Any, Any]:
            started = time.time()
            # Offsets keep gradient-accumulation boundaries and the printed step those of the full epoch.
            outputs, loss_dict = super().train_step(
                batch, batch_n_steps + self.skip_offset, step + self.skip_offset, loader_start_time
            )
            if loss_dict is None:
                return outputs, loss_dict
            self.epoch_batches = step + self.skip_offset + 1
            self.last_train = float(loss_dict["loss"])
            self.write_metric(
                {
                    "kind": "train",
                    "epoch": self.epochs_done + 1,
                    "step": self.total_steps_done,
                    "epoch_step": self.epoch_batches,
                    "loss": float(loss_dict["loss"]),
                    "loss_text_ce": float(loss_dict.get("loss_text_ce", float("nan"))),
                    "loss_mel_ce": float(loss_dict.get("loss_mel_ce", float("nan"))),
                    "lr": float(loss_dict.get("current_lr", self.options.learning_rate)),
                    "step_time": round(time.time() - started, 4),
                    "gpu_mem_gib": self.gpu_gib(),
                }
            )
            saved = False
            if self.total_steps_done % self.options.save_every == 0:
                self.save_lab_checkpoint("step")
                saved = True
            if self.agreed_stop():
                if not saved:
                    self.save_lab_checkpoint("stop")
                raise StopTraining()
            return outputs, loss_dict

        def eval_epoch(self) -> None:
            self.keep_avg_eval = KeepAverage()  # one evaluation's average, not the epoch's running one
            super().eval_epoch()
            avg = self.keep_avg_eval.avg_values
            if "avg_loss" not in avg:
                return
            self.last_eval = float(avg["avg_loss"])
            self.write_metric(
                {
                    "kind": "eval",
                    "epoch": self.epochs_done + 1,
                    "step": self.total_steps_done,
                    "loss": self.last_eval,
                    "loss_text_ce": float(avg.get("avg_loss_text_ce", float("nan"))),
                    "loss_mel_ce": float(avg.get("avg_loss_mel_ce", float("nan"))),
                }
            )
            if not self.writer:
                return
            index = read_index(self.run_dir)
            name = f"checkpoint_{self.total_steps_done}.pth"
            if name in index:  # a step checkpoint saved just before this evaluation
                index[name]["eval_loss"] = self.last_eval
                write_json(self.run_dir / CHECKPOINT_DIR / INDEX_FILE, index)

        def save_best_model(self) -> None:  # called by Trainer (rank 0) at each epoch end, after evaluation
            self.save_lab_checkpoint("epoch")  # a stop asked for meanwhile: see stop_at_epoch_end

        def save_checkpoint(self) -> None:  # Trainer's own periodic/interrupt save: ours, atomically
            self.save_lab_checkpoint("step")

        # -- checkpoints
        def save_lab_checkpoint(self, kind: str) -> Path | None:
            if not self.writer:  # the ranks hold the same weights: rank 0's checkpoint is the run's
                return None
            epoch_done = kind == "epoch"
            steps = self.total_steps_done
            state = {
                "format": CHECKPOINT_FORMAT,
                "model": {k: v for k, v in self.model.state_dict().items() if k.startswith(TRAINED_PREFIX)},
                "optimizer": [o.state_dict() for o in self.optimizer],
                "scheduler": [s.state_dict() for s in self.scheduler if s is not None],
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "step": steps,
                "epoch": self.epochs_done + 1 if epoch_done else self.epochs_done,  # epoch to train next
                "epoch_batches": 0 if epoch_done else self.epoch_batches,
                "kind": kind,
                "train_loss": self.last_train,
                "eval_loss": self.last_eval if epoch_done else None,
                "date": utc_now(),
            }
            folder = self.run_dir / CHECKPOINT_DIR
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"checkpoint_{steps}.pth"
            with atomic_file(path) as tmp, open(tmp, "wb") as fh:  # tmp name: .checkpoint_<step>.pth.*.tmp
                torch.save(state, fh)
                fh.flush()
                os.fsync(fh.fileno())
            index = read_index(self.run_dir)
            index[path.name] = {
                "step": steps,
                "epoch": self.epochs_done + 1,
                "kind": kind,
                "train_loss": self.last_train,
                "eval_loss": state["eval_loss"],
                "epoch_complete": epoch_done,
            }
            self.prune(index)
            write_json(folder / INDEX_FILE, index)
            log.info("Checkpoint %s (%s, step %d)", path.name, kind, steps)
            return path

        def prune(self, index: dict[str, dict[str, Any]]) -> None:
            """Keep the newest ``keep_checkpoints`` and the best-eval one."""
            files = checkpoint_files(self.run_dir)
            scored = [
                (index[p.name]["eval_loss"], p.name)
                for p in files
                if index.get(p.name, {}).get("eval_loss") is not None
            ]
            best = min(scored)[1] if scored else None
            for path in files[: -self.options.keep_checkpoints]:
                if path.name != best:
                    path.unlink(missing_ok=True)
                    index.pop(path.name, None)

        def restore_lab_checkpoint(self, path: Path) -> None:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            if ckpt.get("format") != CHECKPOINT_FORMAT:
                raise InputError(f"{path.name} is not an XTTS Lab training checkpoint.")
            missing, unexpected = self.model.load_state_dict(ckpt["model"], strict=False)
            lost = [k for k in missing if k.startswith(TRAINED_PREFIX)]
            if unexpected or lost:
                raise InputError(
                    f"{path.name} does not fit this model ({len(unexpected)} unexpected, "
                    f"{len(lost)} missing GPT weights)."
                )
            for optimizer, optimizer_state in zip(self.optimizer, ckpt["optimizer"]):
                optimizer.load_state_dict(optimizer_state)
            for scheduler, scheduler_state in zip([s for s in self.scheduler if s is not None], ckpt["scheduler"]):
                scheduler.load_state_dict(scheduler_state)
            if self.scaler is not None and ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            self.total_steps_done = int(ckpt["step"])
            self.epochs_done = int(ckpt["epoch"])
            self.resume_skip = int(ckpt.get("epoch_batches") or 0)
            self.last_train = ckpt.get("train_loss")
            log.info(
                "Resumed from %s: step %d, epoch %d (+%d batches)",
                path.name,
                self.total_steps_done,
                self.epochs_done + 1,
                self.resume_skip,
            )

        def run(self) -> None:
            """Trainer.fit without its catch-all (which prints and exits 1): errors reach the worker."""
            self.stop.training = True
            try:
                self._fit()
            finally:
                self.metrics_fh.close()

    return LabTrainer


def train(run_dir: Path, info: dict[str, Any], stop: _StopFlag, worker: WorkerArgs | None = None) -> str:
    """Build everything and train; returns the final status ("finished")."""
    import torch
    from trainer import TrainerArgs
    from trainer.logging.dummy_logger import DummyLogger

    threads = torch.get_num_threads()
    from TTS.tts.layers.xtts.trainer.gpt_trainer import GPTTrainer

    from engines.tts.vocab import lab_tokenizer

    torch.set_num_threads(threads)  # coqui's XTTS dataset module sets 1 thread at import; CPU training needs them

    worker = worker or WorkerArgs(run_dir=run_dir)
    writer = writes_run_files(worker)
    options = options_from_dict(info["options"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if worker.use_ddp and torch.cuda.device_count() != worker.world_size:
        raise LabError(
            f"Rank {worker.rank} sees {torch.cuda.device_count()} CUDA device(s), expected {worker.world_size} "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r})."
        )
    config = build_config(run_dir, info, options, device, worker.world_size)
    if writer:
        config.save_json(str(run_dir / CONFIG_FILE))

    train_rows, eval_rows, language = read_dataset(Path(info["dataset_dir"]))
    # coqui's tokenizer for its 17 languages, plus the fallback cleaning of a language this run taught it
    tokenizer = lab_tokenizer(info["base"]["vocab"])
    args = config.model_args
    train_samples, dropped_train = usable_samples(
        train_rows, language, tokenizer, args.max_wav_length, args.max_text_length
    )
    eval_samples, dropped_eval = usable_samples(
        eval_rows, language, tokenizer, args.max_wav_length, args.max_text_length
    )
    for what, dropped in (("training", dropped_train), ("evaluation", dropped_eval)):
        for reason, count in dropped.items():
            log.warning("%d %s clip(s) left out: %s", count, what, reason)
    if not train_samples or not eval_samples:
        raise InputError(
            f"No usable clips left (training: {len(train_samples)}, evaluation: {len(eval_samples)}); "
            f"left out: training {dropped_train or 'none'}, evaluation {dropped_eval or 'none'}."
        )

    session = int(info.get("sessions") or 0) + 1
    plan = rank_plan(options, worker.world_size, worker.rank, len(train_samples))
    model = GPTTrainer.init_from_config(config)
    model.xtts.tokenizer = tokenizer  # the dataset's clips are tokenized by the model's tokenizer
    trainer_cls = make_trainer_class()
    trainer_args = TrainerArgs(grad_accum_steps=options.grad_accum)
    if worker.use_ddp:
        trainer_args = TrainerArgs(
            grad_accum_steps=options.grad_accum, use_ddp=True, rank=worker.rank, group_id=worker.group_id
        )
    # Other ranks keep coqui's own log/config copy in a folder of their own.
    trainer_dir = run_dir / "trainer" if writer else run_dir / "trainer" / f"rank{worker.rank}"
    trainer = trainer_cls(
        trainer_args,
        config,
        str(trainer_dir),
        model=model,
        train_samples=train_samples,
        eval_samples=eval_samples,
        parse_command_line_args=False,
        dashboard_logger=DummyLogger(),
        run_dir=run_dir,
        options=options,
        stop=stop,
        session=session,
        plan=plan,
    )
    if writer:
        for stale in (run_dir / CHECKPOINT_DIR).glob(".checkpoint_*.tmp"):  # a save cut short by a kill
            stale.unlink(missing_ok=True)
    # Newest checkpoint that loads; a damaged one (disk trouble) falls back to the one before.
    resumed_from = None
    for path in reversed(checkpoint_files(run_dir)):
        try:
            trainer.restore_lab_checkpoint(path)
            resumed_from = path.name
            break
        except Exception as exc:  # noqa: BLE001 - try the previous checkpoint
            log.warning("Cannot resume from %s (%s); trying an older checkpoint", path.name, exc)
    trainer.restart_metrics()
    steps_per_epoch = plan.steps_per_epoch or 1
    if not writer:
        trainer.run()
        return FINISHED
    pid = {"pid": os.getpid()} if worker.world_size == 1 else {}  # under DDP run.json keeps the launcher's
    update_run(
        run_dir,
        status=RUNNING,
        **pid,
        device=device,
        sessions=session,
        session_started=time.time(),
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * options.epochs,
        usable_train_clips=len(train_samples),
        usable_eval_clips=len(eval_samples),
        dropped={"train": dropped_train, "eval": dropped_eval},
        resumed_from=resumed_from,
        world_size=worker.world_size,
        global_batch=plan.global_batch,
    )
    log.info(
        "Training %d clips (%d for evaluation), %d steps per epoch, %d epochs, on %s%s",
        len(train_samples),
        len(eval_samples),
        steps_per_epoch,
        options.epochs,
        device,
        f" x {worker.world_size} ranks (global batch {plan.global_batch})" if worker.world_size > 1 else "",
    )
    trainer.run()
    return FINISHED


def _die_with_parent() -> None:
    """Linux: SIGTERM this rank when trainer.distribute dies, so no rank trains on orphaned."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _abort_ranks() -> None:
    """Kill the whole process group (launcher and all ranks): a rank that failed leaves the others blocked
    in a collective until NCCL's timeout. run.json and checkpoints are written atomically, so no file is
    left half-written."""
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.killpg(os.getpgrp(), signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    """Entry point. Returns the exit code (0 finished or stopped, 1 failed)."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = parse_worker_args(argv)
    run_dir = worker.run_dir
    info = read_run(run_dir)
    options = options_from_dict(info["options"])
    writer = writes_run_files(worker)
    if worker.plan_only:
        plan = rank_plan(options, worker.world_size, worker.rank, info.get("usable_train_clips"))
        print(json.dumps({"worker": {**asdict(worker), "run_dir": str(run_dir)}, "plan": asdict(plan)}), flush=True)
        return 0
    if worker.use_ddp:
        _die_with_parent()
    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop.handler)
    signal.signal(signal.SIGINT, stop.handler)
    started = time.time()
    if writer:
        update_run(run_dir, status=RUNNING, error=None, **({"pid": os.getpid()} if worker.world_size == 1 else {}))
    status, error = FAILED, None
    try:
        status = train(run_dir, info, stop, worker)
    except StopTraining:
        status = STOPPED
    except BaseException as exc:  # noqa: BLE001 - every failure must end up in run.json, not just the log
        traceback.print_exc()
        error = describe_failure(exc, options)
        if stop.requested:
            status, error = STOPPED, None
    finally:
        if writer:
            elapsed = float(read_run(run_dir).get("elapsed_s") or 0.0) + (time.time() - started)
            update_run(
                run_dir,
                status=status,
                error=error,
                ended=utc_now(),
                elapsed_s=round(elapsed, 1),
                session_started=None,
            )
        log.info(
            "Run %s%s: %s%s",
            run_dir.name,
            f" rank {worker.rank}" if worker.use_ddp else "",
            status,
            f" ({error})" if error else "",
        )
    if status == FAILED and worker.world_size > 1:
        _abort_ranks()
    return 0 if status in (FINISHED, STOPPED) else 1


if __name__ == "__main__":
    sys.exit(main())
