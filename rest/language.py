"""The language of a speech request that names none (OpenAI's API has no language field).

No language identifier is installed (langdetect, lingua and fastText are not in the locks), so the guess is
simple and said so in the response header:

1. the writing system of most letters (Unicode names, as ``engines.tts.checks`` reads them): Cyrillic -> ru,
   Arabic -> ar, Hangul -> ko, kana -> ja, Han alone -> zh-cn, Devanagari -> hi;
2. Latin text: letters only one language of the eleven uses (ñ, ß, ł, ő, ř, ğ, ã, ...), then the most
   frequent short function words ("the", "und", "les", "het", ...);
3. nothing decisive: the configured default (``settings.generation.language``).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

# Letters only one of the Latin-script XTTS languages writes (lower case).
_MARK_LETTERS: dict[str, str] = {
    **dict.fromkeys("ñ¿¡", "es"),
    **dict.fromkeys("ß", "de"),
    **dict.fromkeys("ąęłńśźż", "pl"),
    **dict.fromkeys("ğış", "tr"),
    **dict.fromkeys("ěřůťď", "cs"),
    **dict.fromkeys("őű", "hu"),
    **dict.fromkeys("ãõ", "pt"),
    **dict.fromkeys("œ", "fr"),
}
# Frequent words of each language that the others rarely write.
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and is are of to in that it you this with was for not have be".split()),
    "es": frozenset("el los las que de y es en un una por para con no del se lo".split()),
    "fr": frozenset("le les des et est une un du que qui dans pour pas avec ce je vous il".split()),
    "de": frozenset("der die das und ist nicht ein eine zu den mit von ich sie es auf".split()),
    "it": frozenset("il che di è la una per non gli sono con del della lo le".split()),
    "pt": frozenset("o os que de não uma um do da em para com é se as".split()),
    "pl": frozenset("i w nie się jest to na z że do jak co ale".split()),
    "tr": frozenset("ve bir bu da de için ile ne çok mi ama".split()),
    "nl": frozenset("de het een en is van dat niet op te zijn met ik je".split()),
    "cs": frozenset("a je se na to že v s jsem jak ale co".split()),
    "hu": frozenset("a az és hogy nem egy is van meg de ez".split()),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def _latin_guess(text: str) -> str | None:
    lowered = text.lower()
    marks = Counter(_MARK_LETTERS[c] for c in lowered if c in _MARK_LETTERS)
    if marks:
        return marks.most_common(1)[0][0]
    words = _WORD.findall(lowered)
    scores = Counter({lang: sum(w in vocab for w in words) for lang, vocab in _FUNCTION_WORDS.items()})
    ranked = scores.most_common(2)
    if not ranked or ranked[0][1] == 0 or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None  # nothing or a tie: not decisive
    return ranked[0][0]


def guess_language(text: str) -> str | None:
    """An XTTS language code for ``text``, or None when the guess is not decisive."""
    from engines.tts.checks import script_of  # the one reading of a letter's writing system

    scripts = Counter(script_of(c) for c in text if unicodedata.category(c).startswith("L"))
    if not scripts:
        return None
    if scripts.get("HIRAGANA", 0) + scripts.get("KATAKANA", 0):
        return "ja"  # Japanese mixes kana with Han; Chinese writes no kana
    script = scripts.most_common(1)[0][0]
    by_script = {"CYRILLIC": "ru", "ARABIC": "ar", "HANGUL": "ko", "CJK": "zh-cn", "DEVANAGARI": "hi"}
    if script in by_script:
        return by_script[script]
    return _latin_guess(text) if script == "LATIN" else None


def speech_language(text: str, requested: str | None, default: str) -> tuple[str, str]:
    """The language to speak and where it came from: ``"request"``, ``"detected"`` or ``"default"``."""
    if requested:
        return requested, "request"
    guess = guess_language(text)
    return (guess, "detected") if guess else (default, "default")


__all__ = ["guess_language", "speech_language"]
