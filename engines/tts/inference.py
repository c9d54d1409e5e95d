"""The calls into coqui's ``Xtts``: the generation keywords built once, its exceptions mapped once, seeding and
the stopping criterion that lets a caller cancel mid-sentence. Both plain and streamed synthesis go through here.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import torch

from engines.core.errors import InputError
from engines.core.options import TTSOptions
from engines.tts.checks import language_error

if TYPE_CHECKING:
    from TTS.tts.models.xtts import Xtts

# Streaming: coqui's own inference_stream defaults, passed explicitly (one place to change them).
STREAM_CHUNK_TOKENS = 20  # GPT audio tokens per streamed chunk (~0.9 s of speech)
STREAM_OVERLAP_SAMPLES = 1024  # crossfade between consecutive chunks of one sentence (at 24 kHz)


class StopFlag(Protocol):
    """Anything with ``is_set()``: a threading.Event, a stream's ``stopping``."""

    def is_set(self) -> bool: ...


def inference_kwargs(model: Xtts, options: TTSOptions, stop: StopFlag | None) -> dict[str, Any]:
    """The keywords of ``Xtts.inference`` and ``Xtts.inference_stream`` after the text, language and voice.

    Every option is passed: coqui's method defaults (temperature 0.75, repetition penalty 10.0) are not
    XttsConfig's. Text splitting is ours (``engines.tts.textsplit``), so coqui's is off.

    Args:
        model: the loaded model (its GPT caps the token count).
        options: the request's generation settings.
        stop: when given, GPT generation ends within one token step once it is set.
    """
    kwargs: dict[str, Any] = {
        "temperature": options.temperature,
        "length_penalty": options.length_penalty,
        "repetition_penalty": options.repetition_penalty,
        "top_k": options.top_k,
        "top_p": options.top_p,
        "do_sample": True,
        "speed": options.speed,
        "enable_text_splitting": False,
    }
    if options.max_audio_tokens is not None:
        _quiet_transformers()
        kwargs["max_new_tokens"] = int(min(options.max_audio_tokens, model.gpt.max_gen_mel_tokens))
    if stop is not None:
        kwargs["stopping_criteria"] = _cancel_criteria(stop)
    return kwargs


@contextlib.contextmanager
def coqui_errors(language: str, chunk: str) -> Iterator[None]:
    """Turn what coqui raises for one piece of text into errors the user can act on."""
    try:
        yield
    except ImportError as exc:  # coqui's text front end imports language packages lazily
        raise language_error(language, exc) from exc
    except AssertionError as exc:  # coqui asserts on > 400 text tokens
        raise InputError(f"A sentence is too long for XTTS ({len(chunk)} characters); split it up.") from exc


def speak(
    model: Xtts, chunk: str, language: str, latent: torch.Tensor, embedding: torch.Tensor, kwargs: dict[str, Any]
) -> np.ndarray:
    """One piece of text through ``Xtts.inference``: float32 mono at the model's output rate."""
    with coqui_errors(language, chunk):
        out = model.inference(chunk, language, latent, embedding, **kwargs)
    return np.asarray(out["wav"], dtype=np.float32).reshape(-1)


def speak_stream(
    model: Xtts, chunk: str, language: str, latent: torch.Tensor, embedding: torch.Tensor, kwargs: dict[str, Any]
) -> Generator[np.ndarray, None, None]:
    """One piece of text through ``Xtts.inference_stream``: float32 chunks, crossfaded by coqui's handle_chunks."""
    with coqui_errors(language, chunk):
        for wav in model.inference_stream(
            chunk,
            language,
            latent,
            embedding,
            stream_chunk_size=STREAM_CHUNK_TOKENS,
            overlap_wav_len=STREAM_OVERLAP_SAMPLES,
            **kwargs,
        ):
            yield wav.detach().float().cpu().numpy().reshape(-1).astype(np.float32, copy=False)


def seed_everything(seed: int) -> None:
    """Same seed, same audio: XTTS samples with torch's RNG (random/numpy seeded for any helper)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _cancel_criteria(stop: StopFlag) -> Any:
    """A transformers stopping criterion that ends XTTS's GPT generation as soon as ``stop`` is set."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Cancelled(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
            done = torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)
            return cast(torch.BoolTensor, done)  # torch types every tensor as Tensor

    return StoppingCriteriaList([_Cancelled()])


class _QuietMaxNewTokens(logging.Filter):
    """coqui's GPT.generate always sets max_length; our max_new_tokens cap wins, and transformers says so on
    every call. Drop that one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("max_new_tokens" in message and "max_length" in message)


_QUIET_FILTER = _QuietMaxNewTokens()


def _quiet_transformers() -> None:
    target = logging.getLogger("transformers.generation.utils")
    if _QUIET_FILTER not in target.filters:
        target.addFilter(_QUIET_FILTER)
