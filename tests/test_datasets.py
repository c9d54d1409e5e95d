"""Dataset builder: raw recordings -> coqui-format dataset, on the tiny Whisper and real or rendered speech."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from engines.asr.checks import repetition_loop
from engines.core.audio import file_sha256, load_audio
from engines.core.errors import BusyError, InputError
from engines.datasets import (
    DatasetEngine,
    DatasetOptions,
    assign_split,
    check_name,
    parse_transcripts,
)
from engines.datasets.cutting import plan_clips, plan_recut, split_text
from engines.scoring.metrics import text_cer

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Printing differs from most arts and crafts.",
    "She sells sea shells by the sea shore.",
    "A journey of a thousand miles begins with one step.",
    "Every morning the baker opens his shop early.",
]
LONG_TEXT = (
    "This is a long recording made for the test of the quality flags, and it goes on and on for a good while, "
    "with many words in a row, so that the finished clip is much longer than the eleven seconds the trainer "
    "accepts, which means it must be flagged and offered a re-cut at one of its pauses."
)


# ----------------------------------------------------------------- helpers


def load_coqui(root: Path, language: str) -> tuple[list[dict], list[dict]]:
    """Load a dataset folder with coqui's own loader and the "coqui" formatter."""
    from TTS.config.shared_configs import BaseDatasetConfig
    from TTS.tts.configs.shared_configs import BaseTTSConfig
    from TTS.tts.datasets import load_tts_samples

    dataset = BaseDatasetConfig(
        formatter="coqui",
        dataset_name=root.name,
        path=str(root),
        meta_file_train="metadata_train.csv",
        meta_file_val="metadata_eval.csv",
        language=language,
    )
    return load_tts_samples(BaseTTSConfig(datasets=[dataset]), eval_split=True)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="|"))


def write_list(path: Path, rows: list[tuple[str, str]], sep: str = "|") -> Path:
    path.write_text("".join(f"{f}{sep}{t}\n" for f, t in rows), encoding="utf-8")
    return path


def quiet_log() -> tuple[list[str], callable]:
    lines: list[str] = []
    return lines, lines.append


def no_progress(*_a, **_k) -> None:
    return None


def stereo_44k_flac(src: Path, out: Path) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-y",
            "-v",
            "error",
            "-i",
            str(src),
            "-ac",
            "2",
            "-ar",
            "44100",
            "-c:a",
            "flac",
            str(out),
        ],
        check=True,
    )
    return out


def concat_wavs(paths: list[Path], out: Path, gap: float = 0.6) -> Path:
    parts = []
    sr = None
    for p in paths:
        audio, sr = sf.read(str(p), dtype="float32")
        parts += [audio, np.zeros(int(gap * sr), np.float32)]
    sf.write(str(out), np.concatenate(parts), sr)
    return out


@pytest.fixture()
def ds(engines) -> DatasetEngine:
    return engines.datasets


@pytest.fixture()
def rendered(speak, tmp_path) -> dict[str, Path]:
    """Five English sentences in five formats (wav, m4a, mp3, ogg, stereo 44.1 kHz flac)."""
    files = {}
    for i, (text, fmt) in enumerate(zip(SENTENCES, ["wav", "m4a", "mp3", "ogg", "wav"])):
        files[text] = speak(text, "en", fmt, name=f"en{i}")
    stereo = stereo_44k_flac(files[SENTENCES[4]], tmp_path / "en4-stereo.flac")
    files[SENTENCES[4]] = stereo
    return files


# ----------------------------------------------------------------- pure logic


def test_names_are_validated() -> None:
    for bad in ["../x", "/tmp/x", "a/b", "a\\b", "", "   ", "..", "x..y", ".hidden", "a b", "a|b"]:
        with pytest.raises(InputError):
            check_name(bad)
    assert check_name(" my-voice_1.2 ") == "my-voice_1.2"


def test_plan_clips_merges_splits_and_pads() -> None:
    def seg(start, end, text, words=None):
        return SimpleNamespace(start=start, end=end, text=text, words=words)

    def word(start, end, text):
        return SimpleNamespace(start=start, end=end, word=text)

    # three short sentences merge into one clip; a pause over 1 s starts a new clip
    segs = [seg(0.5, 2.0, " One."), seg(2.2, 4.0, " Two."), seg(4.1, 6.0, " Three."), seg(7.5, 9.0, " Four.")]
    pieces = plan_clips(segs, 10.0, min_clip=1.0, max_clip=11.0, pad=0.2)
    assert [p.text for p in pieces] == ["One. Two. Three.", "Four."]
    assert pieces[0].start == pytest.approx(0.3) and pieces[0].end == pytest.approx(6.2)
    assert pieces[1].start == pytest.approx(7.3) and pieces[1].end == pytest.approx(9.2)

    # a 16 s segment splits at its biggest pause (after "pause."), not at the small gaps
    words = [word(i * 1.0, i * 1.0 + 0.8, f" w{i}") for i in range(8)]
    words[7] = word(7.0, 7.8, " pause.")
    words += [word(9.5 + i * 1.0, 10.3 + i * 1.0, f" v{i}") for i in range(7)]
    long_seg = seg(0.0, 16.3, "".join(w.word for w in words), words)
    pieces = plan_clips([long_seg], 17.0, min_clip=1.0, max_clip=11.0, pad=0.15)
    assert len(pieces) == 2
    assert pieces[0].text.endswith("pause.") and pieces[1].text.startswith("v0")
    assert all(p.duration <= 11.0 for p in pieces)
    assert pieces[0].end <= pieces[1].start  # pads never overlap


def test_repetition_and_text_split() -> None:
    assert repetition_loop("the cat sat the cat sat the cat sat on the mat")
    assert repetition_loop("yes yes yes")
    assert repetition_loop("去去去去去去去去去去去去去去")
    assert repetition_loop("And so my fellow Americans, ask not what your country can do for you.") is None
    parts = split_text("One two three. Four five six seven.", [0.4])
    assert parts == ["One two three.", "Four five six seven."]
    with pytest.raises(ValueError):
        split_text("single", [0.5])
    cuts = plan_recut(20.0, [(4.0, 4.5), (9.8, 10.4), (15.0, 15.2)], 11.0, 1.0)
    assert cuts == [pytest.approx(10.1)]
    with pytest.raises(ValueError):
        plan_recut(20.0, [], 11.0, 1.0)


def test_split_is_per_speaker_seeded_and_never_empty() -> None:
    clips = {f"a{i}.wav": {"speaker": "a"} for i in range(20)} | {f"b{i}.wav": {"speaker": "b"} for i in range(4)}
    split = assign_split(clips, 0.15, seed=7)
    assert sum(split[f"a{i}.wav"] == "eval" for i in range(20)) == 3
    assert sum(split[f"b{i}.wav"] == "eval" for i in range(4)) == 1
    assert split == assign_split(clips, 0.15, seed=7)
    assert split != assign_split(clips, 0.15, seed=8)
    assert (
        list(assign_split({"x.wav": {"speaker": "a"}, "y.wav": {"speaker": "b"}}, 0.15, 1).values()).count("eval") == 1
    )


def test_transcripts_formats(tmp_path) -> None:
    plain = write_list(tmp_path / "plain.txt", [("a.wav", "Hello there."), ("b", "Second one.")])
    rows, problems = parse_transcripts(plain)
    assert [(r.file, r.text) for r in rows] == [("a.wav", "Hello there."), ("b", "Second one.")] and not problems

    lj = tmp_path / "metadata.csv"
    lj.write_text('LJ1|It cost $16 "then"|It cost sixteen dollars "then"\nLJ2|no normalized|\nbroken line\n')
    rows, problems = parse_transcripts(lj)
    assert [(r.file, r.text) for r in rows] == [("LJ1", 'It cost sixteen dollars "then"'), ("LJ2", "no normalized")]
    assert problems == ["line 3: no '|' between file and text"]

    coqui = tmp_path / "coqui.csv"
    coqui.write_text('audio_file|text|speaker_name\nwavs/x.wav|"He said ""hi"", then left."|bob\nwavs/y.wav||amy\n')
    rows, problems = parse_transcripts(coqui)
    assert [(r.file, r.text, r.speaker) for r in rows] == [("wavs/x.wav", 'He said "hi", then left.', "bob")]
    assert problems == ["line 3: no file or no text"]

    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(InputError):
        parse_transcripts(tmp_path / "empty.txt")


# ----------------------------------------------------------------- builds


@pytest.mark.slow  # 24 files through the tiny Whisper with word timestamps: minutes on a 2-core CPU
def test_ljspeech_build(ds, shared_data, tmp_path) -> None:
    """The 32 LJSpeech clips: 8 with supplied transcripts, 24 through the tiny Whisper."""
    wavs = sorted((shared_data / "ljspeech" / "wavs").glob("*.wav"))
    assert len(wavs) == 32
    meta = read_csv(shared_data / "ljspeech" / "metadata.csv")
    supplied = {Path(r["audio_file"]).stem: r["text"] for r in meta}
    transcripts = tmp_path / "transcripts.csv"
    with open(transcripts, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="|", lineterminator="\n")
        writer.writerow(["audio_file", "text", "speaker_name"])
        for row in meta:
            writer.writerow([row["audio_file"], row["text"], "linda"])
    lines, log = quiet_log()
    options = DatasetOptions(speaker="linda")
    report = ds.build("lj", wavs, "en", transcripts=transcripts, options=options, progress=no_progress, log_fn=log)
    root = report.path

    # the 8 supplied survive whole, with their exact text and speaker
    table = {r.clip: r for r in ds.load_table("lj")}
    for stem, text in supplied.items():
        row = table[f"{stem}.wav"]
        assert row.text == text and row.speaker == "linda"
        assert row.duration == pytest.approx(
            sf.info(str(shared_data / "ljspeech" / "wavs" / f"{stem}.wav")).duration, abs=0.01
        )
    assert sorted(report.transcripts_missing) == sorted(w.name for w in wavs if w.stem not in supplied)
    assert report.transcripts_extra == []

    # the 24 others went through the tiny Whisper: each is kept with its clips or skipped without a transcript
    whisper_rows = [f for f in report.files if f.transcript == "whisper"]
    assert len(whisper_rows) == 24
    for f in whisper_rows:
        assert (f.status, f.reason) in {("kept", ""), ("skipped", "no transcript")}, f
        assert (f.clips > 0) == (f.status == "kept")
    assert report.clips == 8 + sum(f.clips for f in whisper_rows)
    for clip, row in table.items():
        assert row.text.strip(), clip  # a clip with empty text never makes it in
    if any(f.reason == "no transcript" for f in whisper_rows):
        assert report.dropped.get("no transcript", 0) >= sum(f.reason == "no transcript" for f in whisper_rows)

    # coqui's loader reads what we wrote; eval share respected; every wav is 22.05 kHz mono PCM16
    train, evals = load_coqui(root, "en")
    assert len(train) + len(evals) == report.clips
    assert len(evals) == max(1, round(0.15 * report.clips)) == report.eval_clips
    by_file = {Path(s["audio_file"]).name: s["text"] for s in train + evals}
    assert by_file["LJ001-0007.wav"] == supplied["LJ001-0007"]  # the quotes survive the CSV round trip
    for wav in (root / "wavs").glob("*.wav"):
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")

    info = json.loads((root / "dataset.json").read_text())
    assert info["language"] == "en" and info["status"] == "ready" and info["app_version"]
    sources = {i["source"]: i["sha256"] for i in info["inputs"]}
    assert sources["LJ001-0001.wav"] == file_sha256(wavs[0])
    assert info["settings"]["max_clip"] == 11.0 and len(info["files"]) == 32 and info["created"]

    # a re-run skips every file and rewrites nothing
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    lines.clear()
    again = ds.build("lj", wavs, "en", transcripts=transcripts, options=options, progress=no_progress, log_fn=log)
    assert again.reused == 32 and again.clips == report.clips
    assert sum("already prepared - skipping" in line for line in lines) == 32
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before


def test_rendered_speech_formats_and_transcripts(ds, rendered, speak, tmp_path) -> None:
    """WAV, M4A, MP3, OGG and stereo 44.1 kHz FLAC; one row names no file, one file has no row."""
    no_row = speak("This one has no transcript row.", "en", "wav", name="orphan")
    rows = [(p.name, text) for text, p in rendered.items()] + [("ghost.wav", "Nobody recorded this.")]
    transcripts = write_list(tmp_path / "list.txt", rows)
    report = ds.build(
        "formats",
        [*rendered.values(), no_row],
        "en",
        transcripts=transcripts,
        options=DatasetOptions(speaker="narrator"),
        progress=no_progress,
        log_fn=quiet_log()[1],
    )
    assert report.transcripts_missing == ["orphan.wav"]
    assert report.transcripts_extra == ["line 6: ghost.wav"]
    kept = {f.source: f for f in report.files if f.transcript == "supplied"}
    assert all(f.status == "kept" and f.clips == 1 for f in kept.values()), report.files
    table = {r.clip: r for r in ds.load_table("formats")}
    for text, path in rendered.items():
        row = table[f"{path.stem}.wav"]
        assert row.text == text and row.speaker == "narrator"
        audio, sr = load_audio(path)
        assert row.duration == pytest.approx(len(audio) / sr, abs=0.05)
    stereo = report.path / "wavs" / "en4-stereo.wav"
    assert (sf.info(str(stereo)).samplerate, sf.info(str(stereo)).channels) == (22050, 1)
    orphan = next(f for f in report.files if f.source == "orphan.wav")
    assert orphan.transcript == "whisper" and (orphan.status == "kept") == (orphan.clips > 0)
    train, evals = load_coqui(report.path, "en")
    assert len(train) + len(evals) == report.clips and len(evals) >= 1


def test_other_languages_with_ljspeech_metadata(ds, speak, tmp_path) -> None:
    texts = {"de0": "Guten Morgen, wie geht es dir heute?", "de1": "Das Wetter ist heute sehr schön."}
    files = [speak(t, "de", "flac", name=n) for n, t in texts.items()]
    meta = tmp_path / "metadata.csv"
    meta.write_text("".join(f"{n}|{t.upper()}|{t}\n" for n, t in texts.items()), encoding="utf-8")
    report = ds.build("german", files, "de", transcripts=meta, progress=no_progress, log_fn=quiet_log()[1])
    assert {r.text for r in ds.load_table("german")} == set(texts.values())
    assert report.language == "de" and json.loads((report.path / "dataset.json").read_text())["language"] == "de"
    # any ISO 639 code builds with a transcripts file (a language to teach XTTS, issue 21); a non-code is refused
    ds.build("klingon", files, "tlh", transcripts=meta, progress=no_progress, log_fn=quiet_log()[1])
    assert ds.info("klingon")["language"] == "tlh"
    with pytest.raises(InputError, match="not a language code"):
        ds.build("nonsense", files, "klingon!", transcripts=meta, progress=no_progress, log_fn=print)


def test_kill_mid_way_then_resume(ds, speak, tmp_path) -> None:
    files = [speak(t, "en", "wav", name=f"k{i}") for i, t in enumerate(SENTENCES[:4])]
    transcripts = write_list(tmp_path / "t.txt", [(f.name, t) for f, t in zip(files, SENTENCES)])
    calls = []

    def killer(frac, desc=None):
        calls.append(desc)
        if desc and desc.startswith("[3/4]"):
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        ds.build("resume", files, "en", transcripts=transcripts, progress=killer, log_fn=quiet_log()[1])
    root = ds.dataset_dir("resume")
    assert json.loads((root / "dataset.json").read_text())["status"] == "building"
    assert len(list((root / ".manifest").glob("*.json"))) == 2
    assert [d.status for d in ds.list_datasets() if d.name == "resume"] == ["incomplete"]

    lines, log = quiet_log()
    report = ds.build("resume", files, "en", transcripts=transcripts, progress=no_progress, log_fn=log)
    assert report.reused == 2 and report.clips == 4
    assert sum("already prepared - skipping" in line for line in lines) == 2
    assert not list((root / "wavs").glob("*.tmp")) and not list((root / "wavs").glob(".*"))
    assert len(read_csv(root / "metadata_train.csv")) + len(read_csv(root / "metadata_eval.csv")) == 4


def test_mixed_audio_and_non_audio(ds, speak, tmp_path) -> None:
    good = speak(SENTENCES[0], "en", "wav", name="good")
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio at all")
    fake = tmp_path / "fake.mp3"
    fake.write_bytes(os.urandom(4000))
    transcripts = write_list(tmp_path / "t.txt", [("good.wav", SENTENCES[0])])
    report = ds.build(
        "mixed", [good, notes, fake], "en", transcripts=transcripts, progress=no_progress, log_fn=quiet_log()[1]
    )
    rows = {f.source: f for f in report.files}
    assert rows["good.wav"].status == "kept"
    for name in ("notes.txt", "fake.mp3"):
        assert rows[name].status == "skipped" and rows[name].reason == "not audio"
        assert name in rows[name].detail
    assert report.clips == 1


def test_empty_and_silent_uploads(ds, tmp_path) -> None:
    with pytest.raises(InputError, match="No input files"):
        ds.build("empty", [], "en", progress=no_progress, log_fn=print)
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(22050 * 2, np.float32), 22050)
    hiss = tmp_path / "hiss.wav"
    sf.write(str(hiss), (np.random.default_rng(0).standard_normal(44100) * 1e-4).astype(np.float32), 44100)
    with pytest.raises(InputError, match="silent 2"):
        ds.build("quiet", [silent, hiss], "en", progress=no_progress, log_fn=quiet_log()[1])
    assert not ds.dataset_dir("quiet").exists()  # nothing half-made is left behind


def test_clobber_refused_unless_overwrite(ds, speak, tmp_path) -> None:
    a = speak(SENTENCES[0], "en", "wav", name="a")
    b = speak(SENTENCES[1], "en", "wav", name="b")
    t = write_list(tmp_path / "t.txt", [("a.wav", SENTENCES[0]), ("b.wav", SENTENCES[1])])
    ds.build("voice", [a], "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1])
    with pytest.raises(InputError, match="already exists"):
        ds.build("voice", [b], "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1])
    report = ds.build(
        "voice",
        [b],
        "en",
        transcripts=t,
        options=DatasetOptions(overwrite=True),
        progress=no_progress,
        log_fn=quiet_log()[1],
    )
    assert [r.clip for r in ds.load_table("voice")] == ["b.wav"] and report.clips == 1
    for bad in ["../x", "/tmp/x", "a/b", ""]:
        with pytest.raises(InputError):
            ds.build(bad, [a], "en", transcripts=t, progress=no_progress, log_fn=print)
    assert not (Path("/tmp/x") / "dataset.json").exists()


def test_quality_flags_and_recut(ds, speak, tmp_path) -> None:
    long_audio = speak(LONG_TEXT, "en", "wav", name="long")
    short = speak("Short clip here.", "en", "wav", name="short")
    loop = speak("The cat sat on the mat.", "en", "wav", name="loop")
    assert sf.info(str(long_audio)).duration > 11.0
    t = write_list(
        tmp_path / "t.txt",
        [("long.wav", LONG_TEXT), ("short.wav", LONG_TEXT), ("loop.wav", "the cat the cat the cat the cat sat")],
    )
    report = ds.build(
        "flags", [long_audio, short, loop], "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1]
    )
    assert report.flagged == 3
    flags = {r.clip: r.flags for r in ds.load_table("flags")}
    assert "> 11 s: the trainer drops it (re-cut)" in flags["long.wav"]
    assert "kept whole: longer than max clip" in flags["long.wav"]
    assert f"text {len(LONG_TEXT)} chars > 200" in flags["short.wav"]
    assert "repetition" not in flags["short.wav"] and "audio" not in flags["short.wav"]
    assert "repetition loop" in flags["loop.wav"]

    new = ds.recut("flags", "long.wav")
    rows = {r.clip: r for r in ds.load_table("flags")}
    assert "long.wav" not in rows and not (report.path / "wavs" / "long.wav").exists()
    assert len(new) >= 2 and all(rows[c].duration <= 11.0 for c in new)
    assert " ".join(rows[c].text for c in new).split() == LONG_TEXT.split()
    assert all("check the text split" in rows[c].flags and "trainer drops" not in rows[c].flags for c in new)
    with pytest.raises(InputError, match="nothing to re-cut"):
        ds.recut("flags", "loop.wav")


def test_edit_table_rewrites_csv_and_removes_wav(ds, speak, tmp_path) -> None:
    files = [speak(t, "en", "wav", name=f"e{i}") for i, t in enumerate(SENTENCES[:4])]
    t = write_list(tmp_path / "t.txt", [(f.name, s) for f, s in zip(files, SENTENCES)])
    report = ds.build("edit", files, "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1])
    rows = ds.load_table("edit")
    rows[0].text = "A corrected text."
    gone = rows.pop(1).clip
    result = ds.save_table("edit", rows)
    assert (result.edited, result.deleted, result.clips) == (1, 1, 3)
    assert not (report.path / "wavs" / gone).exists()
    written = read_csv(report.path / "metadata_train.csv") + read_csv(report.path / "metadata_eval.csv")
    assert {r["audio_file"] for r in written} == {f"wavs/{r.clip}" for r in rows}
    assert {r["audio_file"]: r["text"] for r in written}[f"wavs/{rows[0].clip}"] == "A corrected text."
    assert len(read_csv(report.path / "metadata_eval.csv")) >= 1
    assert ds.stats("edit").clips == 3

    # the edit survives a re-run on the same sources; the deleted clip stays deleted
    again = ds.build("edit", files, "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1])
    assert again.reused == 4 and {r.clip: r.text for r in ds.load_table("edit")}[rows[0].clip] == "A corrected text."
    assert gone not in {r.clip for r in ds.load_table("edit")}

    for bad, match in [
        ([{"clip": "nope.wav", "text": "x"}], "not in dataset"),
        ([{"clip": rows[0].clip, "text": "  "}], "empty"),
        ([{"clip": rows[0].clip, "text": "a|b"}], r"'\|'"),
        ([], "Every row"),
    ]:
        with pytest.raises(InputError, match=match):
            ds.save_table("edit", bad)


def test_a_rebuild_with_another_eval_share_or_seed_redoes_the_split(ds, speak, tmp_path) -> None:
    """Split settings change only the split: the files are reused, the split follows the new settings (and
    dataset.json never records settings the split was not made with)."""
    files = [speak(f"Sentence number {i} for the split.", "en", "wav", name=f"sp{i}") for i in range(8)]
    t = write_list(tmp_path / "t.txt", [(f.name, f"Sentence number {i} for the split.") for i, f in enumerate(files)])

    def build(**changes):
        options = dataclasses.replace(DatasetOptions(), **changes)
        return ds.build(
            "split", files, "en", transcripts=t, options=options, progress=no_progress, log_fn=quiet_log()[1]
        )

    build(eval_share=0.15, seed=1)
    before = {r.clip: r.split for r in ds.load_table("split")}
    again = build(eval_share=0.5, seed=1)
    after = {r.clip: r.split for r in ds.load_table("split")}
    assert again.reused == 8  # no file processed again
    assert list(after.values()).count("eval") > list(before.values()).count("eval")
    reseeded = build(eval_share=0.5, seed=7)
    rows = ds.load_table("split")
    assert reseeded.reused == 8
    assert {r.clip: r.split for r in rows} == assign_split({r.clip: {"speaker": r.speaker} for r in rows}, 0.5, 7)


def test_delete_refused_while_a_run_uses_it(engines, speak, tmp_path) -> None:
    ds = engines.datasets
    files = [speak(text, "en", "wav", name=f"d{i}") for i, text in enumerate(SENTENCES[:2])]
    t = write_list(tmp_path / "t.txt", [(f.name, text) for f, text in zip(files, SENTENCES)])
    ds.build("busy", files, "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1])
    # a stand-in training worker: a live process whose command line names the worker module
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "engines.training.worker"])
    cmdline = Path(f"/proc/{worker.pid}/cmdline")
    for _ in range(200):  # until the child has exec'd (a loaded machine takes a moment)
        if cmdline.is_file() and b"engines.training.worker" in cmdline.read_bytes():
            break
        time.sleep(0.05)
    try:
        run = engines.settings.workspace_sub("runs", "20260101-000000-busy")
        (run / "run.json").write_text(json.dumps({"status": "running", "dataset": "busy", "pid": worker.pid}))
        standalone = DatasetEngine(engines.settings, engines.asr)  # the default in-use check (run.json scan)
        for engine in (ds, standalone):  # the app's wiring (training engine's hook) and the default
            with pytest.raises(BusyError, match="running training run"):
                engine.delete("busy", confirm=True)
            with pytest.raises(BusyError):  # deleting clips (their wavs) is refused too
                engine.save_table("busy", engine.load_table("busy")[:1])
        with pytest.raises(InputError, match="confirm"):
            ds.delete("busy", confirm=False)
    finally:
        worker.kill()
        worker.wait()
    # the worker is gone (a crash): the dataset is no longer locked
    ds.delete("busy", confirm=True)
    assert not ds.dataset_dir("busy").exists()
    with pytest.raises(InputError, match="No dataset"):
        ds.delete("busy", confirm=True)


def test_zip_with_speaker_folders_and_unsafe_entries(ds, speak, tmp_path) -> None:
    archive = tmp_path / "upload.zip"
    texts = {}
    with zipfile.ZipFile(archive, "w") as zf:
        for spk in ("alice", "bob"):
            for i in range(3):
                text = f"{SENTENCES[i]} Said {spk}."
                wav = speak(text, "en", "wav", name=f"{spk}{i}")
                zf.write(wav, f"{spk}/{spk}{i}.wav")
                texts[f"{spk}/{spk}{i}.wav"] = text
        zf.write(wav, "copies/same-as-bob2.wav")  # the same audio twice: used once
        zf.writestr("../evil.wav", b"RIFF")
        zf.writestr("/abs.wav", b"RIFF")
        zf.writestr("readme.txt", "hello")
        zf.writestr("__MACOSX/._alice0.wav", b"junk")
    t = write_list(tmp_path / "t.txt", list(texts.items()))
    report = ds.build(
        "zipped",
        [archive],
        "en",
        transcripts=t,
        options=DatasetOptions(speaker_from_folder=True),
        progress=no_progress,
        log_fn=quiet_log()[1],
    )
    rows = {f.source: f for f in report.files}
    assert (
        rows["upload.zip/../evil.wav"].reason == "unsafe path" and rows["upload.zip//abs.wav"].reason == "unsafe path"
    )
    assert rows["upload.zip/readme.txt"].reason == "not audio"
    assert rows["upload.zip/copies/same-as-bob2.wav"].reason == "duplicate"
    assert not (tmp_path.parent / "evil.wav").exists()
    assert report.clips == 6 and any("__MACOSX" in n for n in report.notices)
    stats = ds.stats("zipped")
    assert stats.speakers == {"alice": 3, "bob": 3}
    evals = read_csv(report.path / "metadata_eval.csv")
    assert sorted(r["speaker_name"] for r in evals) == ["alice", "bob"]  # one eval clip per speaker


def test_zip_bomb_is_refused(engines, speak, tmp_path) -> None:
    from dataclasses import replace

    ds = DatasetEngine(replace(engines.settings, max_upload_mb=1), engines.asr)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.wav", b"\0" * (6 * 2**20))
    assert bomb.stat().st_size < 2**20
    good = speak(SENTENCES[0], "en", "wav", name="ok")
    t = write_list(tmp_path / "t.txt", [("ok.wav", SENTENCES[0])])
    report = ds.build("bomb", [bomb, good], "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1])
    row = next(f for f in report.files if f.source == "bomb.zip")
    assert row.status == "skipped" and row.reason == "too large" and "limit is 4 MB" in row.detail
    assert report.clips == 1


def test_validate_flags_mismatches_and_choices(ds, speak, tmp_path) -> None:
    files = [speak(t, "en", "wav", name=f"v{i}") for i, t in enumerate(SENTENCES[:3])]
    t = write_list(tmp_path / "t.txt", [(f.name, s) for f, s in zip(files, SENTENCES)])
    ds.build("val", files, "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1])
    report = ds.validate("val", cer_threshold=0.3, log_fn=quiet_log()[1])
    assert report.checked == 3
    info = ds.info("val")["clips"]
    for entry in info.values():
        assert entry["cer"] == pytest.approx(text_cer(entry["text"], entry["asr_text"], "en"), abs=1e-3)
    flagged = {m.clip for m in report.mismatches}
    assert flagged == {c for c, e in info.items() if e["cer"] > 0.3}
    table = {r.clip: r for r in ds.load_table("val")}
    for clip in table:
        assert ("ASR mismatch" in table[clip].flags) == (clip in flagged)
    if flagged:  # the tiny Whisper hears gibberish: resolve each way
        first = sorted(flagged)[0]
        row = ds.apply_choice("val", first, "keep")
        assert "ASR mismatch" not in row.flags
        row = ds.apply_choice("val", first, "edit", "Edited by hand.")
        assert row.text == "Edited by hand."
        written = read_csv(ds.dataset_dir("val") / "metadata_train.csv") + read_csv(
            ds.dataset_dir("val") / "metadata_eval.csv"
        )
        assert {r["audio_file"]: r["text"] for r in written}[f"wavs/{first}"] == "Edited by hand."
        if info[first]["asr_text"]:
            assert ds.apply_choice("val", first, "asr").text == info[first]["asr_text"]
        else:
            with pytest.raises(InputError, match="heard nothing"):
                ds.apply_choice("val", first, "asr")
    with pytest.raises(InputError):
        ds.apply_choice("val", sorted(table)[0], "maybe")


# ----------------------------------------------------------------- one rule for text and speaker columns


def test_spoken_form_column_wins_with_or_without_header(tmp_path) -> None:
    """LJSpeech headerless picks the third (normalized) column; a header picks transcription/normalized_text."""
    headerless = tmp_path / "lj.csv"
    headerless.write_text("LJ7|of about 1455,|of about fourteen fifty-five,\n", encoding="utf-8")
    headered = tmp_path / "meta.csv"
    headered.write_text(
        "audio_file|text|transcription|speaker_name\n"
        "wavs/LJ7.wav|of about 1455,|of about fourteen fifty-five,|ljspeech-3\n"
        "wavs/LJ8.wav|has never been surpassed.||ljspeech-3\n",
        encoding="utf-8",
    )
    (row,), _ = parse_transcripts(headerless)
    rows, problems = parse_transcripts(headered)
    assert row.text == rows[0].text == "of about fourteen fifty-five,"
    assert rows[1].text == "has never been surpassed." and not problems  # empty spoken cell: the raw text
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("file|normalized_text|text\nx.wav|sixteen dollars|$16\n", encoding="utf-8")
    assert parse_transcripts(swapped)[0][0].text == "sixteen dollars"


def test_speaker_column_trust_and_eval_share() -> None:
    from engines.datasets import speaker_column_rule

    # LJSpeech-style chunk names: 4 "speakers" with 2 clips each are not speakers
    assert speaker_column_rule([f"ljspeech-{i // 2}" for i in range(8)], 0.15)
    # one name, or names with enough clips each (ceil(1 / 0.15) = 7), are trusted
    assert speaker_column_rule(["linda"] * 3, 0.15) is None
    assert speaker_column_rule(["a"] * 7 + ["b"] * 9, 0.15) is None
    assert speaker_column_rule(["a"] * 7 + ["b"] * 6, 0.15)
    # the eval share holds whatever the speaker column says (one eval clip per speaker at most adds one)
    for speakers in ([f"s{i}" for i in range(40)], [f"s{i // 2}" for i in range(40)], ["a"] * 20 + ["b"] * 20):
        clips = {f"c{i}.wav": {"speaker": s} for i, s in enumerate(speakers)}
        split = assign_split(clips, 0.15, seed=3)
        evals = [c for c, v in split.items() if v == "eval"]
        per_speaker = {clips[c]["speaker"] for c in evals}
        if len(set(speakers)) == 2:
            assert len(evals) == 6 and per_speaker == {"a", "b"}
        elif len(set(speakers)) == 40:  # one-clip speakers: the share is taken across them
            assert len(evals) == 6
    # 2-clip speakers each want their one eval clip: that is why such a column is not trusted
    split = assign_split({f"c{i}.wav": {"speaker": f"s{i // 2}"} for i in range(8)}, 0.15, seed=3)
    assert list(split.values()).count("eval") == 4


def test_untrusted_speaker_column_is_ignored_with_a_notice(ds, speak, tmp_path) -> None:
    files = [speak(t, "en", "wav", name=f"sp{i}") for i, t in enumerate(SENTENCES[:4])]
    meta = tmp_path / "metadata.csv"
    meta.write_text(
        "audio_file|text|speaker_name\n"
        + "".join(f"{f.name}|{t}|chunk-{i // 2}\n" for i, (f, t) in enumerate(zip(files, SENTENCES))),
        encoding="utf-8",
    )
    report = ds.build("spk", files, "en", transcripts=meta, progress=no_progress, log_fn=quiet_log()[1])
    assert any("speaker column" in n and "ignored" in n for n in report.notices)
    assert ds.stats("spk").speakers == {"spk": 4} and report.eval_clips == 1


# ----------------------------------------------------------------- failed builds


def test_failed_build_leaves_no_half_dataset(engines, speak, tmp_path, monkeypatch) -> None:
    from engines.core.errors import LabError

    ds = engines.datasets
    a = speak(SENTENCES[0], "en", "wav", name="fa")
    b = speak(SENTENCES[1], "en", "wav", name="fb")
    t = write_list(tmp_path / "t.txt", [("fa.wav", SENTENCES[0])])  # fb goes through Whisper

    def broken(*_a, **_k):
        raise LabError("Whisper fell over")

    monkeypatch.setattr(engines.asr, "transcribe_batch", broken)
    # the first file fails: nothing finished, nothing left behind
    with pytest.raises(LabError, match="fell over"):
        ds.build("fail1", [b, a], "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1])
    assert not ds.dataset_dir("fail1").exists()
    # a later file fails: the dataset says "failed", has no metadata CSV (training cannot pick it) and can go
    with pytest.raises(LabError, match="fell over"):
        ds.build("fail2", [a, b], "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1])
    root = ds.dataset_dir("fail2")
    assert [(d.name, d.status) for d in ds.list_datasets()] == [("fail2", "failed")]
    assert "fell over" in ds.info("fail2")["error"]
    assert not (root / "metadata_train.csv").exists() and "fail2" not in engines.training.list_datasets()
    monkeypatch.undo()  # fixed: a re-run resumes from the finished file
    report = ds.build("fail2", [a, b], "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1])
    assert report.reused == 1 and ds.info("fail2")["status"] == "ready" and "error" not in ds.info("fail2")
    ds.delete("fail2", confirm=True)


class _Soften:
    """A stand-in clean-up (the builder's hook is any ``(audio, sr) -> audio``): what it does to the audio does
    not matter here, only that cleaned and original differ (non-linearly: the builder normalises loudness)."""

    name = "soften"
    records: list = []

    def __call__(self, audio, sr):
        audio = np.asarray(audio, dtype=np.float32)
        return np.sign(audio) * np.abs(audio) ** 0.8


def test_a_cleaned_clip_can_train_on_its_original_and_back(engines, speak, tmp_path) -> None:
    """A clean-up is undone per clip from the review (and by the dataset_clip_audio endpoint), and redone."""
    from pages.api import endpoints
    from pages.finetune_dataset import clip_audio_callback

    ds = engines.datasets
    files = [speak(t, "en", "wav", name=f"c{i}") for i, t in enumerate(SENTENCES[:3])]
    t = write_list(tmp_path / "t.txt", [(f.name, s) for f, s in zip(files, SENTENCES)])
    report = ds.build(
        "cleaned", files, "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1], cleanup=_Soften()
    )
    clip = ds.load_table("cleaned")[0].clip
    wav, original = report.path / "wavs" / clip, report.path / "wavs_original" / clip
    cleaned_bytes = wav.read_bytes()
    assert original.is_file() and original.read_bytes() != cleaned_bytes

    message, *_ = clip_audio_callback(engines, "cleaned", clip, "original")
    assert "now trains on its original audio" in message
    assert wav.read_bytes() == original.read_bytes()
    assert (report.path / "wavs_cleaned" / clip).read_bytes() == cleaned_bytes  # nothing lost either way
    assert "trains on the original audio" in {r.clip: r.flags for r in ds.load_table("cleaned")}[clip]
    assert json.loads((report.path / "dataset.json").read_text())["clips"][clip]["audio"] == "original"
    assert ds.use_audio("cleaned", clip, "original") == "original"  # again: nothing changes
    assert (report.path / "wavs_cleaned" / clip).read_bytes() == cleaned_bytes

    assert endpoints(engines)["dataset_clip_audio"]("cleaned", clip, "cleaned") == "cleaned"
    assert wav.read_bytes() == cleaned_bytes and not (report.path / "wavs_cleaned" / clip).exists()
    assert "trains on the original" not in {r.clip: r.flags for r in ds.load_table("cleaned")}[clip]

    with pytest.raises(InputError, match="must be one of"):
        ds.use_audio("cleaned", clip, "raw")
    with pytest.raises(InputError, match="not in dataset"):
        ds.use_audio("cleaned", "nope.wav", "original")
    ds.build("plain", files[:2], "en", transcripts=t, progress=no_progress, log_fn=quiet_log()[1])
    with pytest.raises(InputError, match="No clean-up ran"):
        ds.use_audio("plain", ds.load_table("plain")[0].clip, "original")
