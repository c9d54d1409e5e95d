"""OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``, and which status each failure gets.

User errors come from the engines (``engines.core.errors``) with a message written for the user; they keep it. Only
an exception outside that family is a bug: 500, logged with its traceback.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5  # what a busy answer tells the client to wait before trying again


@dataclass
class APIError(Exception):
    """A refusal the API sends as is (status, OpenAI's error fields, extra headers such as Retry-After)."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> bytes:
    """The JSON body of an error answer."""
    return json.dumps({"error": {"message": message, "type": type, "param": param, "code": code}}).encode()


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, "invalid_request_error", param, code)


def not_found(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(404, message, "invalid_request_error", param, code)


def too_large(message: str, param: str | None = None) -> APIError:
    return APIError(413, message, "invalid_request_error", param, "request_too_large")


def busy(status: int, message: str) -> APIError:
    """429 (too many requests waiting) or 503 (waited too long for the GPU), both with Retry-After."""
    kind, code = ("rate_limit_error", "rate_limit_exceeded") if status == 429 else ("server_error", "server_busy")
    return APIError(status, message, kind, None, code, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def from_exception(exc: BaseException, where: str) -> APIError:
    """The answer for any failure of a request; logs one line for a user error, the traceback for a bug.

    Mapping: ``AudioTooLargeError`` 413; ``InputError`` / ``AudioError`` 400; ``MissingWeightsError`` 404
    (``model_not_found``: the model is known but its weights are not here); ``BusyError`` 503 + Retry-After;
    ``GPUOutOfMemoryError`` and other ``LabError`` (a full disk, a missing language package) 503; anything
    else 500.
    """
    from engines.core.errors import (
        AudioTooLargeError,
        BusyError,
        CancelledError,
        GPUOutOfMemoryError,
        InputError,
        LabError,
        MissingWeightsError,
    )

    if isinstance(exc, APIError):
        if exc.status >= 500:
            log.warning("%s: %s", where, exc.message)
        return exc
    message = str(exc)
    if isinstance(exc, LabError):
        log.warning("%s: %s", where, message)
    if isinstance(exc, AudioTooLargeError):
        return too_large(message, "file")
    if isinstance(exc, InputError):
        return bad_request(message)
    if isinstance(exc, MissingWeightsError):
        return not_found(message, "model", "model_not_found")
    if isinstance(exc, BusyError):
        return busy(503, message)
    if isinstance(exc, GPUOutOfMemoryError):
        return APIError(503, message, "server_error", None, "gpu_out_of_memory")
    if isinstance(exc, CancelledError):
        return APIError(503, message, "server_error", None, "cancelled")
    if isinstance(exc, LabError):
        return APIError(503, message, "server_error", None, "unavailable")
    log.error("Unexpected error in %s", where, exc_info=exc)
    return APIError(
        500,
        f"Unexpected error ({type(exc).__name__}: {exc}). The app is still running; its log has the details.",
        "server_error",
        None,
        "internal_error",
    )


__all__ = ["APIError", "RETRY_AFTER_SECONDS", "bad_request", "busy", "error_body", "from_exception", "not_found"]
