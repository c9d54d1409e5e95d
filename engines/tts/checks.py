"""The checks of a synthesis request that need no model: text, language, options, voice choice.

Torch-free, so Eval's planner and the /v1 API can refuse bad input without importing torch.
"""

from __future__ import annotations

import importlib.util
import math
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from config import XTTS_LANGUAGES
from engines.core.errors import InputError, LabError
from engines.core.names import speech_language, xtts_language
from engines.core.options import OPTION_RANGES, TTSOptions

# Extra packages some languages need for text normalisation (coqui-tts extras): code -> (modules, install hint).
LANGUAGE_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "zh-cn": (("pypinyin",), "pip install 'coqui-tts[zh]'"),
    "ja": (("cutlet", "fugashi", "unidic_lite"), "pip install 'coqui-tts[ja]'"),
}


def check_language_packages(language: str) -> None:
    """Raise LabError when a language's text front end is not installed (before any model work)."""
    modules, hint = LANGUAGE_PACKAGES.get(language, ((), ""))
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise LabError(
            f"{XTTS_LANGUAGES.get(language, language)} text needs the Python package(s) {', '.join(missing)}, which are not "
            f"installed. Install them ({hint}) and restart the app, or pick another language."
        )


def _check_range(name: str, value: float | None) -> None:
    low, high = OPTION_RANGES[name]
    # ints are checked by range alone: numpy's isfinite cannot take one over 64 bits (a script's seed 10**30)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a number between {low:g} and {high:g}; got {value!r}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{name} must be a number between {low:g} and {high:g}; got {value!r}.")
    if not low <= value <= high:
        shown = f"{value:g}" if isinstance(value, float) or abs(value) < 10**15 else "a number with over 15 digits"
        raise InputError(f"{name} must be between {low:g} and {high:g}; got {shown}.")


# The writing systems of the XTTS languages, by the first word of the characters' Unicode names.
_LATIN_LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "pl", "tr", "nl", "cs", "hu")
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **{code: frozenset({"LATIN"}) for code in _LATIN_LANGUAGES},
    "ru": frozenset({"CYRILLIC"}),
    "ar": frozenset({"ARABIC"}),
    "zh-cn": frozenset({"CJK"}),
    "ja": frozenset({"CJK", "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL"}),
    "hi": frozenset({"DEVANAGARI"}),
}
_SCRIPT_LABELS = {
    "LATIN": "Latin",
    "CYRILLIC": "Cyrillic",
    "ARABIC": "Arabic",
    "CJK": "Chinese (Han)",
    "HIRAGANA": "Japanese (kana)",
    "KATAKANA": "Japanese (kana)",
    "HANGUL": "Korean (Hangul)",
    "DEVANAGARI": "Devanagari",
}
_SCRIPT_ADVICE = {
    "LATIN": "pick the language it is written in (" + ", ".join(_LATIN_LANGUAGES) + ")",
    "CYRILLIC": "pick Russian (ru) for Russian text",
    "ARABIC": "pick Arabic (ar)",
    "CJK": "pick Chinese (zh-cn), or Japanese (ja) for Japanese text",
    "HIRAGANA": "pick Japanese (ja)",
    "KATAKANA": "pick Japanese (ja)",
    "HANGUL": "pick Korean (ko)",
    "DEVANAGARI": "pick Hindi (hi)",
}


def script_of(char: str) -> str:
    """The writing system of a letter, from its Unicode name ("LATIN", "CJK", "HANGUL", ...; "" unnamed)."""
    words = unicodedata.name(char, "").split()
    while words and words[0] in ("FULLWIDTH", "HALFWIDTH"):
        words = words[1:]
    if not words:
        return ""
    first = words[0]
    return {"KATAKANA-HIRAGANA": "KATAKANA", "IDEOGRAPHIC": "CJK"}.get(first, first)


def check_text(text: str) -> str:
    """Refuse text with nothing to say; return it stripped.

    Raises:
        InputError: empty, only invisible characters (zero-width spaces, joiners, BOMs), or no letter or
            digit at all (only punctuation, symbols or emoji).
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("The text is empty. Type what the voice should say.")
    text = text.strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone UTF-16 surrogate ("\ud800"): neither speakable nor writable
        raise InputError(
            f"The text holds an unpaired surrogate character at position {exc.start}: it is not valid Unicode. "
            "Remove it (it usually comes from a broken copy of an emoji)."
        ) from None
    if any(unicodedata.category(c)[0] in "LN" for c in text):
        return text
    if all(c.isspace() or unicodedata.category(c) in ("Cf", "Cc", "Mn", "Me") for c in text):
        raise InputError(
            "The text holds only invisible characters (zero-width spaces, joiners or other formatting marks), "
            "so there is nothing to say. Type what the voice should say."
        )
    shown = text if len(text) <= 40 else text[:40] + "..."
    raise InputError(
        f"The text {shown!r} has no letters or digits, only punctuation or symbols, so there is nothing to say. "
        "Type words."
    )


def text_notices(text: str, language: str) -> list[str]:
    """Warnings about text that XTTS will speak badly; the request still runs.

    Today: text mostly written in a script the language does not use (Arabic or Chinese text with ``en``,
    Latin text with ``zh-cn``), which XTTS mispronounces or skips.

    Args:
        text: the text to speak.
        language: a normalised XTTS language code.

    Returns:
        One sentence per problem (empty when none).
    """
    expected = LANGUAGE_SCRIPTS.get(language)
    if not expected:
        return []
    counts: dict[str, int] = {}
    for char in text:
        if unicodedata.category(char).startswith("L"):
            script = script_of(char)
            counts[script] = counts.get(script, 0) + 1
    letters = sum(counts.values())
    if not letters or sum(counts.get(s, 0) for s in expected) * 2 >= letters:
        return []
    script = max((s for s in counts if s not in expected), key=lambda s: counts[s])
    label = _SCRIPT_LABELS.get(script, script.title())
    advice = _SCRIPT_ADVICE.get(script, f"XTTS speaks no language written in {label} script")
    return [
        f"The text is mostly in {label} script, but the language is {XTTS_LANGUAGES.get(language, language)} ({language}): "
        f"XTTS will mispronounce it or leave it out. To fix it, {advice}."
    ]


def check_request(
    text: str,
    options: TTSOptions,
    *,
    reference: Sequence[Path] | None,
    speaker: str | None,
    max_chars: int,
    speakers: Sequence[str] | None = None,
    has_model_reference: bool = False,
    languages: Sequence[str] | None = None,
) -> tuple[str, str]:
    """Validate one synthesis request before any work is done.

    Args:
        text: the text to speak.
        options: generation settings.
        reference: reference clips (may be empty when a built-in speaker is used).
        speaker: a built-in speaker name.
        max_chars: longest text accepted (settings.max_text_chars).
        speakers: the model's built-in speakers, when known (None skips the membership check).
        has_model_reference: the model folder ships a reference.wav to fall back on.
        languages: the languages the model speaks (its config.json); None = XTTS v2's 17.

    Returns:
        (stripped text, normalised language code).

    Raises:
        InputError: with a message naming what is allowed (``check_text`` for the text itself).
    """
    text = check_text(text)
    if len(text) > max_chars:
        raise InputError(
            f"The text is {len(text)} characters long; the limit is {max_chars} (max_text_chars). "
            "Shorten it or split it into several requests."
        )
    language = check_language(options.language, languages)
    check_language_packages(language)
    for name in ("temperature", "top_k", "top_p", "repetition_penalty", "length_penalty", "speed"):
        _check_range(name, getattr(options, name))
    if options.seed is not None:
        _check_range("seed", options.seed)
    if options.max_audio_tokens is not None:
        _check_range("max_audio_tokens", options.max_audio_tokens)
    if reference and speaker:
        raise InputError("Give either reference clips or a built-in speaker, not both.")
    if not reference and not speaker and not has_model_reference:
        raise InputError(
            "No voice given: upload or record a reference clip (3-10 s of clean speech), pick a saved voice, "
            "or choose a built-in speaker."
        )
    if speaker and speakers is not None:
        check_speaker(speaker, speakers)
    return text, language


def check_language(language: str | None, languages: Sequence[str] | None = None) -> str:
    """The request's language, normalised, if the model speaks it.

    Args:
        language: the code asked for (aliases such as "zh" accepted).
        languages: the model's languages (its config.json lists them; a fine-tune may add one, issue 21);
            None = XTTS v2's 17.

    Raises:
        InputError: not a language code, or one the model was not trained for (the message lists its languages).
    """
    if languages is None or set(languages) <= set(XTTS_LANGUAGES):
        code = xtts_language(language)  # the message names XTTS's 17
        if languages is None or code in languages:
            return code
    else:
        code = speech_language(language)
        if code in languages:
            return code
    raise InputError(
        f"This model does not speak {code}: it was trained for {', '.join(languages or XTTS_LANGUAGES)}. "
        "Pick one of those, or fine-tune a model on a dataset in that language (Finetune tab)."
    )


def check_speaker(speaker: str, speakers: Sequence[str]) -> None:
    """Raise InputError unless ``speaker`` is one of the model's built-in speakers."""
    if speaker in speakers:
        return
    if not speakers:
        raise InputError(f"This model has no built-in speakers, so {speaker!r} cannot be used; give a reference clip.")
    shown = ", ".join(list(speakers)[:20]) + (f" and {len(speakers) - 20} more" if len(speakers) > 20 else "")
    raise InputError(f"Unknown built-in speaker {speaker!r}. This model has: {shown}.")


def language_error(language: str, exc: ImportError) -> LabError:
    """The message for coqui's text front end failing to import a language's package at generation time."""
    return LabError(
        f"{XTTS_LANGUAGES.get(language, language)} text cannot be prepared: {exc}. "
        f"{LANGUAGE_PACKAGES.get(language, ((), 'Install the missing package'))[1]}."
    )
