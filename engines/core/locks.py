"""The model locks: one per lane of model work (TTS, ASR), and ``DeviceLock`` over all of them for whoever needs the
whole device (the API's gate, training exports, separation, a test that wants the machine quiet).

Lanes exist so the eval loop can transcribe one batch while it synthesizes the next. They are split only where
the device has room for both models' working memory at once: the CPU. On CUDA both lanes are the same lock, as
before: two models' activations at once can run a GPU out of memory that either fits alone, and overlap there
(CUDA streams) is unmeasured here. A split lane does not share torch's random state: ASR sampling and model
building run under ``engines.core.rng.private_rng``, so a seeded synthesis gives the same audio either way.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType


class DeviceLock:
    """Holds every lane's lock (taken in one fixed order, so two holders cannot deadlock); re-entrant like them.

    It answers ``acquire(blocking, timeout)`` / ``release`` / ``with`` as a ``threading.RLock`` does.
    """

    def __init__(self, *lanes: threading.RLock) -> None:
        self.lanes = tuple(dict.fromkeys(lanes))  # the same lock twice is held once

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        held: list[threading.RLock] = []
        for lane in self.lanes:
            if not blocking:
                ok = lane.acquire(blocking=False)
            elif deadline is None:
                ok = lane.acquire()
            else:
                ok = lane.acquire(timeout=max(0.0, deadline - time.monotonic()))
            if not ok:
                for got in reversed(held):
                    got.release()
                return False
            held.append(lane)
        return True

    def release(self) -> None:
        for lane in reversed(self.lanes):
            lane.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


@dataclass(frozen=True)
class ModelLocks:
    """The locks of one engine set."""

    tts: threading.RLock  # XTTS, and the scoring models (SIM encoders, UTMOS) beside it
    asr: threading.RLock  # Whisper; the same object as ``tts`` when the lanes are joined
    device: DeviceLock | threading.RLock  # all lanes; the plain lock itself when they are joined

    @property
    def split(self) -> bool:
        return self.asr is not self.tts


def model_locks(device: str, split: bool | None = None) -> ModelLocks:
    """The locks for an engine set on ``device`` ("cpu", "cuda", "cuda:1", "mps").

    Args:
        device: the resolved device the models run on.
        split: True = TTS and ASR each get a lane, False = one lock for all; None = split on the CPU only.
    """
    if split is None:
        split = device == "cpu"
    tts = threading.RLock()
    if not split:
        return ModelLocks(tts, tts, tts)
    asr = threading.RLock()
    return ModelLocks(tts, asr, DeviceLock(tts, asr))
