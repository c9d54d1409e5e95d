"""User-facing errors. Pages turn these into ``gr.Error`` with the message as is."""

from __future__ import annotations


class LabError(Exception):
    """An error whose message is written for the user (what went wrong, what to do)."""


class InputError(LabError, ValueError):
    """Bad user input: empty text, unsupported language, a file that is not audio, ..."""


class AudioError(InputError):
    """An audio file that cannot be decoded or is unusable (empty, too short, silent)."""


class AudioTooLargeError(AudioError):
    """An audio file over the size limit, or too large to decode in memory (it may well be audio)."""


class MissingWeightsError(LabError, FileNotFoundError):
    """Model weights are neither on disk nor downloadable."""


class CancelledError(LabError):
    """The caller gave up on the job (a closed browser tab, a Stop): nothing was saved."""


class BusyError(LabError):
    """The resource is taken (a training run already running, a dataset in use, ...)."""


class GPUOutOfMemoryError(LabError, RuntimeError):
    """The GPU ran out of memory; the message says what to lower."""
