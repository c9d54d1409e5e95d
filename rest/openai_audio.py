"""The OpenAI-compatible audio API: routes under ``/v1``, on the app's own server, engines and GPU lock.

``create_api()`` returns a Starlette router that ``main_launcher.launch_kwargs`` mounts at ``/v1`` through
Gradio's ``app_kwargs`` (routes given to the FastAPI app when it is made come before Gradio's own). Who may call
it is ``web_guard``'s decision (``rest.auth``), taken before a route runs.

- ``POST /v1/audio/speech``: JSON {model, input, voice, response_format, speed, stream_format; extensions
  ``language`` (auto-detected when absent), ``seed``, ``sample_rate`` and ``retakes`` (each sentence checked by
  Whisper and retaken up to that many takes)}; the workspace's pronunciation map applies. The whole file, or with ``stream_format`` "audio" the
  encoded audio as it is generated (chunked transfer), or "sse" (``speech.audio.delta`` / ``speech.audio.done``).
- ``POST /v1/audio/transcriptions`` and ``/v1/audio/translations``: multipart {file, model, language (not for
  translations), prompt, response_format, temperature, timestamp_granularities[]}.
- ``GET /v1/models``, ``/v1/models/{id}``, ``/v1/audio/models`` and ``/v1/audio/voices`` (Open WebUI's lists).

Model work runs in the thread pool and waits for the shared GPU lock at most ``api_busy_timeout`` seconds
(503 + Retry-After); more than ``api_max_waiting`` waiting requests get 429. A client that goes away cancels
its synthesis.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, Router

from config import Settings
from engines import Engines
from engines.core.errors import LabError
from rest import catalog, formats, schemas, transcription
from rest.errors import APIError, bad_request, busy, error_body, from_exception, too_large

if TYPE_CHECKING:
    from engines.tts.pronounce import PronunciationMap
    from engines.tts.retakes import RetakeChecker

log = logging.getLogger(__name__)

JSON_BODY_LIMIT = 1 << 20  # a speech request is a few KB of JSON; more is not one
OPENAI_SPEED = (0.25, 4.0)  # what OpenAI accepts; XTTS's own range (OPTION_RANGES) is narrower: clamped to it


class GPUGate:
    """Waiting for the engines' GPU lock with a deadline, and a cap on how many requests wait at once."""

    def __init__(self, lock: Any, timeout: float, max_waiting: int) -> None:
        self.lock, self.timeout, self.max_waiting = lock, float(timeout), int(max_waiting)
        self._waiting = 0
        self._count = threading.Lock()

    def _acquire(self) -> None:
        with self._count:
            if self._waiting >= self.max_waiting:
                raise busy(
                    429,
                    f"{self._waiting} requests are already waiting for the GPU (api_max_waiting). Try again shortly.",
                )
            self._waiting += 1
        try:
            acquired = self.lock.acquire(timeout=self.timeout)
        finally:
            with self._count:
                self._waiting -= 1
        if not acquired:
            raise busy(
                503,
                f"The GPU stayed busy for {self.timeout:g} s (another request, or a job started from the page; "
                "api_busy_timeout). Try again shortly.",
            )

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the GPU lock (in the calling thread; the engines take it again re-entrantly)."""
        self._acquire()
        try:
            yield
        finally:
            self.lock.release()

    def wait_free(self) -> None:
        """Wait until the GPU is free, without keeping it (for a stream, whose own thread takes the lock)."""
        self._acquire()
        self.lock.release()


_GATES: weakref.WeakKeyDictionary[Engines, GPUGate] = weakref.WeakKeyDictionary()  # one per engine set
_GATES_LOCK = threading.Lock()


def _gate(engines: Engines) -> GPUGate:
    """The busy gate of this engine set, shared by every request it serves."""
    with _GATES_LOCK:
        gate = _GATES.get(engines)
        if gate is None:
            settings = engines.settings
            gate = _GATES[engines] = GPUGate(engines.gpu_lock, settings.api_busy_timeout, settings.api_max_waiting)
        return gate


def error_response(exc: APIError) -> Response:
    body = error_body(exc.message, exc.type, exc.param, exc.code)
    return Response(body, status_code=exc.status, media_type="application/json", headers=exc.headers)


Endpoint = Callable[[Request], Awaitable[Response]]


def _guarded(where: str, fn: Endpoint) -> Endpoint:
    """Every failure of an endpoint becomes OpenAI's error shape (``rest.errors.from_exception``)."""

    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except Exception as exc:  # noqa: BLE001 - every failure must reach the client in OpenAI's shape
            return error_response(from_exception(exc, where))

    return endpoint


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 beyond ``limit`` bytes (by Content-Length, or while it arrives)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(f"The request body is {int(declared)} bytes; the limit is {limit}.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"The request body is over the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _limited(request: Request, limit: int) -> Request:
    """The same request, whose body stream answers 413 once it passes ``limit`` bytes (uploads)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(
            f"The upload is {int(declared) / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB (max_upload_mb)."
        )
    seen = 0

    async def receive() -> MutableMapping[str, Any]:
        nonlocal seen
        message = await request.receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise too_large(f"The upload is over the limit of {limit / 1e6:.0f} MB (max_upload_mb).", "file")
        return message

    return Request(request.scope, receive)


async def _run(request: Request, work: Callable[[], Any], cancel: threading.Event | None = None) -> Any:
    """``work()`` in the thread pool; a client that disconnects meanwhile sets ``cancel``."""
    task = asyncio.ensure_future(run_in_threadpool(work))
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.5)
        if done:
            return task.result()
        if cancel is not None and not cancel.is_set() and await request.is_disconnected():
            log.info("API client went away: cancelling %s", request.url.path)
            cancel.set()


# ----------------------------------------------------------------------------------------------- speech


@dataclasses.dataclass(frozen=True)
class SpeechRequest:
    """A checked ``/v1/audio/speech`` body."""

    text: str
    model: Any
    voice: Any
    response_format: str
    speed: float  # what XTTS gets (clamped into OPTION_RANGES["speed"])
    speed_asked: float
    stream_format: str | None
    language: str | None
    seed: int | None
    sample_rate: int | None = None  # resample the answer to this rate (extension; None = the model's own)
    retakes: int = 0  # check each sentence with Whisper, up to this many takes (extension; 0 = off)


def parse_speech(body: Any, max_chars: int) -> SpeechRequest:
    """Check a speech request's fields before any model work (``schemas.SpeechBody``, then the ranges).

    Raises:
        APIError: 400 naming the field and what is allowed (422 for ``sample_rate``).
    """
    from engines.core.errors import InputError
    from engines.core.names import speech_language
    from engines.core.options import OPTION_RANGES

    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object with model, input and voice.")
    try:
        checked = schemas.SpeechBody.model_validate(body)
    except ValidationError as exc:
        raise schemas.refusal(exc) from None
    text = checked.input
    if text is None or not text.strip():
        raise bad_request("'input' is required: the text to speak.", "input")
    if len(text) > max_chars:
        raise bad_request(
            f"'input' is {len(text)} characters long; the limit is {max_chars} (api_max_input_chars / max_text_chars). "
            "Split the text into several requests.",
            "input",
            "string_above_max_length",
        )
    schemas.check_sample_rate(checked.sample_rate)
    fmt = checked.response_format or formats.DEFAULT_FORMAT
    speed = 1.0 if checked.speed is None else checked.speed
    if not OPENAI_SPEED[0] <= speed <= OPENAI_SPEED[1]:
        raise bad_request(
            f"'speed' must be a number from {OPENAI_SPEED[0]} to {OPENAI_SPEED[1]}; got {speed!r}.", "speed"
        )
    low, high = OPTION_RANGES["speed"]
    language = checked.language
    if language is not None:
        try:
            language = speech_language(language) if language.strip() else None  # the model's own list decides
        except InputError as exc:
            raise bad_request(str(exc), "language") from exc
    voice = checked.voice
    return SpeechRequest(
        text=text,
        model=checked.model,
        voice={"id": voice.id} if isinstance(voice, schemas.VoiceRef) else voice,
        response_format=fmt,
        speed=float(min(max(speed, low), high)),
        speed_asked=float(speed),
        stream_format=checked.stream_format,
        language=language,
        seed=checked.seed,
        sample_rate=checked.sample_rate,
        retakes=checked.retakes or 0,
    )


@dataclasses.dataclass
class _SpeechPlan:
    """What a checked request will speak with: model, voice, language and options."""

    model_id: str
    voice: catalog.Voice
    language: str
    language_source: str
    options: Any  # engines.core.options.TTSOptions
    notices: list[str] = dataclasses.field(default_factory=list)  # what the TTS tab would warn about


def model_languages(engines: Engines, model_id: str) -> list[str] | None:
    """The languages the model speaks (its config.json; None = XTTS v2's 17, e.g. the base not downloaded)."""
    try:
        return engines.tts.models.languages(model_id)
    except LabError:
        return None


def _plan_speech(engines: Engines, req: SpeechRequest) -> _SpeechPlan:
    """Resolve model, voice and language, and check the text as synthesis will (no model load, no lock)."""
    from engines.core.errors import InputError
    from engines.tts.checks import check_language, check_request, text_notices
    from rest.language import speech_language

    settings = engines.settings
    model_id = catalog.tts_model(engines.tts, req.model)
    voice = catalog.resolve_voice(engines.tts, model_id, req.voice, settings)
    language, source = speech_language(req.text, req.language, settings.generation.language)
    changes: dict[str, Any] = {"language": language, "speed": req.speed}
    if req.seed is not None:
        changes["seed"] = req.seed
    options = dataclasses.replace(settings.generation, **changes)
    try:  # the model's own languages decide (a fine-tune may speak one more, issue 21)
        check_language(language, model_languages(engines, model_id))
    except InputError as exc:
        raise bad_request(str(exc), "language") from exc
    check_request(  # text, language, options: refused before waiting for the GPU
        req.text,
        options,
        reference=list(voice.reference),
        speaker=voice.speaker,
        max_chars=settings.max_text_chars,
        has_model_reference=True,
        languages=model_languages(engines, model_id),
    )
    notices = text_notices(req.text, language)
    if source == "default" and req.language is None:
        notices.append(f"No language given and none recognised in the text: spoken as {language!r} (the default).")
    return _SpeechPlan(model_id, voice, language, source, options, notices)


def _speech_headers(
    plan: _SpeechPlan, req: SpeechRequest, sample_rate: int, notices: list[str] | None = None
) -> dict[str, str]:
    headers = {
        "X-Model": plan.model_id,
        "X-Voice": _latin1(plan.voice.label),
        "X-Language": plan.language,
        "X-Language-Source": plan.language_source,  # request | detected | default
        "X-Sample-Rate": str(sample_rate),
        "Cache-Control": "no-store",
    }
    if req.response_format == "pcm":
        headers |= {"X-Sample-Format": "s16le", "X-Channels": "1"}
    if req.speed != req.speed_asked:
        headers["X-Speed"] = f"{req.speed:g}"  # clamped into XTTS's range
    said = list(dict.fromkeys([*plan.notices, *(notices or [])]))  # the engine's own notices, once each
    if said:
        headers["X-Notice"] = _latin1(" ".join(" ".join(said).split()))[:1000]
    return headers


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def _media_type(req: SpeechRequest, sample_rate: int) -> str:
    if req.response_format == "pcm":
        return f"audio/pcm;rate={sample_rate};channels=1"
    return formats.FORMATS[req.response_format].media_type


def _json_content_type(request: Request) -> None:
    """Refuse a speech body not declared as JSON: a web page can send ``text/plain`` across sites without asking
    first (no CORS preflight), but not ``application/json``.

    Raises:
        APIError: 415.
    """
    declared = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if declared != "application/json":
        raise APIError(
            415,
            f"Send the body as JSON with 'Content-Type: application/json' (got {declared or 'none'!r}).",
            "invalid_request_error",
            None,
            "unsupported_media_type",
        )


def _resampler(req: SpeechRequest, sample_rate: int) -> Callable[[Any, bool], Any]:
    """Chunks at the model's rate -> chunks at the asked ``sample_rate`` (one soxr stream: no seams)."""
    if req.sample_rate is None or req.sample_rate == sample_rate:
        return lambda chunk, last: chunk
    import soxr

    stream = soxr.ResampleStream(sample_rate, req.sample_rate, 1, dtype="float32", quality="HQ")

    def convert(chunk: Any, last: bool) -> Any:
        chunk = np.nan_to_num(np.asarray(chunk, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        return stream.resample_chunk(chunk, last=last)

    return convert


def _retake_checker(engines: Engines, req: SpeechRequest) -> RetakeChecker | None:
    """The ``retakes`` extension: each sentence heard by the loaded Whisper, retaken up to that many takes."""
    if not req.retakes:
        return None
    from engines.tts.retakes import RetakeChecker, RetakeOptions

    return RetakeChecker.whisper(engines.asr, RetakeOptions(takes=req.retakes))


def _pronunciation(settings: Settings) -> PronunciationMap | None:
    """The workspace's pronunciation map, applied to the API's speech as to the TTS tab's (None when empty)."""
    from engines.tts import pronounce

    return pronounce.load(settings.workspace_dir) or None


async def speech(request: Request, engines: Engines) -> Response:
    settings = engines.settings
    _json_content_type(request)
    raw = await _body(request, JSON_BODY_LIMIT)
    req = parse_speech(schemas.parse_json(raw), min(settings.api_max_input_chars, settings.max_text_chars))
    plan = await run_in_threadpool(_plan_speech, engines, req)
    checker = _retake_checker(engines, req)
    if req.stream_format is not None:  # with retakes, each sentence is checked before it is sent
        return await _speech_stream(request, engines, req, plan, checker)
    cancel = threading.Event()

    def work() -> tuple[Any, int, bytes]:
        with _gate(engines).hold():
            result = engines.tts.synthesize(
                req.text,
                model_id=plan.model_id,
                reference=list(plan.voice.reference),
                speaker=plan.voice.speaker,
                options=plan.options,
                save=settings.api_save_outputs,
                cancel=cancel,
                retakes=checker,
                pronunciation=_pronunciation(settings),
            )
        rate = req.sample_rate or result.sample_rate
        audio = _resampler(req, result.sample_rate)(result.audio, True)
        return result, rate, formats.encode(audio, rate, req.response_format)

    result, rate, data = await _run(request, work, cancel)
    headers = _speech_headers(plan, req, rate, result.notices) | {"X-Audio-Seconds": f"{result.audio_seconds:.3f}"}
    if result.retakes is not None:  # sentences retaken / sentences checked
        headers["X-Retakes"] = f"{result.retakes['retaken']}/{result.retakes['sentences_checked']}"
    return Response(data, media_type=_media_type(req, rate), headers=headers)


def _usage(text: str, result: Any) -> dict[str, int]:
    """OpenAI's ``usage`` of a speech: text tokens in, audio tokens out.

    XTTS's tokens are not OpenAI's; the counts are honest estimates of the same quantities: the input's
    characters in fours (OpenAI's rule of thumb for text tokens) and XTTS's audio codes (21.5 per second:
    1024 samples each at 22.05 kHz).
    """
    input_tokens = max(1, round(len(text) / 4))
    output_tokens = round(float(result.audio_seconds) * 22050 / 1024)
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


async def _speech_stream(
    request: Request, engines: Engines, req: SpeechRequest, plan: _SpeechPlan, checker: RetakeChecker | None = None
) -> Response:
    """Start the stream in a worker thread; answer an error as JSON when it fails before the first byte."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancel = threading.Event()

    def put(kind: str, payload: Any = None) -> None:
        loop.call_soon_threadsafe(events.put_nowait, (kind, payload))

    def work() -> None:
        encoder = None
        try:
            stream = engines.tts.synthesize_stream(
                req.text,
                model_id=plan.model_id,
                reference=list(plan.voice.reference),
                speaker=plan.voice.speaker,
                options=plan.options,
                save=engines.settings.api_save_outputs,
                cancel=cancel,
                pronunciation=_pronunciation(engines.settings),
                retakes=checker,
            )
            _gate(engines).wait_free()
            with stream:
                chunk = stream.next_chunk()  # loads the model: errors up to here still get a JSON answer
                rate = req.sample_rate or stream.sample_rate
                convert = _resampler(req, stream.sample_rate)
                encoder = formats.StreamEncoder(req.response_format, rate, lambda b: put("data", b))
                put("start", rate)
                while chunk is not None:
                    encoder.push(convert(chunk, False))
                    chunk = stream.next_chunk()
                tail = convert(np.zeros(0, dtype=np.float32), True)
                if len(tail):
                    encoder.push(tail)
                encoder.finish()
                encoder = None
                put("end", stream.result)
        except BaseException as exc:  # noqa: BLE001 - handed to the response, which reports it
            put("error", exc)
        finally:
            if encoder is not None:
                encoder.close()

    worker = threading.Thread(target=work, name="api-speech-stream", daemon=True)
    worker.start()
    kind, payload = await events.get()
    if kind == "error":
        cancel.set()
        raise payload
    sample_rate = payload
    sse = req.stream_format == "sse"

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                kind, payload = await events.get()
                if kind == "data" and payload:
                    yield (
                        _sse({"type": "speech.audio.delta", "audio": base64.b64encode(payload).decode()})
                        if sse
                        else payload
                    )
                elif kind == "end":
                    if sse:
                        yield _sse(
                            {
                                "type": "speech.audio.done",
                                "usage": _usage(req.text, payload),
                                "audio_seconds": round(payload.audio_seconds, 3),  # an extension
                            }
                        )
                    return
                elif kind == "error":
                    # the status line is sent: the client sees a cut stream (audio) or an error event (sse)
                    err = from_exception(payload, "speech stream")
                    if sse:
                        yield _sse(
                            {
                                "type": "error",
                                "error": json.loads(error_body(err.message, err.type, err.param, err.code))["error"],
                            }
                        )
                    return
        finally:
            cancel.set()  # a client that went away (or the end): the engine stops and frees the GPU

    headers = _speech_headers(plan, req, sample_rate)
    media_type = "text/event-stream" if sse else _media_type(req, sample_rate)
    return StreamingResponse(body(), media_type=media_type, headers=headers)


# ----------------------------------------------------------------------------------------------- transcription


def _temperature(raw: str | None) -> float:
    if raw is None or not raw.strip():
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise bad_request(f"'temperature' must be a number from 0 to 1; got {raw[:40]!r}.", "temperature")
    return value


def upload_name(filename: str | None) -> str:
    """The client's file name as a safe local name: its last part, printable, at most 100 characters (the
    extension kept, for the decoder), "audio" when nothing is left."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in '<>:"|?*').strip(" .")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        name = name.encode("utf-8", "replace").decode("utf-8")
    if len(name) > 100:
        stem, dot, suffix = name.rpartition(".")
        name = stem[:90] + dot + suffix[:9] if dot and len(suffix) < 10 else name[:100]
    return name or "audio"


async def _form(request: Request, limit: int) -> Any:
    """The multipart form, its problems (two files, too many fields, a part over 1 MB, no boundary, garbage)
    answered 400 naming what is wrong."""
    from starlette.exceptions import HTTPException

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("Send the audio as multipart/form-data with a 'file' field.", "file")
    try:
        return await _limited(request, limit).form(max_files=1, max_fields=20)
    except HTTPException as exc:  # starlette's MultiPartException, raised as 400 inside an app
        raise bad_request(f"The multipart form could not be read: {exc.detail}") from None
    except (ValueError, KeyError, UnicodeDecodeError, AssertionError) as exc:
        raise bad_request(f"The multipart form could not be read ({type(exc).__name__}).") from None


def _form_fields(form: Any) -> tuple[schemas.TranscriptionForm, list[str]]:
    """The text fields, checked by ``schemas.TranscriptionForm``, and the timestamp granularities."""
    fields: dict[str, Any] = {}
    for name in schemas.TranscriptionForm.model_fields:
        values = [v for v in form.getlist(name) if not isinstance(v, UploadFile)]
        if len(values) > 1:
            raise bad_request(f"'{name}' is given {len(values)} times; give it once.", name)
        if values:
            fields[name] = str(values[0]).strip() or None
    try:
        checked = schemas.TranscriptionForm.model_validate(fields)
    except ValidationError as exc:
        raise schemas.refusal(exc) from None
    granularities = [
        str(g) for g in form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities")
    ]
    return checked, granularities


async def transcribe(request: Request, engines: Engines, task: str) -> Response:
    from engines.asr.engine import ASROptions

    settings = engines.settings
    limit = settings.max_upload_mb * 1_000_000 + 1_000_000  # the file plus the other fields
    form = await _form(request, limit)
    try:
        uploads = [v for v in form.getlist("file") if isinstance(v, UploadFile)]
        if not uploads:
            raise bad_request("'file' is required: the audio to transcribe.", "file")
        fields, granularities = _form_fields(form)
        public_id, model_id = catalog.asr_model(engines.asr, fields.model)
        fmt, granular = transcription.check_format(fields.response_format, granularities, stream=fields.stream)
        temperature = _temperature(fields.temperature)
        options = ASROptions(
            language=fields.language if task == "transcribe" else None,
            task=task,
            word_timestamps="word" in granular,
            temperature=temperature,
            # OpenAI: 0 = climb the fallback ladder; another value = that temperature only
            temperature_increment=ASROptions.temperature_increment if temperature == 0.0 else None,
            initial_prompt=fields.prompt,
        )
        # the user's file name inside a folder of its own: messages name their file, not a temp name
        folder = Path(tempfile.mkdtemp(dir=settings.workspace_sub("cache", "api"), prefix=f"upload-{os.getpid()}-"))
        path = folder / upload_name(uploads[0].filename)
        with path.open("wb") as handle:
            while chunk := await uploads[0].read(1 << 20):
                handle.write(chunk)
    finally:
        await form.close()

    def work() -> Any:
        try:
            engines.asr.check_language(model_id, options.language, task)  # before waiting for the GPU
            with _gate(engines).hold():
                return engines.asr.transcribe_file(path, options, model_id)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    result = await _run(request, work)
    headers = {"X-Model": public_id}
    notice = getattr(result, "notice", None)
    if notice:
        headers["X-Notice"] = _latin1(" ".join(str(notice).split()))[:500]
    if fields.stream:
        return StreamingResponse(_transcript_events(result), media_type="text/event-stream", headers=headers)
    data, media_type = transcription.render(result, fmt, task, granular)
    return Response(data, media_type=media_type, headers=headers)


async def _transcript_events(result: Any) -> AsyncIterator[bytes]:
    """OpenAI's streamed transcription: one ``transcript.text.delta`` per segment, then ``transcript.text.done``."""
    for i, segment in enumerate(result.segments):
        text = segment.text if i else segment.text.lstrip()
        if text:
            yield _sse({"type": "transcript.text.delta", "delta": text})
    yield _sse({"type": "transcript.text.done", "text": result.text})


def clean_uploads(settings: Any) -> list[Path]:
    """Remove API uploads left behind by a process that died mid-request (``create_api`` calls it at start), as
    ``engines.datasets.engine.clean_staging`` does for dataset builds: uploads of live processes stay.

    Returns:
        What was removed.
    """
    from engines.core.process import process_exists

    folder = settings.workspace_dir / "cache" / "api"
    removed = []
    for leftover in sorted(folder.glob("upload-*")) if folder.is_dir() else []:
        match = re.match(r"upload-(\d+)-", leftover.name)
        pid = int(match.group(1)) if match else None
        if pid is not None and (pid == os.getpid() or process_exists(pid)):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    if removed:
        log.info("Removed %d API upload(s) left by an earlier run from %s", len(removed), folder)
    return removed


# ----------------------------------------------------------------------------------------------- lists


def _model_ids(engines: Engines) -> list[str]:
    """Every id a client may send: the aliases, TTS models, and ASR models by their public ids (never a path)."""
    ids = [*catalog.TTS_ALIASES, *(m for _, m in engines.tts.list_models())]
    ids += [*catalog.ASR_ALIASES, *(public for public, _ in catalog.asr_models(engines.asr))]
    return list(dict.fromkeys(ids))


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "xtts-lab"}


async def list_models(request: Request, engines: Engines) -> Response:
    ids = await run_in_threadpool(_model_ids, engines)
    return JSONResponse({"object": "list", "data": [_model(m) for m in ids]})


async def get_model(request: Request, engines: Engines) -> Response:
    model_id = request.path_params["model"]
    if model_id not in await run_in_threadpool(_model_ids, engines):
        raise APIError(
            404,
            f"The model {catalog.shown(model_id)} does not exist here (GET /v1/models lists them).",
            "invalid_request_error",
            "model",
            "model_not_found",
        )
    return JSONResponse(_model(model_id))


async def audio_models(request: Request, engines: Engines) -> Response:
    ids = [*catalog.TTS_ALIASES, *(m for _, m in await run_in_threadpool(engines.tts.list_models))]
    return JSONResponse({"models": [{"id": m} for m in dict.fromkeys(ids)]})


async def audio_voices(request: Request, engines: Engines) -> Response:
    listed = await run_in_threadpool(catalog.voices, engines.tts, engines.settings)
    return JSONResponse({"voices": listed})


async def unknown(request: Request, engines: Engines) -> Response:
    raise APIError(
        404, f"No API route {request.method} {request.url.path}.", "invalid_request_error", None, "unknown_url"
    )


# ----------------------------------------------------------------------------------------------- the router


def create_api(engines: Engines) -> Router:
    """The ``/v1`` routes (mount them at ``/v1``).

    Args:
        engines: the engine set to serve (the app's own, so both share its models and GPU lock).

    Returns:
        A Starlette router; every answer it gives for a failure is in OpenAI's error shape.
    """

    clean_uploads(engines.settings)

    def bind(where: str, fn: Callable[[Request, Any], Awaitable[Response]]) -> Endpoint:
        async def call(request: Request) -> Response:
            return await fn(request, engines)

        return _guarded(where, call)

    async def transcriptions(request: Request, eng: Engines) -> Response:
        return await transcribe(request, eng, "transcribe")

    async def translations(request: Request, eng: Engines) -> Response:
        return await transcribe(request, eng, "translate")

    every = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Router(
        routes=[
            Route("/models", bind("GET /v1/models", list_models), methods=["GET"]),
            Route("/models/{model:path}", bind("GET /v1/models/{id}", get_model), methods=["GET"]),
            Route("/audio/speech", bind("POST /v1/audio/speech", speech), methods=["POST"]),
            Route("/audio/transcriptions", bind("POST /v1/audio/transcriptions", transcriptions), methods=["POST"]),
            Route("/audio/translations", bind("POST /v1/audio/translations", translations), methods=["POST"]),
            Route("/audio/models", bind("GET /v1/audio/models", audio_models), methods=["GET"]),
            Route("/audio/voices", bind("GET /v1/audio/voices", audio_voices), methods=["GET"]),
            Route("/{path:path}", bind("/v1", unknown), methods=every),
        ]
    )


__all__ = ["GPUGate", "SpeechRequest", "create_api", "parse_speech"]
