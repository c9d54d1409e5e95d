"""Transcripts files: the separator is detected or the file refused, never a text cut at a comma.

Errors refuse the whole file with a message that quotes the row and how the first row reads; warnings
leave a line out and say so (``problems``, and a notice on the build report).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.core.errors import InputError
from engines.datasets import DatasetOptions, DatasetReport, parse_transcripts
from engines.datasets.ingest import Source, read_transcripts


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rows_of(path: Path) -> list[tuple[str, str, str | None]]:
    rows, _ = parse_transcripts(path)
    return [(r.file, r.text, r.speaker) for r in rows]


def test_unquoted_comma_in_a_coqui_style_csv_is_refused_not_cut(tmp_path) -> None:
    """The issue's case: 'Hello, world' was stored as text 'Hello' and speaker ' world'."""
    path = write(
        tmp_path,
        "metadata.csv",
        "audio_file,text,speaker_name\na.wav,Good morning everyone,anna\nb.wav,Hello, world\n",
    )
    with pytest.raises(InputError) as err:
        parse_transcripts(path)
    message = str(err.value)
    assert "line 3" in message and "speaker_name=' world'" in message and "text='Hello'" in message
    assert "The first row reads as audio_file='a.wav', text='Good morning everyone', speaker_name='anna'" in message
    assert '"Hello, world"' in message  # says how to fix it: quote the text

    # one comma too many (the speaker given as well) is refused for its column count
    write(tmp_path, "four.csv", "audio_file,text,speaker_name\na.wav,Hello, world,anna\n")
    with pytest.raises(InputError, match=r"line 2 splits into 4 columns at ',' where the file has 3"):
        parse_transcripts(tmp_path / "four.csv")

    # quoted as spreadsheets and the csv module write it: read whole
    quoted = write(tmp_path, "quoted.csv", 'audio_file,text,speaker_name\nb.wav,"Hello, world",anna\n')
    assert rows_of(quoted) == [("b.wav", "Hello, world", "anna")]
    every = write(tmp_path, "every.csv", '"audio_file","text","speaker_name"\n"b.wav","Hello, world",""\n')
    assert rows_of(every) == [("b.wav", "Hello, world", None)]  # a quoted header is a header too


def test_headerless_comma_list_needs_two_columns_or_quotes(tmp_path) -> None:
    """Before: 'a.wav,Hello, world' kept only ' world' (read as LJSpeech's third column)."""
    path = write(tmp_path, "list.csv", "a.wav,Good morning\nb.wav,Hello, world\n")
    with pytest.raises(InputError) as err:
        parse_transcripts(path)
    assert "line 2 splits into 3 columns at ','" in str(err.value)
    assert "The first row reads as file='a.wav', text='Good morning'" in str(err.value)

    quoted = write(tmp_path, "quoted.csv", 'a.wav,Good morning\nb.wav,"Hello, world"\n')
    assert rows_of(quoted) == [("a.wav", "Good morning", None), ("b.wav", "Hello, world", None)]


def test_separator_is_the_one_that_ends_the_file_column(tmp_path) -> None:
    """';' and tab files whose texts hold commas, and a comma file whose text holds a '|' or ';'."""
    semicolon = write(tmp_path, "semi.csv", "a.wav;Hello, world\nb.wav;One, two, three\n")
    assert rows_of(semicolon) == [("a.wav", "Hello, world", None), ("b.wav", "One, two, three", None)]
    tab = write(tmp_path, "list.tsv", "a.wav\tHello, world; again\n")
    assert rows_of(tab) == [("a.wav", "Hello, world; again", None)]
    comma = write(tmp_path, "comma.csv", "a.wav,Say a | b\nb.wav,Wait; then go\n")
    # (a '|' cannot stay in a coqui metadata text: clean_text makes it a space, as for every source)
    assert rows_of(comma) == [("a.wav", "Say a b", None), ("b.wav", "Wait; then go", None)]
    # the formats that worked before still read the same
    lj = write(tmp_path, "lj.csv", "LJ1|It cost $16, then|It cost sixteen dollars, then\n")
    assert rows_of(lj) == [("LJ1", "It cost sixteen dollars, then", None)]
    coqui = write(tmp_path, "coqui.csv", "audio_file|text|speaker_name\nwavs/x.wav|Hi, there, you.|bob\n")
    assert rows_of(coqui) == [("wavs/x.wav", "Hi, there, you.", "bob")]


def test_mixed_separators_are_refused(tmp_path) -> None:
    path = write(tmp_path, "mixed.txt", "a.wav|Hello there\nb.wav,Second one\nc.wav|Third\n")
    with pytest.raises(InputError, match=r"mixes column separators: line 1 .*'\|', line 2 .*','"):
        parse_transcripts(path)


def test_extra_pipe_columns_are_an_error(tmp_path) -> None:
    """'file|a | b | c' used to keep ' b ' (the third column) without a word."""
    path = write(tmp_path, "list.txt", "a.wav|a | b | c\n")
    with pytest.raises(InputError) as err:
        parse_transcripts(path)
    assert "line 1 splits into 4 columns at '|' where the file has 3" in str(err.value)
    assert "extra1=' c'" in str(err.value)

    # a file|text list with one '|' inside a text: that line has a column too many
    two = write(tmp_path, "two.txt", "a.wav|First text\nb.wav|Second text\nc.wav|a | b\n")
    with pytest.raises(InputError, match=r"line 3 splits into 3 columns at '\|' where the file has 2"):
        parse_transcripts(two)
    # a trailing empty column is no extra column
    assert rows_of(write(tmp_path, "trail.txt", "a.wav|First text|\nb.wav|Second\n")) == [
        ("a.wav", "First text", None),
        ("b.wav", "Second", None),
    ]


def test_duplicate_rows_warn_and_conflicting_rows_are_an_error(tmp_path) -> None:
    same = write(tmp_path, "same.txt", "a.wav|Hello there\nb.wav|Second\n./a.wav|Hello there\n")
    rows, problems = parse_transcripts(same)
    assert [(r.file, r.line) for r in rows] == [("a.wav", 1), ("b.wav", 2)]
    assert problems == ["line 3: repeats line 1 (./a.wav); used once"]

    other = write(tmp_path, "other.txt", "a.wav|Hello there\nA.WAV|Goodbye\n")
    with pytest.raises(InputError, match=r"lines 1 and 2 both give a text for A\.WAV \('Hello there' and 'Goodbye'\)"):
        parse_transcripts(other)


def test_unused_lines_are_a_warning_on_the_build_report(tmp_path) -> None:
    path = write(tmp_path, "list.txt", "a.wav|Hello there\nnot a row\na.wav|Hello there\n")
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    report = DatasetReport(name="x", path=tmp_path, language="en")
    logged: list[str] = []
    source = Source(audio, "a.wav", "a", "a.wav", sha256="0" * 64)
    rows, _ = read_transcripts(path, [source], DatasetOptions(), "x", report, logged.append)
    assert list(rows) == ["0" * 64]
    assert report.notices == [
        "Warning: 2 line(s) of list.txt not used: line 2: no '|' between file and text; "
        "line 3: repeats line 1 (a.wav); used once"
    ]
    assert logged == report.notices
