"""``EvalEngine``: the one object pages and scripts use. It is thin: it owns the one-run-at-a-time lock,
the stop flag and the background job, and hands the work to the planner, the runner, the store and the
listening tests.

Two ways to run: ``start``/``start_resume``/``start_rank_checkpoints`` return an ``EvalJob`` at once and
run in a background thread (the page: a run outlives its browser tab and only ``stop()`` ends it early);
``run``/``iter_run``/``resume``/``rank_checkpoints`` run in the caller's thread (scripts, the headless
command, tests). Both hold the same lock, so there is one evaluation at a time either way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config import Settings
from engines.core.errors import BusyError, InputError, LabError
from engines.core.progress import LogFn, ProgressFn, log_info, no_progress
from engines.eval import checkpoints
from engines.eval.config import EvalConfig
from engines.eval.distributed import run_on_ray
from engines.eval.job import EvalJob
from engines.eval.listening import ListeningTests
from engines.eval.plan import Planner, System, Voice
from engines.eval.results import GROUND_TRUTH, read_results
from engines.eval.runner import EvalRun
from engines.eval.sentences import SentenceSet
from engines.eval.store import RunInfo, RunProgress, RunStore
from engines.eval.summary import fill_weights, write_outputs

if TYPE_CHECKING:  # engine modules import torch; eval only needs their types here
    from engines.asr.engine import ASREngine
    from engines.scoring.mos import MOSEngine
    from engines.scoring.sim import SimilarityEngine
    from engines.training.engine import TrainingEngine
    from engines.tts.engine import TTSEngine

log = logging.getLogger(__name__)


def _last(updates: Iterator[RunProgress]) -> RunProgress:
    """Drain a progress iterator and return its final update."""
    final = None
    for final in updates:  # noqa: B007 - only the last update matters
        continue
    if final is None:
        raise LabError("The evaluation produced no result.")
    return final


def sim_encoder_of(summary: dict[str, Any]) -> str:
    """The SIM encoder a run used (runs from before encoders were selectable used XTTS's own)."""
    sim = (summary.get("metrics") or {}).get("sim")
    if sim:
        return str(sim.get("id"))
    if "sim_encoder" in (summary.get("config") or {}):
        return str(summary["config"]["sim_encoder"] or "none")
    return "xtts"


class EvalEngine:
    """Runs evaluations, one at a time; results live in workspace/reports/<run-id>/.

    Args:
        settings: the app's settings (workspace, generation defaults, limits).
        tts: the TTS engine the systems speak with.
        asr: the ASR engine that scores them.
        training: the training engine (checkpoint ranking and export); None = not available.
        sim: the speaker-similarity engine (``engines.scoring.sim``); None = one of its own.
        mos: the predicted-MOS engine (``engines.scoring.mos``); None = one of its own.
    """

    def __init__(
        self,
        settings: Settings,
        tts: TTSEngine,
        asr: ASREngine,
        training: TrainingEngine | None = None,
        sim: SimilarityEngine | None = None,
        mos: MOSEngine | None = None,
    ) -> None:
        from engines.scoring.mos import MOSEngine
        from engines.scoring.sim import SimilarityEngine

        self.settings = settings
        self.tts = tts
        self.asr = asr
        self.training = training
        self.sim = sim if sim is not None else SimilarityEngine(settings, tts.gpu_lock, tts=tts)
        self.mos = mos if mos is not None else MOSEngine(settings, tts.gpu_lock)
        self.store = RunStore(settings)
        self.planner = Planner(settings, tts, asr, sim=self.sim, mos=self.mos)
        self.listening = ListeningTests(self.store)
        self._stop = threading.Event()
        self._run_lock = threading.Lock()
        self._current: str | None = None
        self._job: EvalJob | None = None

    # ------------------------------------------------------------------ runs on disk

    @property
    def reports_dir(self) -> Path:
        return self.store.reports_dir

    def run_dir(self, run_id: str) -> Path:
        """The folder of a run (InputError for unknown or unsafe ids)."""
        return self.store.run_dir(run_id)

    def list_runs(self) -> list[RunInfo]:
        """Past and current runs, newest first."""
        return self.store.list_runs(live=self._current)

    def load_run(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
        """(config.json, results rows, summary.json or None) of a run."""
        return self.store.load_run(run_id)

    @property
    def running(self) -> str | None:
        """The id of the run in progress, if any."""
        return self._current

    @property
    def job(self) -> EvalJob | None:
        """The background job running now, else the last one this process ran (None before the first)."""
        return self._job

    def stop(self) -> bool:
        """Ask the running evaluation (a background job or a run in the caller's thread) to stop after the
        utterance in progress; it stays resumable. The only way to end a background job early.

        Returns:
            True when a run was in progress.
        """
        self._stop.set()
        job = self._job
        alive = job is not None and not job.ended
        if job is not None and alive:
            job.note_stop()  # a ranking job still exporting checkpoints stops as soon as its run begins
        return self._current is not None or alive

    # ------------------------------------------------------------------ planning

    def parse_voice(self, spec: str) -> Voice:
        """A voice spec as a Voice (see ``Planner.parse_voice``)."""
        return self.planner.parse_voice(spec)

    def plan(self, config: EvalConfig) -> tuple[SentenceSet, list[System]]:
        """Check the whole config before any model runs (see ``Planner.plan``)."""
        return self.planner.plan(config)

    def tts_weights(self, model_id: str) -> str:
        """ "random" for a toy TTS model, else "real" (see ``Planner.tts_weights``)."""
        return self.planner.tts_weights(model_id)

    def asr_weights(self, asr_model: str) -> str:
        """ "random" for a random-weight Whisper, else "real"; never loads the weights."""
        return self.planner.asr_weights(asr_model)

    # ------------------------------------------------------------------ running

    def run(
        self,
        config: EvalConfig,
        *,
        run_id: str | None = None,
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
    ) -> RunProgress:
        """Run an evaluation to the end (or until ``stop()``); see ``iter_run``.

        Returns:
            The final progress (state "done" or "stopped", the summary filled).
        """
        return _last(self.iter_run(config, run_id=run_id, progress=progress, log_fn=log_fn))

    def resume(self, run_id: str, *, progress: ProgressFn | None = None, log_fn: LogFn | None = None) -> RunProgress:
        """Finish a stopped or interrupted run, skipping the utterances it already has."""
        return _last(self.iter_resume(run_id, progress=progress, log_fn=log_fn))

    def iter_resume(
        self, run_id: str, *, progress: ProgressFn | None = None, log_fn: LogFn | None = None
    ) -> Iterator[RunProgress]:
        """Like ``resume``, yielding progress after every batch."""
        saved = self.store.meta(run_id)
        config = EvalConfig.from_dict(saved["config"], self.settings.generation)
        yield from self.iter_run(config, run_id=run_id, progress=progress, log_fn=log_fn, resume=True)

    def iter_run(
        self,
        config: EvalConfig,
        *,
        run_id: str | None = None,
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
        resume: bool = False,
    ) -> Iterator[RunProgress]:
        """Run an evaluation in the caller's thread, yielding progress after every batch of utterances.

        Leaving the loop early loses the batch in flight and marks the run "stopped" (resumable); a page
        uses ``start`` instead, whose job goes on without its watcher.

        Args:
            config: what to evaluate.
            run_id: a new run's id (default: timestamp + name), or the run to resume.
            progress: ``progress(fraction, desc=...)`` (gr.Progress works).
            log_fn: receives status lines.
            resume: continue ``run_id``, skipping utterances already in its results.csv.

        Yields:
            RunProgress after each batch; the last one has state "done" (or "stopped") and the summary.

        Raises:
            BusyError: another evaluation is running.
            InputError / AudioError / MissingWeightsError: bad config (checked before any synthesis).
        """
        self._begin()
        try:
            run = self._open(config, run_id, resume=resume, progress=progress, log_fn=log_fn)
            yield from run.steps()
        finally:
            self._release()

    def start(self, config: EvalConfig, *, run_id: str | None = None, log_fn: LogFn | None = None) -> EvalJob:
        """Start an evaluation in a background thread and return at once.

        The config is planned and the run folder made before this returns, so bad input raises here; the
        work then goes on whether or not anyone watches (``job.watch()``, ``job.wait()``), until it ends or
        ``stop()``.

        Args:
            config: what to evaluate.
            run_id: the new run's id (default: timestamp + name).
            log_fn: receives status lines (default: the logger).

        Returns:
            The job (``job.run_id`` names the run folder).

        Raises:
            BusyError: another evaluation is running.
            InputError / AudioError / MissingWeightsError: bad config (checked before any folder exists).
        """
        return self._start_run("run", config, run_id, resume=False, log_fn=log_fn)

    def start_resume(self, run_id: str, *, log_fn: LogFn | None = None) -> EvalJob:
        """``resume`` as a background job (see ``start``)."""
        saved = self.store.meta(run_id)
        config = EvalConfig.from_dict(saved["config"], self.settings.generation)
        return self._start_run("resume", config, run_id, resume=True, log_fn=log_fn)

    def start_rank_checkpoints(
        self,
        training_run: str,
        base: EvalConfig,
        *,
        include_base_model: str | None = None,
        log_fn: LogFn | None = None,
    ) -> EvalJob:
        """``rank_checkpoints`` as a background job (see ``start``). The checkpoints are exported inside the
        job, so ``job.run_id`` stays None (state "preparing") until the eval run's folder exists; a config
        the planner refuses then fails the job (``job.error``)."""
        self._begin()
        job = EvalJob("rank")

        def steps() -> Iterator[RunProgress]:
            pairs = self.checkpoint_models(training_run, job.progress)
            config = checkpoints.ranking_config(base, training_run, pairs, include_base_model)
            run = self._open(config, None, resume=False, progress=job.progress, log_fn=log_fn)
            job.run_id = run.run_id
            yield from run.steps()

        return self._launch(job, steps)

    def _start_run(
        self, kind: str, config: EvalConfig, run_id: str | None, *, resume: bool, log_fn: LogFn | None
    ) -> EvalJob:
        self._begin()
        job = EvalJob(kind)
        try:
            run = self._open(config, run_id, resume=resume, progress=job.progress, log_fn=log_fn)
        except BaseException:
            self._release()
            raise
        job.run_id = run.run_id
        return self._launch(job, run.steps)

    def _launch(self, job: EvalJob, steps: Callable[[], Iterator[RunProgress]]) -> EvalJob:
        """Run ``steps`` in a daemon thread (the caller holds the run lock; the thread releases it).

        Daemon: quitting the app ends the run where it is; its status then reads "interrupted" and it
        can be resumed, like a killed headless run.
        """
        self._job = job
        job.thread = threading.Thread(
            target=job.run, args=(steps, self._release), name=f"eval-{job.run_id or job.kind}", daemon=True
        )
        try:
            job.thread.start()
        except BaseException:
            self._release()
            raise
        return job

    def _begin(self) -> None:
        """Take the one-run lock (BusyError when held) and clear the stop flag."""
        if not self._run_lock.acquire(blocking=False):
            what = self._current or "exporting checkpoints to rank them"
            raise BusyError(f"An evaluation is already running ({what}); stop it or wait for it to finish.")
        self._stop.clear()

    def _release(self) -> None:
        self._current = None
        self._run_lock.release()

    def _open(
        self,
        config: EvalConfig,
        run_id: str | None,
        *,
        resume: bool,
        progress: ProgressFn | None,
        log_fn: LogFn | None,
    ) -> EvalRun:
        """Plan and make (or reopen) a run; the caller holds the run lock."""
        config = self.planner.resolve(config)  # recorded in config.json as used
        common = {
            "settings": self.settings,
            "tts": self.tts,
            "asr": self.asr,
            "sim": self.sim,
            "mos": self.mos,
            "remote": run_on_ray,
            "stop": self._stop,
            "progress": progress or no_progress,
            "log_fn": log_fn or log_info,
        }
        if resume:
            run = EvalRun.resume(self.store, self.planner, config, run_id or "", **common)
        else:
            run = EvalRun.new(self.store, self.planner, config, run_id, **common)
        self._current = run.run_id
        return run

    def rebuild_report(self, run_id: str) -> Path:
        """Recompute summary.json and report.html from results.csv (e.g. after a code update)."""
        folder = self.run_dir(run_id)
        meta = self.store.meta(run_id)
        rows = fill_weights(meta, read_results(folder / "results.csv"), self.tts_weights, self.asr_weights)
        config = EvalConfig.from_dict(meta["config"], self.settings.generation)
        write_outputs(folder, meta, rows, config, self.store.status(run_id).get("state", "stopped"))
        return folder / "report.html"

    # ------------------------------------------------------------------ comparison

    def compare_runs(self, run_a: str, run_b: str) -> list[dict[str, Any]]:
        """Two runs side by side: one row per system (matched by name) with both runs' headline numbers.

        Returns:
            Rows with ``system`` and, for runs A and B, corpus WER, CER, mean SIM, mean RTF and n.
        """
        summaries = []
        for rid in (run_a, run_b):
            _, _, summary = self.load_run(rid)
            if summary is None:
                raise InputError(f"Run {rid!r} has no summary yet (it has not finished a batch).")
            summaries.append(summary)
        # SIM of different encoders is not on one scale: shown only when both runs used the same one
        encoders = [sim_encoder_of(s) for s in summaries]
        same_sim = encoders[0] == encoders[1]
        out = []
        for name in dict.fromkeys([*summaries[0]["systems"], *summaries[1]["systems"]]):
            row: dict[str, Any] = {"system": name}
            for tag, summary in zip(("A", "B"), summaries):
                b = summary["systems"].get(name)
                row[f"{tag} n"] = b["n"] if b else None
                row[f"{tag} WER"] = b["wer"]["corpus"]["value"] if b else None
                row[f"{tag} CER"] = b["cer"]["corpus"]["value"] if b else None
                row[f"{tag} SIM"] = b["sim"]["mean"]["value"] if b and same_sim else None
                row[f"{tag} DNSMOS OVRL"] = ((b.get("dnsmos_ovrl") or {}).get("mean") or {}).get("value") if b else None
                row[f"{tag} RTF"] = b["rtf"]["mean"]["value"] if b else None
            row["note"] = "" if same_sim else f"SIM not compared: run A used {encoders[0]}, run B {encoders[1]}"
            out.append(row)
        return out

    # ------------------------------------------------------------------ checkpoint ranking

    def checkpoint_models(self, training_run: str, progress: ProgressFn | None = None) -> list[tuple[str, str]]:
        """Export every checkpoint of a training run (see ``checkpoints.export_checkpoints``)."""
        return checkpoints.export_checkpoints(self.settings, self.training, training_run, progress)

    def iter_rank_checkpoints(
        self,
        training_run: str,
        base: EvalConfig,
        *,
        include_base_model: str | None = None,
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
    ) -> Iterator[RunProgress]:
        """Evaluate every checkpoint of a training run on the same sentences (one eval run, one system each).

        Args:
            training_run: a run id from the Finetune tab.
            base: sentences, voices and settings; its ``models`` are ignored.
            include_base_model: also evaluate this model (e.g. "xtts_v2") as a reference point.
            progress: ``progress(fraction, desc=...)``.
            log_fn: receives status lines.

        Yields:
            RunProgress as ``iter_run``; the final summary holds ``ranking``.
        """
        pairs = self.checkpoint_models(training_run, progress)
        config = checkpoints.ranking_config(base, training_run, pairs, include_base_model)
        yield from self.iter_run(config, progress=progress, log_fn=log_fn)

    def rank_checkpoints(self, training_run: str, base: EvalConfig, **kwargs: Any) -> RunProgress:
        """``iter_rank_checkpoints`` to the end."""
        return _last(self.iter_rank_checkpoints(training_run, base, **kwargs))

    def export_best(self, run_id: str, name: str | None = None) -> Path:
        """Export the best-ranked checkpoint of a checkpoint-ranking run as workspace/models/<name>.

        Args:
            run_id: a run made by ``rank_checkpoints``.
            name: the model folder name; None = the training engine's default ("<dataset>-step<step>").

        Returns:
            The new model folder (it appears in the TTS model list).

        Raises:
            InputError: the run did not rank checkpoints, or has no ranked checkpoint.
        """
        _, _, summary = self.load_run(run_id)
        best = checkpoints.best_checkpoint(run_id, summary)
        assert summary is not None  # best_checkpoint refuses a run without one
        if self.training is None:
            raise InputError("Fine-tuning is not available in this app.")
        log.info(
            "Exporting best checkpoint %s (%s %.4f) as %s",
            best["checkpoint"],
            best["metric"],
            best["error"] if best["error"] is not None else float("nan"),
            name,
        )
        return Path(self.training.export(summary["training_run"], Path(best["checkpoint"]), name))

    # ------------------------------------------------------------------ listening tests (see ListeningTests)

    def list_listening_tests(self, run_id: str) -> list[str]:
        return self.listening.test_ids(run_id)

    def create_listening_test(self, run_id: str, system_a: str, system_b: str, **kwargs: Any) -> str:
        return self.listening.create(run_id, system_a, system_b, **kwargs)

    def listening_plan(self, run_id: str, test_id: str) -> dict[str, Any]:
        return self.listening.plan(run_id, test_id)

    def listening_answers(self, run_id: str, test_id: str) -> list[dict[str, Any]]:
        return self.listening.answers(run_id, test_id)

    def record_listening(self, run_id: str, test_id: str, index: int, **kwargs: Any) -> dict[str, Any]:
        return self.listening.record(run_id, test_id, index, **kwargs)

    def listening_summary(self, run_id: str, test_id: str, n_boot: int = 1000) -> dict[str, Any]:
        return self.listening.summary(run_id, test_id, n_boot)


__all__ = ["GROUND_TRUTH", "EvalEngine"]
