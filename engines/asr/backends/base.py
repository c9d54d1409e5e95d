"""What an ASR backend does (``Backend``), and the shapes that cross the seam between it and the engine.

A backend turns decode requests into calls of one Whisper implementation and its results into
whisper.transcribe's shapes. It never judges its output: the voice-activity gate, the fallback ladder,
the loop guard and the thresholds live once, in ``engines.asr.guards`` and ``engines.asr.engine``, and apply
to every backend alike. The engine holds the GPU lock around every backend call that runs the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypedDict, TypeVar

import numpy as np

from engines.asr.options import ASROptions
from engines.asr.vad import SpeechCheck
from engines.core.device import oom_guard
from engines.core.errors import GPUOutOfMemoryError

M = TypeVar("M")  # a backend's loaded model (whisper.Whisper, faster_whisper.WhisperModel)

# whisper's and faster-whisper's defaults for word timestamps: punctuation joins the word it belongs to
PREPEND_PUNCTUATION = "\"'“¿([{-"
APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"
OOM_ADVICE = "Pick a smaller Whisper model, a smaller beam or batch, or unload the TTS model (System panel)."


class RawWord(TypedDict):
    """One word of a segment, as whisper.transcribe reports it."""

    start: float
    end: float
    word: str
    probability: float


class RawSegment(TypedDict, total=False):
    """One segment as whisper.transcribe reports it (``words`` only with word timestamps)."""

    seek: int  # the 30 s window it came from (segments of one window share it)
    tokens: list[int]
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float
    words: list[RawWord]


class RawTranscription(TypedDict):
    """A backend's transcription of one audio, in whisper.transcribe's result shape."""

    segments: list[RawSegment]
    language: str | None


class DecodeResult(Protocol):
    """One 30 s window decoded at one temperature (whisper's DecodingResult has these fields)."""

    @property
    def tokens(self) -> list[int]: ...
    @property
    def avg_logprob(self) -> float: ...
    @property
    def no_speech_prob(self) -> float: ...
    @property
    def compression_ratio(self) -> float: ...
    @property
    def temperature(self) -> float: ...


class TextTokenizer(Protocol):
    """What the batched path needs of a tokenizer: the end-of-text id and decoding ids to text."""

    @property
    def eot(self) -> int: ...
    def decode(self, tokens: list[int], /) -> str: ...


class Window(NamedTuple):
    """A clip under 30 s, sliced the way the backend's own transcribe slices it.

    The features are the backend's own type (a torch mel for openai-whisper, a numpy array for
    faster-whisper); the engine only hands them back to the backend that made them.
    """

    detect: Any  # the first 30 s of the padded features, as language detection sees them
    decode: Any  # the content frames zero-padded to 30 s, as decoding sees them
    seconds: float  # content duration (the segment's end), as transcribe reports it


@dataclass(frozen=True)
class DecodeRequest:
    """One long-form transcription, fully decided by the engine: the backend only carries it out."""

    options: ASROptions  # checked options (language normalised)
    temperatures: tuple[float, ...]  # the fallback ladder (one temperature when the quality rules are off)
    sample_len: int | None  # decoded-token cap per 30 s window; None = Whisper's 224
    thresholds: Mapping[str, float]  # whisper.transcribe's names: compression_ratio/logprob/no_speech_threshold
    speech: SpeechCheck  # where the voice-activity gate heard speech (clip timestamps, first speech)


class Backend(Protocol[M]):
    """One Whisper implementation: model ids, loading, decoding, provenance.

    Every method that takes a model takes one this backend loaded; the caller holds the GPU lock around
    ``transcribe``, ``detect_languages`` and ``decode_batch``.
    """

    name: str  # "openai-whisper", "faster-whisper": what provenance and labels call it
    batches_beam_search: bool  # False: beams > 1 must be decoded one clip per call

    def claims(self, model_id: str) -> bool:
        """Whether a model id names one of this backend's models (the registry's rule)."""
        ...

    def owns(self, model: object) -> bool:
        """Whether a loaded model is this backend's."""
        ...

    def list_models(self) -> list[tuple[str, str]]:
        """(label, model_id) pairs for the model picker."""
        ...

    def load(self, model_id: str, device: str) -> M:
        """Load a model (MissingWeightsError / InputError with what to do instead)."""
        ...

    def display_name(self, model_id: str) -> str:
        """What messages call the model."""
        ...

    def multilingual_alternative(self, model_id: str) -> str:
        """What to pick instead of this English-only model, for the refusal message."""
        ...

    def is_multilingual(self, model_id: str, resident: M | None) -> bool | None:
        """Whether the model has the multilingual vocabulary, without loading it when that is possible.

        ``resident`` is the model when it is the loaded one; None as the answer means only loading tells.
        """
        ...

    def random_weights(self, model_id: str) -> bool:
        """Whether the id is a random-weight test model, decided without loading it."""
        ...

    def quality_rules(self, model: M) -> bool:
        """Whether the fallback ladder and the loop guard apply (every trained model; not random test ones)."""
        ...

    def info(self, model: M) -> dict[str, str]:
        """The loaded model's backend, compute type and device."""
        ...

    def provenance(self, model_id: str) -> dict[str, Any]:
        """What a report records about the model: backend, library versions, weights file and SHA-256."""
        ...

    def transcribe(self, model: M, audio: np.ndarray, request: DecodeRequest) -> RawTranscription:
        """Transcribe a whole audio (30 s windows, the request's ladder, thresholds and clip timestamps)."""
        ...

    def window(self, model: M, audio: np.ndarray) -> Window | None:
        """A clip under 30 s as one window; None when it spans more."""
        ...

    def detect_languages(self, model: M, features: Sequence[Any]) -> list[str]:
        """The most likely language of each window (``Window.detect`` features), batched."""
        ...

    def tokenizer(self, model: M, language: str | None, task: str) -> TextTokenizer:
        """The tokenizer decode results of this language and task are read with."""
        ...

    def decode_batch(
        self, model: M, features: Sequence[Any], language: str, options: ASROptions, sample_len: int | None
    ) -> Sequence[DecodeResult]:
        """Decode windows (``Window.decode`` features) together at temperature 0, text only."""
        ...

    def decode_packed(
        self,
        model: M,
        features: Sequence[Any],
        frames: Sequence[int],
        language: str,
        options: ASROptions,
        sample_len: int | None,
    ) -> Sequence[tuple[DecodeResult, list[RawWord]]]:
        """``decode_batch``, plus each window's words with times (seconds from the window's start) from the
        cross-attention alignment over its first ``frames`` 10 ms frames; the encoder runs once per window."""
        ...


@contextlib.contextmanager
def oom_guard_any(what: str, advice: str) -> Iterator[None]:
    """oom_guard that also catches CTranslate2's CUDA out-of-memory, which is a RuntimeError, not torch's type."""
    with oom_guard(what, advice):
        try:
            yield
        except RuntimeError as exc:
            if "out of memory" not in str(exc).lower():
                raise
            raise GPUOutOfMemoryError(f"The GPU ran out of memory during {what}. {advice}") from exc


__all__ = [
    "APPEND_PUNCTUATION",
    "OOM_ADVICE",
    "PREPEND_PUNCTUATION",
    "Backend",
    "DecodeRequest",
    "DecodeResult",
    "RawSegment",
    "RawTranscription",
    "RawWord",
    "TextTokenizer",
    "Window",
    "oom_guard_any",
]
