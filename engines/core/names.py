"""Names and language codes users type: one rule each, one message each.

Folder names (datasets, models, training runs) become directory names under the project's roots, so
they must never be a path. Voice names may hold spaces. XTTS language codes accept a few aliases.
"""

from __future__ import annotations

import os
import re

from config import XTTS_LANGUAGES
from engines.core.errors import InputError

NAME_MAX = 100  # long enough for generated names ("<dataset>-step123456", "<dataset>-<timestamp>")
NAME_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_MAX - 1}}}$")
NAME_RULE = f"1-{NAME_MAX} characters: letters, digits, '.', '_' or '-', starting with a letter or digit"
VOICE_NAME_RE = re.compile(r"^[\w][\w .,'()-]{0,63}$")
VOICE_NAME_RULE = "letters, digits, spaces, '-', '_' or '.' (up to 64 characters, no '/', '\\' or '..')"
# Language aliases users type; XTTS itself names Mandarin "zh-cn".
LANGUAGE_ALIASES = {"zh": "zh-cn", "zh-CN": "zh-cn", "cn": "zh-cn"}


ID_MAX = 200  # run and test ids: longer ones are no id of ours, and the OS refuses names over 255 bytes


def shown_id(value: str) -> str:
    """An id for a message: quoted, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def is_folder_name(name: str) -> bool:
    """Whether ``name`` passes ``check_name`` (for listing folders without raising)."""
    return bool(NAME_RE.match(name)) and ".." not in name


def check_name(name: str | None, what: str) -> str:
    """Validate a folder name (dataset, model, run): the one guard every entry point uses.

    Args:
        name: what the user typed.
        what: the kind, for the message ("dataset", "model", "run").

    Returns:
        The name, stripped.

    Raises:
        InputError: empty, a path (separators, '..', absolute) or characters outside ``NAME_RULE``.
    """
    name = (name or "").strip()
    if not name:
        raise InputError(f"Give the {what} a name ({NAME_RULE}).")
    if "/" in name or "\\" in name or os.path.isabs(name) or ".." in name:
        raise InputError(f"Invalid {what} name {name!r}: it is a path; use a plain name ({NAME_RULE}).")
    if not NAME_RE.match(name):
        raise InputError(f"Invalid {what} name {name!r}: use {NAME_RULE}.")
    return name


def check_voice_name(name: str | None) -> str:
    """A saved-voice name: one folder name (spaces allowed), no separators, no '..'.

    Raises:
        InputError: the name is empty or unsafe.
    """
    name = (name or "").strip()
    if not name:
        raise InputError("Give the voice a name.")
    if "/" in name or "\\" in name or ".." in name or not VOICE_NAME_RE.match(name):
        raise InputError(f"Voice name {name!r} is not allowed: use {VOICE_NAME_RULE}.")
    return name


def xtts_language(language: str | None) -> str:
    """Map a language code (or alias) to one of XTTS's 17 codes.

    Raises:
        InputError: the language is not one XTTS speaks (the message lists them).
    """
    code = (language or "").strip()
    code = LANGUAGE_ALIASES.get(code, code.lower())
    code = LANGUAGE_ALIASES.get(code, code)
    if code not in XTTS_LANGUAGES:
        allowed = ", ".join(f"{c} ({n})" for c, n in XTTS_LANGUAGES.items())
        raise InputError(f"Language {language!r} is not supported by XTTS v2. Choose one of: {allowed}.")
    return code


LANGUAGE_CODE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")  # ISO 639-1/-3, optional region or script tag


def speech_language(language: str | None) -> str:
    """A language code for text and speech in any language: XTTS's 17 (aliases mapped, ``xtts_language``) or
    any ISO 639-1/-3 code (a language XTTS can learn here; whether a model speaks it is the model's to say).

    Raises:
        InputError: empty, or not a language code.
    """
    code = (language or "").strip()
    mapped = LANGUAGE_ALIASES.get(code, code.lower())
    mapped = LANGUAGE_ALIASES.get(mapped, mapped)
    if mapped in XTTS_LANGUAGES:
        return mapped
    if not LANGUAGE_CODE_RE.match(mapped):
        raise InputError(
            f"{language!r} is not a language code: use an ISO 639-1 or 639-3 code such as 'en', 'vi', 'uk' or 'yue'."
        )
    return mapped


__all__ = [
    "LANGUAGE_ALIASES",
    "NAME_RULE",
    "check_name",
    "check_voice_name",
    "is_folder_name",
    "speech_language",
    "xtts_language",
]


def slug(text: str, max_len: int = 48, fallback: str = "x") -> str:
    """A folder/file-safe ASCII fragment of any text (run ids, audio file names, TTS output names).

    Non-ASCII letters are transliterated (anyascii, a coqui-tts dependency), so "Grüße" gives "Grusse"
    rather than "-".
    """
    try:
        from anyascii import anyascii

        text = anyascii(text)
    except ImportError:
        pass
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return out[:max_len].rstrip("-.") or fallback
