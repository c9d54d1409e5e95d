"""Pronunciation map: per language, words or patterns replaced by how they should be spoken.

XTTS reads "SQL" letter by letter and "Dr." as "D R"; the map rewrites the text before synthesis ("SQL" ->
"sequel", regex ``\\bDr\\.`` -> "Doctor"). Stored as one JSON file in the workspace
(``workspace/pronunciation.json``), editable in the UI::

    {"en": [{"match": "SQL", "say": "sequel"},
            {"match": "\\\\bDr\\\\.", "say": "Doctor", "regex": true}]}

A plain ``match`` is a whole word (or phrase), case-insensitive; ``regex: true`` makes it a Python regular
expression (``say`` may use ``\\1`` groups). Rules apply in order. The key ``"*"`` holds rules for every
language. ``apply`` returns the spoken text and the rules that fired, which the sidecar records.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engines.core.audio import write_json
from engines.core.errors import InputError
from engines.core.names import xtts_language

FILE_NAME = "pronunciation.json"
ALL_LANGUAGES = "*"
MAX_RULES = 2000  # per file: a map is typed by hand, a bigger one is a mistake


@dataclass(frozen=True)
class Rule:
    """One replacement."""

    match: str  # a word or phrase (whole words, any case), or a regex when ``regex``
    say: str  # how it is spoken
    regex: bool = False

    def pattern(self) -> re.Pattern[str]:
        if self.regex:
            return re.compile(self.match)
        return re.compile(r"(?<!\w)" + re.escape(self.match) + r"(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class PronunciationMap:
    """Rules by language code (``"*"`` = every language)."""

    rules: dict[str, tuple[Rule, ...]] = field(default_factory=dict)

    def for_language(self, language: str) -> tuple[Rule, ...]:
        return self.rules.get(ALL_LANGUAGES, ()) + self.rules.get(language, ())

    def apply(self, text: str, language: str) -> tuple[str, list[dict[str, Any]]]:
        """The text as it should be spoken.

        Returns:
            (spoken text, the rules that fired: match, say, regex, count).
        """
        fired: list[dict[str, Any]] = []
        for rule in self.for_language(language):
            say = rule.say
            text, count = rule.pattern().subn(say if rule.regex else (lambda _m, s=say: s), text)
            if count:
                fired.append({**asdict(rule), "count": count})
        return text, fired

    def record(self, text: str, language: str) -> tuple[str, dict[str, Any] | None]:
        """``apply`` plus the sidecar's record (None when no rule fired)."""
        spoken, fired = self.apply(text, language)
        if not fired:
            return text, None
        return spoken, {"original_text": text, "spoken_text": spoken, "rules": fired}

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        return {lang: [asdict(r) for r in rules] for lang, rules in self.rules.items()}

    def __bool__(self) -> bool:
        return any(self.rules.values())


def parse(data: Any) -> PronunciationMap:
    """A map from its JSON form, every rule checked.

    Raises:
        InputError: naming the bad entry (unknown language, missing field, a regex that does not compile).
    """
    if not isinstance(data, dict):
        raise InputError('The pronunciation map must be a JSON object: {"en": [{"match": "SQL", "say": "sequel"}]}.')
    rules: dict[str, tuple[Rule, ...]] = {}
    total = 0
    for key, entries in data.items():
        lang = ALL_LANGUAGES if key == ALL_LANGUAGES else _language(key)
        if not isinstance(entries, list):
            raise InputError(f"Pronunciation map: {key!r} must hold a list of rules.")
        parsed = []
        for i, entry in enumerate(entries, 1):
            where = f"rule {i} of {key!r}"
            if not isinstance(entry, dict) or not isinstance(entry.get("match"), str) or "say" not in entry:
                raise InputError(f"Pronunciation map: {where} needs a text 'match' and a 'say'.")
            if not entry["match"].strip():
                raise InputError(f"Pronunciation map: {where} has an empty 'match'.")
            if not isinstance(entry["say"], str):
                raise InputError(f"Pronunciation map: {where}: 'say' must be text.")
            rule = Rule(entry["match"], entry["say"], bool(entry.get("regex", False)))
            try:
                rule.pattern()
            except re.error as exc:
                raise InputError(f"Pronunciation map: {where}: {rule.match!r} is not a valid regex ({exc}).") from exc
            parsed.append(rule)
        total += len(parsed)
        rules[lang] = rules.get(lang, ()) + tuple(parsed)
    if total > MAX_RULES:
        raise InputError(f"Pronunciation map: {total} rules; at most {MAX_RULES}.")
    return PronunciationMap(rules)


def parse_text(text: str) -> PronunciationMap:
    """A map from JSON text (the UI's editor).

    Raises:
        InputError: not JSON (with the line and column), or a bad rule (see ``parse``).
    """
    if not (text or "").strip():
        return PronunciationMap()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"The pronunciation map is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from exc
    return parse(data)


def _language(key: str) -> str:
    try:
        return xtts_language(key)
    except InputError as exc:
        raise InputError(f"Pronunciation map: {key!r} is not an XTTS language code. {exc}") from exc


def map_path(workspace: Path) -> Path:
    return workspace / FILE_NAME


def load(workspace: Path) -> PronunciationMap:
    """The workspace's map (empty when there is none yet).

    Raises:
        InputError: the file is broken (the message names it).
    """
    path = map_path(workspace)
    if not path.is_file():
        return PronunciationMap()
    try:
        return parse_text(path.read_text(encoding="utf-8"))
    except InputError as exc:
        raise InputError(f"{path}: {exc} Fix the file or edit the map in the TTS tab.") from exc


def save(workspace: Path, pmap: PronunciationMap) -> Path:
    """Write the map atomically."""
    return write_json(map_path(workspace), pmap.to_json())


__all__ = ["FILE_NAME", "PronunciationMap", "Rule", "load", "map_path", "parse", "parse_text", "save"]
