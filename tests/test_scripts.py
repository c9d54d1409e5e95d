"""Script projects (issue 22): parsing, the project store, resumable generation (survives kill -9),
one-line regeneration, export with captions whose times match the audio, and the pronunciation map."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engines.core.audio import file_sha256
from engines.core.errors import InputError
from engines.scripts.generate import pending_lines
from engines.scripts.parse import parse_script
from engines.scripts.project import VoiceChoice, edit_line, move_line, parse_voices
from engines.scripts.studio import ScriptStudio
from engines.tts import pronounce
from engines.tts.engine import TTSOptions

ROOT = Path(__file__).resolve().parents[1]
FAST = TTSOptions(max_audio_tokens=6, seed=3)  # ~0.25 s of tiny-model noise per line


# ---------------------------------------------------------------- parsing


def test_parse_labels_pauses_and_comments():
    script = "[pause:0.5s]\nAnn: Hello there.\n# a comment\n\nBob: Hi Ann. [pause:700ms] How are you?\n[pause:2]\nJust narration."
    parsed = parse_script(script)
    assert parsed.lead_in == 0.5
    assert [(x.speaker, x.text, x.pause_after) for x in parsed.lines] == [
        ("Ann", "Hello there.", None),
        ("Bob", "Hi Ann.", 0.7),
        ("Bob", "How are you?", 2.0),
        ("", "Just narration.", None),
    ]


@pytest.mark.parametrize(
    ("script", "message"),
    [("", "empty"), ("[pause:1s]\n# only", "no line"), ("Ann: hi [pause:90s]", "too long"), ("x" * 1200, "1200")],
)
def test_bad_scripts_are_refused_with_a_reason(script, message):
    with pytest.raises(InputError, match=message):
        parse_script(script)


def test_voices_box_round_trip():
    voices = parse_voices("Ann = speaker:Alpha\n* = my voice\n")
    assert voices == {"Ann": VoiceChoice(speaker="Alpha"), "": VoiceChoice(voice="my voice")}
    with pytest.raises(InputError, match="Label = saved voice"):
        parse_voices("Ann speaker")


# ---------------------------------------------------------------- pronunciation


def test_pronunciation_map_words_regex_and_languages(tmp_path):
    pmap = pronounce.parse(
        {"en": [{"match": "SQL", "say": "sequel"}, {"match": r"\bDr\.", "say": "Doctor", "regex": True}],
         "*": [{"match": "XTTS", "say": "ex tee tee ess"}], "de": [{"match": "SQL", "say": "es ku el"}]}
    )  # fmt: skip
    spoken, fired = pmap.apply("Dr. Who likes sql, not SQLite, and XTTS.", "en")
    assert spoken == "Doctor Who likes sequel, not SQLite, and ex tee tee ess."
    assert [f["match"] for f in fired] == ["XTTS", "SQL", r"\bDr\."]
    assert pmap.apply("SQL", "de")[0] == "es ku el"
    pronounce.save(tmp_path, pmap)
    assert pronounce.load(tmp_path) == pmap
    for bad, message in [
        ('{"en": [{"match": "(", "say": "x", "regex": true}]}', "not a valid regex"),
        ('{"xx": []}', "not an XTTS language"),
        ("{nope", "not valid JSON"),
        ('{"en": [{"say": "x"}]}', "needs a text 'match'"),
    ]:
        with pytest.raises(InputError, match=message):
            pronounce.parse_text(bad)


def test_the_pronunciation_map_reaches_the_sidecar(engines):
    pmap = pronounce.parse({"en": [{"match": "SQL", "say": "sequel"}]})
    result = engines.tts.synthesize(
        "I like SQL.", speaker=engines.tts.speakers("tiny")[0], options=FAST, pronunciation=pmap
    )
    assert result.pronunciation["spoken_text"] == "I like sequel."
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["text"] == "I like sequel." and sidecar["pronunciation"]["original_text"] == "I like SQL."


# ---------------------------------------------------------------- projects on the tiny XTTS


def fifty_line_script() -> str:
    rows = []
    for i in range(50):
        who = "Ann" if i % 2 == 0 else "Bob"
        pause = " [pause:0.6s]" if i % 10 == 9 else ""
        rows.append(f"{who}: Line {i + 1} is short.{pause}")
    return "\n".join(rows)


def studio_for(engines) -> ScriptStudio:
    return ScriptStudio(engines.settings, engines.tts, engines.asr)


def create(studio: ScriptStudio, name: str, script: str):
    a, b = studio.tts.speakers("tiny")[:2]
    voices = {"Ann": VoiceChoice(speaker=a), "Bob": VoiceChoice(speaker=b)}
    return studio.store.create(name, script, voices, model_id="tiny", options=FAST, gap=0.3)


def wav_state(folder: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (file_sha256(p), p.stat().st_mtime_ns) for p in sorted((folder / "lines").glob("*.wav"))}


def spans(audio: np.ndarray, sr: int, min_gap: float = 0.15) -> list[tuple[float, float]]:
    """Stretches of sound between runs of digital silence at least ``min_gap`` long (measured on the file)."""
    silent = audio == 0
    out, start, run = [], None, 0
    for i, quiet in enumerate(silent):
        if quiet:
            run += 1
            if start is not None and run >= min_gap * sr:
                out.append((start / sr, (i - run + 1) / sr))
                start = None
        else:
            if start is None:
                start = i
            run = 0
    if start is not None:
        out.append((start / sr, (len(audio) - run) / sr))
    return out


@pytest.mark.slow
def test_fifty_lines_survive_kill_resume_regenerate_one_and_export_with_matching_captions(engines, tmp_path):
    import srt
    import webvtt

    studio = studio_for(engines)
    project = create(studio, "talk", fifty_line_script())
    assert len(project.lines) == 50 and project.lines[9].pause_after == 0.6
    folder = studio.store.folder("talk")

    # Generate in another process and kill -9 it halfway.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "engines.scripts", "generate", "talk"]
    command += ["--workspace", str(engines.settings.workspace_dir), "--tiny-models", "--device", "cpu"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    done = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                data = json.loads((folder / "project.json").read_text())
            except (OSError, json.JSONDecodeError) as exc:  # atomic writes: never half a file
                pytest.fail(f"project.json unreadable mid-run: {exc}")
            done = sum(1 for line in data["lines"] if line["take"])
            if done >= 20:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate()[0].decode(errors="replace")
    assert 20 <= done < 50, f"the subprocess did not get halfway ({done} lines):\n{out[-2000:]}"

    killed = studio.store.load("talk")
    recorded = [line for line in killed.lines if line.take]
    for line in recorded:  # every recorded line's WAV is whole and is the one recorded
        assert file_sha256(folder / line.take.file) == line.take.sha256
    before = wav_state(folder)

    summary = studio.generate("talk")
    assert summary.skipped >= len(recorded) and len(summary.generated) == 50 - summary.skipped
    assert pending_lines(studio.store, studio.store.load("talk")) == []
    after_resume = wav_state(folder)
    for line in recorded:  # resumed past: not made again
        assert after_resume[f"{line.id}.wav"] == before[f"{line.id}.wav"]

    # Regenerate one line: only its file changes.
    studio.regenerate("talk", "L0010")
    after_regen = wav_state(folder)
    changed = {name for name in after_regen if after_regen[name] != after_resume[name]}
    assert changed == {"L0010.wav"}
    assert after_regen["L0010.wav"][0] != after_resume["L0010.wav"][0]

    # Export: captions (parsed by srt and webvtt) match where the lines sound in the exported WAV.
    out_files = studio.export("talk", "wav")
    audio, sr = sf.read(out_files.audio, dtype="int16")
    measured = spans(audio, sr)
    cues = list(srt.parse(out_files.srt.read_text()))
    vtt = list(webvtt.read(str(out_files.vtt)))
    assert len(measured) == len(cues) == len(vtt) == 50
    assert abs(len(audio) / sr - out_files.seconds) < 1e-3
    for (start, end), cue, vcue in zip(measured, cues, vtt, strict=True):
        assert abs(cue.start.total_seconds() - start) < 0.05 and abs(cue.end.total_seconds() - end) < 0.05
        assert abs(vtt_seconds(vcue.start) - start) < 0.05
        assert abs(vtt_seconds(vcue.end) - end) < 0.05
    assert cues[0].content == "Ann: Line 1 is short." and "Line 2 is short." in vtt[1].text
    # The 0.6 s pause after line 10 is in the audio.
    assert abs((measured[10][0] - measured[9][1]) - 0.6) < 0.05


def test_edits_touch_only_their_line_and_reorder_touches_none(engines):
    studio = studio_for(engines)
    create(studio, "small", "Ann: One.\nBob: Two.\nAnn: Three.")
    studio.generate("small")
    project = studio.store.load("small")
    assert pending_lines(studio.store, project) == []
    move_line(project, "L0003", -2)
    assert [x.id for x in project.lines] == ["L0003", "L0001", "L0002"]
    assert pending_lines(studio.store, project) == []
    edit_line(project, "L0002", text="Two, edited.")
    assert pending_lines(studio.store, project) == ["L0002"]
    studio.store.save(project)
    before = wav_state(studio.store.folder("small"))
    summary = studio.generate("small")
    assert summary.generated == ["L0002"] and summary.skipped == 2
    after = wav_state(studio.store.folder("small"))
    assert {n for n in after if after[n] != before[n]} == {"L0002.wav"}
    exported = studio.export("small", "mp3")
    assert exported.audio.suffix == ".mp3" and exported.audio.stat().st_size > 0
    assert exported.cues[0].text == "Three." and exported.cues[2].text == "Two, edited."


def test_export_before_generation_and_unknown_labels_are_refused(engines):
    studio = studio_for(engines)
    create(studio, "later", "Ann: One.\nBob: Two.")
    with pytest.raises(InputError, match="not generated yet"):
        studio.export("later", "wav")
    with pytest.raises(InputError, match="no voice"):
        create(studio, "orphan", "Cleo: Who am I?")
    with pytest.raises(InputError, match="already exists"):
        create(studio, "later", "Ann: Again.")
    with pytest.raises(InputError, match="export format"):
        studio.export("later", "ogg")


def vtt_seconds(stamp: str) -> float:
    """``HH:MM:SS.mmm`` (webvtt-py's cue times) -> seconds."""
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
