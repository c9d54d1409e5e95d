"""Split text into the chunks XTTS speaks one at a time.

XTTS reads at most ~250 characters (fewer for CJK) per generation; longer input gets truncated
audio. coqui's own ``split_sentence`` packs sentences up to that limit but needs spaCy for the
sentence boundaries; spaCy is optional, so sentence boundaries come from the first available of
spaCy (coqui's setup), pysbd (a coqui dependency) and a punctuation regex.
"""

from __future__ import annotations

import logging
import re
import textwrap

log = logging.getLogger(__name__)

DEFAULT_CHAR_LIMIT = 250
MIN_CHUNK_CHARS = 12  # shorter sentences are merged into the next: XTTS babbles on tiny inputs

# pysbd's languages that XTTS also speaks (pysbd names Chinese "zh").
_PYSBD_LANGS = {"ar", "de", "en", "es", "fr", "hi", "it", "ja", "nl", "pl", "ru", "zh"}
# Sentence-final punctuation across XTTS's scripts: Latin/Cyrillic, CJK full-width, Arabic, Devanagari.
_REGEX_SENTENCE = re.compile(r"(?<=[.!?…؟।][\"'”’»)\]])\s+|(?<=[.!?…؟।])\s+|(?<=[。！？])")


def _base_lang(lang: str) -> str:
    return lang.split("-")[0].lower()


def _spacy_sentences(text: str, lang: str) -> list[str] | None:
    try:
        from TTS.tts.layers.xtts.tokenizer import get_spacy_lang

        nlp = get_spacy_lang(lang)
        nlp.add_pipe("sentencizer")
    except ImportError:
        return None
    return [str(s) for s in nlp(text).sents]


def _pysbd_sentences(text: str, lang: str) -> list[str] | None:
    if lang not in _PYSBD_LANGS:
        return None
    try:
        import pysbd
    except ImportError:
        return None
    try:
        return list(pysbd.Segmenter(language=lang, clean=False).segment(text))
    except Exception:  # noqa: BLE001 - pysbd's rules can trip on odd input; the regex still works
        log.debug("pysbd failed on %r; falling back to the regex splitter", text[:40], exc_info=True)
        return None


def split_sentences(text: str, lang: str) -> list[str]:
    """Sentence boundaries for one of XTTS's languages.

    Args:
        text: the text to split.
        lang: an XTTS language code ("en", "zh-cn", ...).

    Returns:
        Non-empty, stripped sentences in order (the whole text when there is one sentence).
    """
    base = _base_lang(lang)
    sentences = _spacy_sentences(text, base)
    if sentences is None:
        sentences = _pysbd_sentences(text, base)
    if sentences is None:
        sentences = _REGEX_SENTENCE.split(text)
    return [s.strip() for s in sentences if s and s.strip()]


def _wrap(sentence: str, limit: int) -> list[str]:
    """Break an over-long sentence at word boundaries (as coqui's split_sentence does)."""
    if len(sentence) <= limit:
        return [sentence]
    lines = textwrap.wrap(sentence, width=limit, drop_whitespace=True, break_on_hyphens=False, tabsize=1)
    return lines or [sentence[:limit]]


def _has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def split_text(text: str, lang: str, limit: int = DEFAULT_CHAR_LIMIT, per_sentence: bool = True) -> list[str]:
    """Chunks to synthesise one by one.

    Args:
        text: the full text.
        lang: XTTS language code.
        limit: most characters per chunk (the tokenizer's ``char_limits`` for the language).
        per_sentence: one chunk per sentence (short ones merged forward); False packs sentences up to
            ``limit`` like coqui's ``split_sentence`` and only splits text that is too long.

    Returns:
        Non-empty chunks, each at most ``limit`` characters unless a single word is longer.
    """
    text = " ".join(text.split())
    if not text:
        return []
    if not per_sentence and len(text) < limit:
        return [text]
    pieces: list[str] = []
    for sentence in split_sentences(text, lang):
        pieces.extend(_wrap(sentence, limit))

    chunks: list[str] = []
    for piece in pieces:
        if chunks and not _has_words(piece):
            chunks[-1] = f"{chunks[-1]} {piece}"  # stray punctuation belongs to the sentence before
            continue
        previous = chunks[-1] if chunks else ""
        joinable = bool(chunks) and len(previous) + 1 + len(piece) <= limit
        if joinable and (not per_sentence or len(previous) < MIN_CHUNK_CHARS):
            chunks[-1] = f"{previous} {piece}"
        else:
            chunks.append(piece)
    # A short last sentence joins the one before rather than standing alone.
    if (
        per_sentence
        and len(chunks) > 1
        and len(chunks[-1]) < MIN_CHUNK_CHARS
        and (len(chunks[-2]) + 1 + len(chunks[-1]) <= limit)
    ):
        chunks[-2:] = [f"{chunks[-2]} {chunks[-1]}"]
    return chunks
