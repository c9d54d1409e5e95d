"""The thread and queue behind ``TTSEngine.synthesize_stream``: one producer thread, any consumer thread.

Torch-free and model-free: the engine hands in what generates (run in the producer thread, where it may
hold the GPU lock: an RLock is per thread, and Gradio or Starlette advance an iterator from whichever pool
thread is free) and what builds the result (run in the consumer thread once the last chunk was taken).
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from engines.core.errors import CancelledError, LabError

log = logging.getLogger(__name__)

QUEUE_CHUNKS = 256  # chunks a slow consumer may fall behind before generation waits for it (~4 min of audio)
CLOSE_WAIT_SECONDS = 30.0  # how long close() waits for the producer to let go of the GPU
POLL_SECONDS = 0.1  # how often blocked puts and gets look at the stop flag


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise ``CancelledError`` once the caller's ``cancel`` is set (plain and streamed synthesis alike)."""
    if cancel is not None and cancel.is_set():
        raise CancelledError("Generation was cancelled (the request was abandoned); nothing was saved.")


class StreamClosed(Exception):
    """The consumer closed the stream: the producer leaves quietly (raised by ``StreamFeed``)."""


class StreamFeed:
    """The producer's side of a stream: ``emit`` chunks, ``check`` between steps, ``stopping`` for a
    transformers stopping criterion (set on close or on the caller's cancel)."""

    def __init__(self, cancel: threading.Event | None, sample_rate: int) -> None:
        self.sample_rate = sample_rate  # the producer sets the model's real rate before its first chunk
        self.first_chunk_at: float | None = None  # time.perf_counter() when the first chunk was emitted
        self._cancel = cancel
        self._closed = threading.Event()
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self.stopping = _AnySet(self._closed, cancel)

    def check(self) -> None:
        """Raise ``StreamClosed`` once closed, ``CancelledError`` once the caller's cancel is set."""
        if self._closed.is_set():
            raise StreamClosed
        check_cancel(self._cancel)

    def emit(self, chunk: np.ndarray) -> None:
        """Hand one chunk to the consumer (waits while the queue is full; ``StreamClosed`` once closed)."""
        if self.first_chunk_at is None:
            self.first_chunk_at = time.perf_counter()
        self._put("chunk", chunk)

    def _put(self, kind: str, payload: Any) -> None:
        while True:
            if self._closed.is_set():
                raise StreamClosed
            try:
                self._queue.put((kind, payload), timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue


class _AnySet:
    """Set when any of its events is (the stream's close and the caller's cancel)."""

    def __init__(self, *events: threading.Event | None) -> None:
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


class SynthesisStream:
    """Iterator of float32 mono chunks (np.ndarray) at ``.sample_rate`` (24 kHz), in order; concatenated they
    are the whole audio (sentence pauses included).

    Made by ``TTSEngine.synthesize_stream``. The first ``next()`` starts the producer thread, which holds the
    GPU lock and feeds a bounded queue, so the stream may be advanced from any thread. ``result`` is set, and
    the WAV and sidecar saved, when the iterator is exhausted. ``close()`` stops early: generation ends,
    nothing is saved, and the GPU lock is free when it returns.
    """

    def __init__(
        self,
        generate: Callable[[StreamFeed], Any],
        finish: Callable[[np.ndarray, Any], Any],
        *,
        cancel: threading.Event | None = None,
        sample_rate: int = 24000,
    ) -> None:
        """
        Args:
            generate: ``generate(feed)`` runs in the producer thread, emits every chunk and returns what
                ``finish`` needs.
            finish: ``finish(audio, generated)`` runs in the consumer thread after the last chunk and
                returns the ``TTSResult`` (saving it when asked).
            cancel: the caller's cancel event (CancelledError from the iterator when set).
            sample_rate: the rate until the producer knows the model's own.
        """
        self.result: Any = None  # the TTSResult, once exhausted
        self._generate = generate
        self._finish = finish
        self._feed = StreamFeed(cancel, sample_rate)
        self._pieces: list[np.ndarray] = []
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._finished = False  # exhausted, failed or closed

    @property
    def sample_rate(self) -> int:
        return self._feed.sample_rate

    @property
    def finished(self) -> bool:
        """No more chunks will come (the end, an error already raised, or closed)."""
        return self._finished

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        chunk = self.next_chunk(None)
        if chunk is None:
            raise StopIteration
        return chunk

    def __enter__(self) -> SynthesisStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_chunk(self, timeout: float | None = None) -> np.ndarray | None:
        """The next chunk, waiting at most ``timeout`` seconds (None = until one comes).

        Returns:
            The chunk, or None when none came in time or the stream is over (see ``finished``); at the end
            ``result`` is set (and the files saved) before None is returned.

        Raises:
            The generation's error (CancelledError when the caller's ``cancel`` was set, InputError,
            GPUOutOfMemoryError, ...), once.
        """
        if self._finished:
            return None
        self._start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))
            try:
                kind, payload = self._feed._queue.get(timeout=wait)
                break
            except queue.Empty:
                if self._finished:  # closed from another thread meanwhile
                    return None
                worker = self._worker
                if worker is not None and not worker.is_alive() and self._feed._queue.empty():
                    self._finished = True
                    raise LabError(
                        "Speech streaming stopped without a result; the console log has the details."
                    ) from None
                if deadline is not None and time.monotonic() >= deadline:
                    return None
        if kind == "chunk":
            self._pieces.append(payload)
            return payload
        self._finished = True
        self._join()
        if kind == "error":
            raise payload
        audio = np.concatenate(self._pieces) if self._pieces else np.zeros(0, dtype=np.float32)
        self.result = self._finish(audio, payload)
        return None

    def close(self) -> None:
        """Stop early (the client went away): generation stops, nothing is saved, and the GPU lock is free
        when this returns (unless the producer is stuck for CLOSE_WAIT_SECONDS; logged)."""
        if self.result is not None or (self._finished and self._worker is None):
            return
        self._finished = True
        self._feed._closed.set()
        self._join()

    def _join(self) -> None:
        worker = self._worker
        if worker is None or worker is threading.current_thread():
            return
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        while worker.is_alive() and time.monotonic() < deadline:
            self._drain()  # a producer blocked on a full queue notices the close
            worker.join(POLL_SECONDS)
        if worker.is_alive():
            log.warning("TTS stream: the generating thread still runs %g s after close", CLOSE_WAIT_SECONDS)

    def _drain(self) -> None:
        while True:
            try:
                self._feed._queue.get_nowait()
            except queue.Empty:
                return

    def _start(self) -> None:
        with self._start_lock:
            if self._worker is not None:
                return
            # The copied context carries the caller's (e.g. Gradio's progress bar) into the producer.
            self._worker = threading.Thread(
                target=contextvars.copy_context().run, args=(self._run,), name="tts-stream", daemon=True
            )
            self._worker.start()

    def _run(self) -> None:
        feed = self._feed
        try:
            feed._put("done", self._generate(feed))
        except StreamClosed:
            log.info("TTS stream closed by its consumer: generation stopped, nothing saved")
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            try:
                feed._put("error", exc)
            except StreamClosed:
                pass


__all__ = ["StreamClosed", "StreamFeed", "SynthesisStream", "check_cancel"]
