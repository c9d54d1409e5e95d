"""Request bodies of the ``/v1`` API as pydantic schemas, and their failures in OpenAI's error shape.

A body that is not what OpenAI's API takes (a list where a string goes, a seed of 2**64, a lone UTF-16 surrogate,
JSON nested thousands deep) is the client's mistake: 400 naming the field, never a 500 with a traceback.
``sample_rate`` (an extension, as speaches has it) answers 422 outside 8-48 kHz, as speaches does.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from rest.errors import APIError, bad_request
from rest.formats import FORMATS

SEED_MAX = 2**32 - 1  # engines.core.options.OPTION_RANGES["seed"]: what the engine's generator takes
SAMPLE_RATES = (8000, 48000)  # the sample_rate extension's range (speaches: 8-48 kHz)
MAX_PROMPT_CHARS = 2000  # a transcription prompt is a few hundred tokens at most (Whisper keeps 224)
MAX_NESTING = 32  # JSON objects and arrays inside each other; a speech body needs 2


def _valid_unicode(value: Any) -> Any:
    """A string a client sent, refused when it holds a lone surrogate (it can be neither spoken nor written)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"holds an unpaired UTF-16 surrogate at position {exc.start}: not valid Unicode text"
            ) from None
    return value


Text = Annotated[StrictStr, Field(max_length=1_000_000)]
Number = StrictFloat  # accepts ints as floats; refuses bools and strings with "a valid number"


class VoiceRef(BaseModel):
    """OpenAI's custom-voice form: ``{"id": "..."}``."""

    model_config = ConfigDict(extra="ignore")
    id: StrictStr

    _unicode = field_validator("id")(_valid_unicode)


class SpeechBody(BaseModel):
    """``POST /v1/audio/speech``: OpenAI's fields, plus ``language``, ``seed``, ``sample_rate`` and ``retakes``."""

    model_config = ConfigDict(extra="ignore")  # OpenAI's "instructions" and the like: accepted, not used

    model: Text | None = None
    input: Text | None = None
    voice: Text | VoiceRef | None = None
    response_format: Literal[tuple(FORMATS)] | None = None  # type: ignore[valid-type]
    speed: Number | None = None
    stream_format: Literal["audio", "sse"] | None = None
    language: Text | None = None
    seed: Annotated[StrictInt, Field(ge=0, le=SEED_MAX)] | None = None
    sample_rate: StrictInt | None = None
    instructions: Text | None = None
    retakes: Annotated[StrictInt, Field(ge=0, le=10)] | None = None  # extension: most takes per sentence; 0 = off

    _unicode = field_validator("model", "input", "voice", "language", "instructions")(_valid_unicode)


class TranscriptionForm(BaseModel):
    """The text fields of ``POST /v1/audio/transcriptions`` (the file is checked on its own)."""

    model_config = ConfigDict(extra="ignore")  # include[], chunking_strategy: accepted, not used

    model: Text | None = None
    language: Annotated[StrictStr, Field(max_length=20)] | None = None
    prompt: Annotated[StrictStr, Field(max_length=MAX_PROMPT_CHARS)] | None = None
    response_format: StrictStr | None = None
    temperature: StrictStr | None = None
    stream: StrictBool = False

    _unicode = field_validator("model", "language", "prompt", "response_format")(_valid_unicode)

    @field_validator("stream", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        # multipart sends "true" / "false"
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", ""):
            return value.strip().lower() in ("true", "1")
        return value


def _what(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def refusal(exc: ValidationError) -> APIError:
    """The 400 (422 for ``sample_rate``) for a body the schema refused, naming the first bad field."""
    error = exc.errors(include_url=False)[0]
    field = str(error["loc"][0]) if error["loc"] else None
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("literal_error", "enum") and field is not None:
        message = f"{message}; got {_what(error.get('input'))}"
    elif field is not None and error["type"] not in ("value_error",):
        message = f"{message}; got {_what(error.get('input'))}"
    status = 422 if field == "sample_rate" else 400
    return APIError(status, f"'{field}': {message}." if field else f"{message}.", "invalid_request_error", field)


def parse_json(raw: bytes) -> Any:
    """A JSON body, refused with 400 when it is not JSON or nests deeper than ``MAX_NESTING``."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:  # counted before parsing: the parser itself recurses once per level
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_NESTING:
                raise bad_request(f"The JSON body nests deeper than {MAX_NESTING} levels; a request needs 2.")
        elif byte in (0x5D, 0x7D):
            depth -= 1
    try:
        return json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:
        if "integer string conversion" in str(exc):  # Python's digit cap; its message points at sys, not the client
            raise bad_request("The body is not valid JSON: a number in it has more than 4300 digits.") from exc
        raise bad_request(f"The body is not valid JSON ({exc}).") from exc


def check_sample_rate(value: int | None) -> None:
    """Raises: APIError 422 for a rate outside ``SAMPLE_RATES``."""
    if value is not None and not SAMPLE_RATES[0] <= value <= SAMPLE_RATES[1]:
        raise APIError(
            422,
            f"'sample_rate' must be from {SAMPLE_RATES[0]} to {SAMPLE_RATES[1]} Hz; got {value}.",
            "invalid_request_error",
            "sample_rate",
        )


__all__ = [
    "MAX_PROMPT_CHARS",
    "SAMPLE_RATES",
    "SpeechBody",
    "TranscriptionForm",
    "check_sample_rate",
    "parse_json",
    "refusal",
]
