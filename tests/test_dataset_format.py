"""The coqui metadata format: what the builder writes, the trainer and the eval loop read back."""

from __future__ import annotations

from pathlib import Path

from engines.datasets.manifest import ClipEntry, metadata_path, read_info, read_metadata, write_dataset, write_metadata


def test_round_trip_keeps_quotes_and_order(tmp_path: Path) -> None:
    entries = [
        ClipEntry("wavs/a.wav", 'He said "hi", then left.', "ann"),
        ClipEntry("wavs/b.wav", "Plain text", "bob"),
    ]
    write_dataset(tmp_path, "de", entries, entries[:1])
    assert read_metadata(tmp_path, "train") == entries
    assert read_metadata(tmp_path, "eval") == entries[:1]
    assert metadata_path(tmp_path, "train").read_text().splitlines()[0] == "audio_file|text|speaker_name"
    assert read_info(tmp_path) == {"language": "de"}
    assert entries[0].path(tmp_path) == tmp_path / "wavs" / "a.wav"
    assert not write_metadata(tmp_path, "train", entries)  # unchanged content: not rewritten


def test_reads_headerless_and_reordered_files_and_skips_empty_rows(tmp_path: Path) -> None:
    metadata_path(tmp_path, "train").write_text("wavs/a.wav|One.|s\n|no file|s\nwavs/c.wav||s\nwavs/d.wav|Two.\n")
    assert read_metadata(tmp_path, "train") == [ClipEntry("wavs/a.wav", "One.", "s"), ClipEntry("wavs/d.wav", "Two.")]
    metadata_path(tmp_path, "eval").write_text("speaker_name|text|audio_file\nann|Three.|/abs/x.wav\n")
    [entry] = read_metadata(tmp_path, "eval")
    assert entry == ClipEntry("/abs/x.wav", "Three.", "ann") and entry.path(tmp_path) == Path("/abs/x.wav")
    assert read_info(tmp_path) is None
