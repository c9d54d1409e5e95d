"""``EvalJob``: one evaluation running in a background thread of the app's process.

A run started from the page used to be a generator driven by the browser's request: closing the tab
cancelled the generator and the run with it (status left "running", the batch in flight lost). A job
belongs to the engine instead. Whoever started it only *watches* it (``watch()`` yields its state); when
a watcher goes away the job goes on, a page opened later watches the same job again, and only
``EvalEngine.stop()`` (the Stop button) stops it.

The job's thread is the only writer; any number of readers take ``snapshot()``s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from engines.core.errors import LabError
from engines.eval.store import RunProgress

log = logging.getLogger(__name__)

JOB_KINDS = ("run", "resume", "rank")
PREPARING = "preparing"  # a job's state before its run folder reports (checkpoint ranking exports first)


@dataclass(frozen=True)
class JobState:
    """What a job looks like at one moment (a copy: readers never see it change under them)."""

    kind: str  # one of JOB_KINDS
    run_id: str | None  # the eval run it writes (None while a ranking job still exports checkpoints)
    state: str  # PREPARING, then the run's state: "running", "stopped", "failed" or "done"
    fraction: float  # 0..1, per utterance (the runner's progress calls)
    desc: str  # what it is doing now, e.g. "tiny / Tiny Alice: s3 (3/24)"
    progress: RunProgress | None  # the last batch's progress (the summary filled once the run ended)
    error: str  # the failure's message ("" unless it failed)
    stopping: bool  # Stop was asked for; the job ends after the utterance in progress
    ended: bool  # the thread has finished (done, stopped or failed)
    version: int  # bumped on every change, so a watcher redraws only when something moved


class EvalJob:
    """An evaluation in a background thread. ``EvalEngine.start``/``start_resume``/``start_rank_checkpoints``
    make one; scripts ``wait()`` for it, pages ``watch()`` it."""

    def __init__(self, kind: str, run_id: str | None = None) -> None:
        self.kind = kind
        self.run_id = run_id
        self.error: BaseException | None = None  # what ended it, when it failed
        self.thread: threading.Thread | None = None
        self._changed = threading.Condition()
        self._latest: RunProgress | None = None
        self._fraction = 0.0
        self._desc = "starting"
        self._ended = False
        self._stopping = False
        self._version = 0

    # ------------------------------------------------------------------ the job's thread writes

    def _bump(self, **changes: Any) -> None:
        with self._changed:
            for name, value in changes.items():
                setattr(self, name, value)
            self._version += 1
            self._changed.notify_all()

    def progress(self, fraction: float, desc: str = "") -> None:
        """The runner's ``progress(fraction, desc=...)`` callback."""
        self._bump(_fraction=float(fraction), _desc=desc or self._desc)

    def note_stop(self) -> None:
        """Stop was asked for (``EvalEngine.stop`` sets the flag the runner reads; this only tells watchers)."""
        self._bump(_stopping=True)

    def report(self, update: RunProgress) -> None:
        """A batch finished (or the run started or ended)."""
        self.run_id = update.run_id
        self._bump(_latest=update)

    def run(self, steps: Callable[[], Iterator[RunProgress]], release: Callable[[], None]) -> None:
        """The thread's body: drain ``steps()``, record a failure, then ``release()`` the engine and end.

        The engine is released before the job reads as ended, so whoever waited for the end can start the
        next run at once.
        """
        try:
            for update in steps():
                self.report(update)
        except BaseException as exc:  # noqa: BLE001 - recorded for the watchers; the run wrote "failed"
            log.warning("Evaluation %s failed: %s: %s", self.run_id or self.kind, type(exc).__name__, exc)
            self.error = exc
        finally:
            release()
            self._bump(_ended=True)

    # ------------------------------------------------------------------ readers

    def _changed_since(self, version: int) -> bool:
        return self._version != version

    def snapshot(self) -> JobState:
        """The job now."""
        with self._changed:
            latest = self._latest
            if self.error is not None:
                state = "failed"
            elif latest is not None:
                state = latest.state
            else:
                state = PREPARING
            return JobState(
                kind=self.kind,
                run_id=self.run_id,
                state=state,
                fraction=self._fraction,
                desc=self._desc,
                progress=latest,
                error=f"{self.error}" if self.error is not None else "",
                stopping=self._stopping and not self._ended,
                ended=self._ended,
                version=self._version,
            )

    @property
    def ended(self) -> bool:
        return self._ended

    def watch(self, interval: float = 0.5, heartbeat: float = 2.0) -> Iterator[JobState]:
        """Yield the job's state now, then after every change, until (and including) its end.

        Closing the iterator (a browser tab that went away) stops the watching, never the job.

        Args:
            interval: the longest wait for a change before looking again.
            heartbeat: yield the unchanged state after this many seconds too, so a consumer that checks
                for a closed client between items (Gradio) finds out soon.
        """
        seen, sent = -1, 0.0
        while True:
            state = self.snapshot()
            now = time.monotonic()
            if state.version != seen or now - sent >= heartbeat:
                seen, sent = state.version, now
                yield state
            if state.ended:
                return
            with self._changed:
                self._changed.wait_for(partial(self._changed_since, seen), timeout=interval)

    def wait(self, timeout: float | None = None) -> RunProgress:
        """Block until the job ends.

        Returns:
            The run's final progress (state "done" or "stopped", the summary filled).

        Raises:
            TimeoutError: still running after ``timeout`` seconds.
            Whatever ended the job, when it failed (InputError, AudioError, ...).
        """
        with self._changed:
            if not self._changed.wait_for(lambda: self._ended, timeout=timeout):
                raise TimeoutError(f"Evaluation {self.run_id or self.kind} is still running after {timeout} s.")
        if self.error is not None:
            raise self.error
        if self._latest is None:
            raise LabError(f"Evaluation {self.run_id or self.kind} ended without a result.")
        return self._latest


__all__ = ["JOB_KINDS", "PREPARING", "EvalJob", "JobState"]
