"""How to decode: ``ASROptions``, validated once at the boundary (``check_options``), and language names.

Both backends read the same options; the engine checks them before anything is loaded or decoded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engines.core.errors import InputError

TASKS = ("transcribe", "translate")
TEMPERATURE_INCREMENT = 0.2  # whisper's CLI --temperature_increment_on_fallback


@dataclass(frozen=True)
class ASROptions:
    """How to decode (whisper.transcribe / DecodingOptions)."""

    language: str | None = None  # None = auto-detect; a Whisper code ("en"), "zh-cn", or a language name
    task: str = "transcribe"  # or "translate" (to English)
    word_timestamps: bool = False  # per-word start/end via cross-attention alignment
    beam_size: int | None = None  # None = greedy; beam search only applies at temperature 0
    temperature: float = 0.0  # the first temperature of the fallback ladder
    # Whisper's fallback: a window whose text loops (compression ratio > 2.4) or is improbable (average
    # log-probability < -1) is decoded again at temperature + increment, ... up to 1.0; None = one temperature
    temperature_increment: float | None = TEMPERATURE_INCREMENT
    seed: int = 0  # seeds the fallback's sampled reruns: the same audio always gives the same text
    segment_timestamps: bool = True  # False = text-only decoding, one segment per 30 s window
    # (what transcribe_batch does for clips under 30 s; set False to compare with it exactly)
    max_tokens: int | None = None  # cap on decoded tokens per 30 s window (benchmarks, tiny mode); None = 224
    vad: bool = True  # decode only where the voice-activity detector hears speech; False = all of it
    # (digital silence excepted; Whisper may then hallucinate words on noise)
    initial_prompt: str | None = None  # text the first window is conditioned on (names, spellings; OpenAI's prompt)
    # transcribe_batch only: short greedy clips of one language share 30 s windows (engines.asr.packing): about
    # 3x less encoder work for clips of a few seconds; each clip is then heard beside its neighbours
    pack: bool = False


def whisper_languages() -> dict[str, str]:
    """Whisper's language codes -> English names (99 languages)."""
    from whisper.tokenizer import LANGUAGES

    return dict(LANGUAGES)


def whisper_code(language: str) -> str | None:
    """Whisper's code for a language it knows; None for one it does not (a language XTTS was taught here): the
    caller then lets Whisper detect the language, and says so."""
    try:
        return normalize_language(language)
    except InputError:
        return None


def normalize_language(language: str | None) -> str | None:
    """Map a language choice to a Whisper code.

    Args:
        language: None/""/"auto" (detect), a Whisper code ("de"), XTTS's "zh-cn", or a name ("German").

    Returns:
        The Whisper code, or None for auto-detect.

    Raises:
        InputError: an unknown language.
    """
    from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE

    if language is None:
        return None
    code = language.strip().lower()
    if code in ("", "auto"):
        return None
    if code.startswith("zh"):  # XTTS says zh-cn, Whisper says zh
        code = "zh"
    if code in LANGUAGES:
        return code
    if code in TO_LANGUAGE_CODE:
        return str(TO_LANGUAGE_CODE[code])
    raise InputError(
        f"Unknown language {language!r}: use 'auto' or a Whisper language code such as "
        f"{', '.join(list(LANGUAGES)[:12])}, ..."
    )


def check_options(options: ASROptions) -> ASROptions:
    """Validate options at the boundary and normalise the language.

    Raises:
        InputError: what is wrong and what is allowed.
    """
    if options.task not in TASKS:
        raise InputError(f"Unknown task {options.task!r}; use 'transcribe' or 'translate'.")
    if options.beam_size is not None and not 1 <= int(options.beam_size) <= 16:
        raise InputError(f"Beam size must be between 1 and 16 (or empty for greedy), got {options.beam_size}.")
    if not 0.0 <= float(options.temperature) <= 1.0:
        raise InputError(f"Temperature must be between 0 and 1, got {options.temperature}.")
    increment = options.temperature_increment
    if increment is not None and not 0.0 < float(increment) <= 1.0:
        raise InputError(
            f"temperature_increment must be above 0 and at most 1 (or None for no fallback), got {increment}."
        )
    if options.max_tokens is not None and not 1 <= int(options.max_tokens) <= 224:
        raise InputError(f"max_tokens must be between 1 and 224 (Whisper's window limit), got {options.max_tokens}.")
    beam = None if options.beam_size is None else int(options.beam_size)
    return dataclasses.replace(
        options,
        language=normalize_language(options.language),
        beam_size=beam,
        temperature=float(options.temperature),
        temperature_increment=None if increment is None else float(increment),
        seed=int(options.seed),
    )


__all__ = ["TASKS", "ASROptions", "check_options", "normalize_language", "whisper_languages"]
