"""The XTTS text vocabulary: how a language's text is cleaned, how well a ``vocab.json`` covers a dataset's text,
and extending it for a language XTTS v2 lacks.

XTTS v2 tokenizes ``[lang]`` + cleaned text with a byte-pair vocabulary (``vocab.json``, the ``tokenizers`` library's
format). coqui's ``VoiceBpeTokenizer`` refuses any language outside its 17; ``LabTokenizer`` cleans other languages
with an explicit fallback (``clean_text``) and answers any language a model's config lists.

Extension keeps the base model exact: new tokens and merges are appended after the last id, and only merges that
make a token holding a character the base vocabulary lacks are added, so text the base vocabulary covered tokenizes
exactly as before (a merge over new characters can never fire on old text). The GPT's text embedding and text head
grow by rows for the new ids (``grow_text_rows``); the old rows are kept bit for bit.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from config import XTTS_LANGUAGES
from engines.core.audio import write_json
from engines.core.errors import InputError

log = logging.getLogger(__name__)

# The languages coqui's multilingual cleaners (and its Japanese/Chinese/Korean paths) handle; "zh-cn" is "zh" there.
COQUI_CLEANED = frozenset(
    {"ar", "cs", "de", "en", "es", "fr", "hi", "hu", "it", "nl", "pl", "pt", "ru", "tr", "zh", "ko", "ja"}
)
DEFAULT_CHAR_LIMIT = 250  # coqui's default for a language without a measured limit
MAX_UNK_SHARE = 0.0  # any character the vocabulary cannot spell is lost speech: extend
MAX_TOKENS_PER_CHAR = 0.75  # English on XTTS v2's vocabulary is ~0.3; near 1 means characters one by one
# Merged tokens learnt for a new language: XTTS v2's vocabulary holds ~2,000 per language (6,681 in all);
# community runs found 2,000 best for Vietnamese (3,000 no better, 5,000 worse; anhnh2002/XTTSv2-Finetuning-for-
# New-Languages#44), viXTTS added 863. A small dataset learns fewer: the trainer stops where merges run out.
DEFAULT_NEW_TOKENS = 2000
UNK, SPACE = "[UNK]", "[SPACE]"


def base_code(language: str) -> str:
    """The code coqui's tokenizer works with: the region dropped, except zh-cn, which it keeps."""
    code = language.strip().lower()
    return "zh-cn" if code in ("zh", "zh-cn") else code.split("-")[0]


# ----------------------------------------------------------------------------------------------- text cleaning


@dataclass(frozen=True)
class CleanedText:
    text: str
    steps: tuple[str, ...]  # what was done, in order ("coqui multilingual cleaners" or the fallback's steps)


def _numbers(text: str, lang: str) -> tuple[str, bool]:
    """Digits spelled out with num2words where it knows the language; (text, done)."""
    from num2words import num2words

    try:
        num2words(1, lang=lang)
    except (NotImplementedError, OverflowError, KeyError):
        return text, False

    def spell(m: re.Match[str]) -> str:
        try:
            return str(num2words(int(m.group(0)), lang=lang))
        except (NotImplementedError, OverflowError, ValueError):
            return m.group(0)

    return re.sub(r"\d+", spell, text), True


def clean_text(text: str, language: str) -> CleanedText:
    """Clean text as the tokenizer will see it.

    XTTS's languages go through coqui's own cleaners. Any other language gets the documented fallback: Unicode NFC,
    double quotes removed, lower case, digits spelled out with num2words when it knows the language (else kept, and
    said so), whitespace collapsed. Nothing else is deleted: characters the vocabulary lacks are reported by
    ``coverage``, never silently dropped.
    """
    code = base_code(language)
    if code.split("-")[0] in COQUI_CLEANED or code == "zh-cn":
        from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

        return CleanedText(VoiceBpeTokenizer().preprocess_text(text, code.split("-")[0]), ("coqui cleaners",))
    steps = ["NFC", "quotes removed", "lower case"]
    out = unicodedata.normalize("NFC", text).replace('"', "")
    out = out.lower()
    out, spelled = _numbers(out, code)
    steps.append("numbers spelled out (num2words)" if spelled else "numbers kept as digits (num2words lacks it)")
    out = re.sub(r"\s+", " ", out).strip()
    steps.append("whitespace collapsed")
    return CleanedText(out, tuple(steps))


class _Limits(dict[str, int]):
    """coqui indexes ``char_limits[language]``: a language without a measured limit gets the default."""

    def __missing__(self, key: str) -> int:
        return DEFAULT_CHAR_LIMIT


def lab_tokenizer(vocab_file: str | Path) -> Any:
    """coqui's ``VoiceBpeTokenizer`` that also cleans languages outside its 17 (with ``clean_text``'s fallback).

    Install it on a model (``model.tokenizer = lab_tokenizer(path)``) so inference and training tokenize a new
    language; for XTTS's own languages it behaves exactly like coqui's.
    """
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

    class LabTokenizer(VoiceBpeTokenizer):
        def __init__(self, vocab: str | Path) -> None:
            super().__init__(vocab_file=str(vocab))
            self.char_limits: dict[str, int] = _Limits(vars(self)["char_limits"])  # coqui sets a plain dict

        def preprocess_text(self, txt: str, lang: str) -> str:
            if lang in COQUI_CLEANED:
                return str(super().preprocess_text(txt, lang))
            return clean_text(txt, lang).text

    return LabTokenizer(vocab_file)


# ----------------------------------------------------------------------------------------------- coverage


def _load(vocab_path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot read the vocabulary {Path(vocab_path).name}: {exc}") from exc
    if data.get("model", {}).get("type") != "BPE":
        raise InputError(f"{Path(vocab_path).name} is not a byte-pair vocabulary (tokenizers BPE).")
    return data


def vocabulary_languages(vocab_path: Path) -> list[str]:
    """The ``[xx]`` language tokens a vocabulary holds (without the brackets)."""
    data = _load(vocab_path)
    tokens = [t["content"] for t in data.get("added_tokens", [])] + list(data["model"]["vocab"])
    codes = {t[1:-1] for t in tokens if re.fullmatch(r"\[[a-z]{2,3}(-[a-z0-9]+)?\]", t)}
    return sorted(codes)


@dataclass(frozen=True)
class CoverageReport:
    """How well a vocabulary spells a language's text (the dataset's, cleaned as training will clean it)."""

    language: str
    texts: int
    chars: int  # characters of cleaned text, spaces excluded
    tokens: int
    unk_tokens: int
    tokens_per_char: float
    unk_share: float  # share of tokens that are [UNK]
    unknown_chars: dict[str, int]  # characters that become [UNK], with counts, most frequent first
    language_token: bool  # the vocabulary has [lang]
    cleaning: tuple[str, ...]
    needs_extension: bool
    reasons: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        unk = ", ".join(f"{c!r}×{n}" for c, n in list(self.unknown_chars.items())[:12])
        lines = [
            f"Language {self.language}: {self.texts} texts, {self.chars} characters, {self.tokens} tokens "
            f"({self.tokens_per_char:.2f} per character), [UNK] {self.unk_share:.1%} of tokens.",
            f"Language token [{self.language}]: {'present' if self.language_token else 'missing'}.",
        ]
        if unk:
            lines.append(f"Characters the vocabulary lacks (they would become [UNK]): {unk}.")
        lines.append(
            "The vocabulary must be extended: " + "; ".join(self.reasons) + "."
            if self.needs_extension
            else "The vocabulary covers this text."
        )
        return "\n".join(lines)


def coverage(texts: Iterable[str], vocab_path: Path, language: str) -> CoverageReport:
    """Tokenize the cleaned texts with ``vocab_path`` and count what is lost.

    Raises:
        InputError: unreadable vocabulary, or no text.
    """
    from tokenizers import Tokenizer

    code = base_code(language)
    _load(vocab_path)
    tok = Tokenizer.from_file(str(vocab_path))
    unk_id = tok.token_to_id(UNK)
    n_texts = chars = tokens = unk = 0
    unknown: Counter[str] = Counter()
    steps: tuple[str, ...] = ()
    for raw in texts:
        cleaned = clean_text(raw, code)
        steps = cleaned.steps
        text = cleaned.text
        if not text:
            continue
        n_texts += 1
        chars += sum(1 for c in text if not c.isspace())
        for word in text.split(" "):
            enc = tok.encode(word)
            tokens += len(enc.ids)
            for tid, (start, end) in zip(enc.ids, enc.offsets):
                if tid == unk_id:
                    unk += 1
                    unknown.update(word[start:end])
    if not n_texts:
        raise InputError(f"No text to check for language {code}: the dataset's transcripts are empty.")
    known = set(vocabulary_languages(vocab_path))
    reasons = []
    if code not in known:
        reasons.append(f"no [{code}] language token")
    unk_share = unk / tokens if tokens else 0.0
    if unk_share > MAX_UNK_SHARE:
        reasons.append(f"{unk_share:.1%} of tokens are [UNK]")
    per_char = tokens / chars if chars else 0.0
    if per_char > MAX_TOKENS_PER_CHAR:
        reasons.append(f"{per_char:.2f} tokens per character (poor merges for this script)")
    return CoverageReport(
        language=code,
        texts=n_texts,
        chars=chars,
        tokens=tokens,
        unk_tokens=unk,
        tokens_per_char=round(per_char, 4),
        unk_share=round(unk_share, 6),
        unknown_chars=dict(unknown.most_common()),
        language_token=code in known,
        cleaning=steps,
        needs_extension=bool(reasons),
        reasons=tuple(reasons),
    )


# ----------------------------------------------------------------------------------------------- extension


@dataclass(frozen=True)
class Extension:
    """What ``extend_vocabulary`` added (recorded with the run and the exported model)."""

    language: str
    old_size: int  # the GPT's text rows before (max id + 1)
    new_size: int
    added_chars: tuple[str, ...]
    added_tokens: int  # merged tokens added (characters and the language token excluded)
    language_token_id: int | None  # None when the vocabulary already had it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _merge_pair(entry: Any) -> tuple[str, str]:
    if isinstance(entry, str):
        a, b = entry.split(" ", 1)
        return a, b
    return str(entry[0]), str(entry[1])


def extend_vocabulary(
    vocab_path: Path, texts: Sequence[str], language: str, out_path: Path, max_new_tokens: int = DEFAULT_NEW_TOKENS
) -> Extension:
    """Write ``out_path``: ``vocab_path`` plus the language token and BPE merges learnt on ``texts``.

    New entries get ids after the last one, in order: characters the base lacks, then merged tokens that contain
    at least one of those characters (learnt with the ``tokenizers`` BPE trainer on the cleaned texts), then
    ``[language]``. Text made only of characters the base already had tokenizes exactly as before.

    Args:
        vocab_path: the base model's ``vocab.json``.
        texts: the dataset's transcripts (raw; cleaned here as training cleans them).
        language: the language code (``engines.core.names.speech_language`` rules).
        out_path: where the extended vocabulary goes (written atomically).
        max_new_tokens: cap on merged tokens added.

    Raises:
        InputError: unreadable vocabulary or no text.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    code = base_code(language)
    data = _load(vocab_path)
    vocab: dict[str, int] = data["model"]["vocab"]
    merges: list[Any] = data["model"]["merges"]
    added = data.setdefault("added_tokens", [])
    ids = [*vocab.values(), *(t["id"] for t in added)]
    next_id = max(ids) + 1
    old_size = next_id
    cleaned = [c for c in (clean_text(t, code).text for t in texts) if c]
    if not cleaned:
        raise InputError(f"No text to learn a vocabulary for language {code} from.")
    old_chars = {c for tok in vocab for c in tok if len(tok) == 1}
    new_chars = sorted({c for t in cleaned for c in t if not c.isspace() and c not in old_chars})
    for c in new_chars:
        vocab[c] = next_id
        next_id += 1

    trainer = trainers.BpeTrainer(
        vocab_size=len(set("".join(cleaned))) + max_new_tokens * 4, show_progress=False, special_tokens=[]
    )
    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = pre_tokenizers.Whitespace()
    learner.train_from_iterator(cleaned, trainer=trainer)
    learnt = json.loads(learner.to_str())["model"]["merges"]
    string_merges = bool(merges) and isinstance(merges[0], str)
    new_tokens = 0
    for entry in learnt:
        a, b = _merge_pair(entry)
        merged = a + b
        if merged in vocab or not any(c in new_chars for c in merged):
            continue  # only tokens with a new character: old text never meets these merges
        if a not in vocab or b not in vocab:
            continue
        if new_tokens >= max_new_tokens:
            break
        vocab[merged] = next_id
        next_id += 1
        merges.append(f"{a} {b}" if string_merges else [a, b])
        new_tokens += 1
    token_id: int | None = None
    lang_token = f"[{code}]"
    if lang_token not in vocab and all(t["content"] != lang_token for t in added):
        token_id = next_id
        vocab[lang_token] = token_id
        added.append(
            {
                "id": token_id,
                "content": lang_token,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
        )
        next_id += 1
    write_json(out_path, data)
    ext = Extension(code, old_size, next_id, tuple(new_chars), new_tokens, token_id)
    log.info(
        "Vocabulary extended for %s: %d -> %d ids (%d characters, %d merged tokens)",
        code,
        old_size,
        next_id,
        len(new_chars),
        new_tokens,
    )
    return ext


# ----------------------------------------------------------------------------------------------- the GPT's rows

TEXT_ROW_KEYS = ("text_embedding.weight", "text_head.weight", "text_head.bias")


def grow_text_rows(state: Mapping[str, Any], new_size: int, prefix: str = "gpt.") -> dict[str, Any]:
    """A checkpoint state with the GPT's text embedding and text head grown to ``new_size`` rows.

    Old rows are kept bit for bit; new rows start at the mean of the old ones (a neutral token the model already
    half-knows, rather than random vectors of another scale), so the new language starts from an average text
    embedding and learns from there.

    Raises:
        InputError: the state has no text rows, or already more than ``new_size``.
    """
    import torch

    out = dict(state)
    for key in TEXT_ROW_KEYS:
        name = prefix + key
        if name not in out:
            raise InputError(f"The checkpoint has no {name}: not an XTTS GPT.")
        old = out[name]
        rows = int(old.shape[0])
        if rows > new_size:
            raise InputError(f"The checkpoint's {name} has {rows} rows, more than the vocabulary's {new_size}.")
        if rows == new_size:
            continue
        fill = old.mean(dim=0, keepdim=True).expand(new_size - rows, *old.shape[1:])
        out[name] = torch.cat([old, fill.to(old.dtype)], dim=0)
    return out


def model_languages(config: Mapping[str, Any]) -> list[str]:
    """The languages a model's ``config.json`` lists (XTTS v2's 17 when it lists none)."""
    langs = config.get("languages") or list(XTTS_LANGUAGES)
    return [str(code) for code in langs]


__all__ = [
    "COQUI_CLEANED",
    "CleanedText",
    "CoverageReport",
    "Extension",
    "base_code",
    "clean_text",
    "coverage",
    "extend_vocabulary",
    "grow_text_rows",
    "lab_tokenizer",
    "model_languages",
    "vocabulary_languages",
]
