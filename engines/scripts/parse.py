"""Script text -> lines to speak.

One line of text is one row. ``Ann: Hello there.`` gives the row to the voice mapped to ``Ann`` (a label is
up to 40 letters, digits, spaces, ``-`` or ``_`` before the first colon); a line without a label uses the
default voice. ``[pause:1.5s]`` (also ``[pause:700ms]``, ``[pause:2]``) adds that much silence where it stands:
on its own line or at the end of a line it follows the line before it; in the middle of a line it splits the
line in two. Blank lines are skipped; ``#`` starts a comment line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engines.core.errors import InputError

MAX_PAUSE_SECONDS = 60.0
MAX_LINES = 5000
MAX_LINE_CHARS = 1000
_LABEL = re.compile(r"^\s*([\w][\w \-]{0,39}?)\s*:\s+(.*)$")
_PAUSE = re.compile(r"\[\s*pause\s*:\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*\]", re.IGNORECASE)


@dataclass
class ParsedLine:
    """One row of a script."""

    text: str  # what is said
    speaker: str = ""  # the label before the colon ("" = default voice)
    pause_after: float | None = None  # silence after this line in seconds; None = the project's gap
    source_line: int = 0  # 1-based line number in the script (for messages)


@dataclass
class ParsedScript:
    lines: list[ParsedLine]
    lead_in: float = 0.0  # pause markup before the first line


def _seconds(value: str, unit: str | None, where: str) -> float:
    seconds = float(value) / (1000.0 if (unit or "s").lower() == "ms" else 1.0)
    if seconds > MAX_PAUSE_SECONDS:
        raise InputError(f"{where}: a pause of {seconds:g} s is too long (at most {MAX_PAUSE_SECONDS:g} s).")
    return seconds


def parse_script(text: str) -> ParsedScript:
    """Parse a script.

    Args:
        text: the script (pasted or read from an uploaded .txt).

    Returns:
        The lines in order, each with its speaker label and pause.

    Raises:
        InputError: no line to say, a line too long, too many lines, or a pause over the limit.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("The script is empty. Paste or upload a script: one line per row, e.g. 'Ann: Hello.'")
    lines: list[ParsedLine] = []
    lead_in = 0.0

    def add_pause(seconds: float) -> None:
        nonlocal lead_in
        if lines:
            last = lines[-1]
            last.pause_after = (last.pause_after or 0.0) + seconds
        else:
            lead_in += seconds

    for number, raw in enumerate(text.splitlines(), 1):
        row = raw.strip()
        if not row or row.startswith("#"):
            continue
        where = f"Script line {number}"
        speaker = ""
        match = _LABEL.match(row)
        if match and not _PAUSE.fullmatch(row):
            speaker, row = match.group(1).strip(), match.group(2).strip()
        pos = 0
        for pause in _PAUSE.finditer(row):
            piece = row[pos : pause.start()].strip()
            if piece:
                lines.append(ParsedLine(piece, speaker, None, number))
            add_pause(_seconds(pause.group(1), pause.group(2), where))
            pos = pause.end()
        piece = row[pos:].strip()
        if piece:
            lines.append(ParsedLine(piece, speaker, None, number))
        if lines and len(lines[-1].text) > MAX_LINE_CHARS:
            raise InputError(
                f"{where} is {len(lines[-1].text)} characters long; at most {MAX_LINE_CHARS}. Split it in two."
            )
        if len(lines) > MAX_LINES:
            raise InputError(f"The script has more than {MAX_LINES} lines; split it into several projects.")
    if not lines:
        raise InputError("The script has no line to say (only blank lines, comments or pauses).")
    return ParsedScript(lines, lead_in)


__all__ = ["MAX_LINES", "ParsedLine", "ParsedScript", "parse_script"]
