"""A generated project as one audio file with captions.

The lines are joined in their order with the project's pauses (digital silence) between them. Caption times are
not guessed from text: a cue runs from where its line's audio starts in the joined file to where it ends, counted
in samples while joining, so SRT/VTT match the WAV/FLAC exactly (to the millisecond the formats hold). MP3 is
encoded by ffmpeg from the same samples; its decoders trim the encoder delay, so the times hold for it too.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engines.core.audio import atomic_file, load_audio, pcm16, save_wav, write_text
from engines.core.errors import InputError, LabError
from engines.core.provenance import name_stamp
from engines.scripts.generate import pending_lines
from engines.scripts.project import Project, ProjectStore

EXPORT_FORMATS = ("wav", "flac", "mp3")
EXPORTS_DIR = "exports"


@dataclass(frozen=True)
class Cue:
    """One caption: a line's text over its audio in the joined file."""

    index: int  # 1-based
    start: float  # seconds
    end: float
    text: str
    speaker: str
    line_id: str


@dataclass
class Joined:
    audio: np.ndarray
    sample_rate: int
    cues: list[Cue]

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


def join(store: ProjectStore, project: Project) -> Joined:
    """Every line's WAV in order, with the pauses, and the cues measured while joining.

    Raises:
        InputError: lines are not generated yet (the message names how many and which first).
    """
    missing = pending_lines(store, project)
    if missing:
        raise InputError(
            f"{len(missing)} line(s) of {project.name!r} are not generated yet (first: {missing[0]}). "
            "Generate the project first; lines already done are skipped."
        )
    folder = store.folder(project.name)
    rate = 0
    parts: list[np.ndarray] = []
    cues: list[Cue] = []
    position = 0
    for i, line in enumerate(project.lines):
        assert line.take is not None  # every line is done (checked above)
        audio, sr = load_audio(folder / line.take.file)
        if rate and sr != rate:
            raise LabError(f"Line {line.id} is at {sr} Hz, the others at {rate} Hz; regenerate it.")
        rate = sr
        if i == 0 and project.lead_in > 0:
            lead = np.zeros(round(project.lead_in * rate), np.float32)
            parts.append(lead)
            position += len(lead)
        parts.append(audio)
        cues.append(Cue(i + 1, position / rate, (position + len(audio)) / rate, line.text, line.speaker, line.id))
        position += len(audio)
        if i < len(project.lines) - 1:
            gap = np.zeros(round(project.pause_after(line) * rate), np.float32)
            parts.append(gap)
            position += len(gap)
    return Joined(np.concatenate(parts), rate, cues)


def _stamp(seconds: float, sep: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{millis:03d}"


def _cue_text(cue: Cue, speakers: bool) -> str:
    text = cue.text.replace("-->", "->")  # the one sequence neither format allows inside a cue
    return f"{cue.speaker}: {text}" if speakers and cue.speaker else text


def to_srt(cues: list[Cue], speakers: bool = True) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    blocks = [f"{c.index}\n{_stamp(c.start, ',')} --> {_stamp(c.end, ',')}\n{_cue_text(c, speakers)}\n" for c in cues]
    return "\n".join(blocks)


def to_vtt(cues: list[Cue], speakers: bool = True) -> str:
    """WebVTT: ``WEBVTT`` header, ``HH:MM:SS.mmm`` cues; a speaker as a voice span (``<v Ann>``)."""
    blocks = ["WEBVTT\n"]
    for c in cues:
        text = c.text.replace("-->", "->").replace("<", "&lt;").replace(">", "&gt;")
        if speakers and c.speaker:
            text = f"<v {c.speaker}>{text}"
        blocks.append(f"{c.line_id}\n{_stamp(c.start, '.')} --> {_stamp(c.end, '.')}\n{text}\n")
    return "\n".join(blocks)


def encode(audio: np.ndarray, sample_rate: int, fmt: str, path: Path) -> Path:
    """Write the joined audio atomically as WAV (16-bit), FLAC (16-bit) or MP3 (ffmpeg, 128 kbit/s).

    Raises:
        InputError: unknown format. LabError: ffmpeg missing or failed.
    """
    if fmt == "wav":
        return save_wav(path, audio, sample_rate)
    if fmt == "flac":
        with atomic_file(path) as tmp:
            sf.write(tmp, pcm16(audio), sample_rate, format="FLAC", subtype="PCM_16")
        return path
    if fmt == "mp3":
        buffer = io.BytesIO()
        sf.write(buffer, pcm16(audio), sample_rate, format="WAV", subtype="PCM_16")
        command = ["ffmpeg", "-nostdin", "-v", "error", "-f", "wav", "-i", "pipe:0", "-c:a", "libmp3lame"]
        command += ["-b:a", "128k", "-f", "mp3", "pipe:1"]
        try:
            done = subprocess.run(command, input=buffer.getvalue(), capture_output=True, check=False)
        except OSError as exc:
            raise LabError(f"MP3 export needs the ffmpeg program, which could not be run ({exc}).") from exc
        if done.returncode != 0:
            raise LabError(f"ffmpeg could not encode MP3: {done.stderr.decode(errors='replace').strip()[-300:]}")
        with atomic_file(path) as tmp:
            Path(tmp).write_bytes(done.stdout)
        return path
    raise InputError(f"Unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}.")


@dataclass
class Export:
    audio: Path
    srt: Path
    vtt: Path
    seconds: float
    cues: list[Cue]


def export(store: ProjectStore, name: str, fmt: str = "wav", speakers: bool = True) -> Export:
    """Join the project and write ``exports/<name>_<stamp>.<fmt>`` with ``.srt`` and ``.vtt`` beside it.

    Args:
        store: where the project lives.
        name: the project.
        fmt: wav, flac or mp3.
        speakers: prefix each caption with its speaker label.

    Raises:
        InputError: unknown format, or lines not generated yet.
    """
    fmt = (fmt or "wav").lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"Unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}.")
    project = store.load(name)
    joined = join(store, project)
    folder = store.folder(project.name) / EXPORTS_DIR
    stem = f"{project.name}_{name_stamp(millis=True)}"
    audio = encode(joined.audio, joined.sample_rate, fmt, folder / f"{stem}.{fmt}")
    srt = write_text(folder / f"{stem}.srt", to_srt(joined.cues, speakers))
    vtt = write_text(folder / f"{stem}.vtt", to_vtt(joined.cues, speakers))
    return Export(audio, srt, vtt, joined.seconds, joined.cues)


__all__ = ["EXPORT_FORMATS", "Cue", "Export", "Joined", "encode", "export", "join", "to_srt", "to_vtt"]
