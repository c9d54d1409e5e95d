"""Speech as the bytes a client asked for: mp3, opus (Ogg), aac (ADTS), flac, wav, pcm (raw 16-bit LE mono).

Samples become 16-bit by ``engines.core.audio.pcm16`` (what ``save_wav`` writes), so ``pcm`` bytes, a ``wav``'s data
and a decoded ``flac`` are the same samples as the saved WAV. mp3 / opus / aac go through the ``ffmpeg`` binary
(already required); ``StreamEncoder`` encodes chunk by chunk for streamed responses.
"""

from __future__ import annotations

import io
import struct
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engines.core.audio import pcm16
from engines.core.errors import LabError


@dataclass(frozen=True)
class AudioFormat:
    name: str
    media_type: str
    ffmpeg: tuple[str, ...] = ()  # encoder + muxer arguments; () = written here (pcm, wav) or by soundfile (flac)


FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        AudioFormat("mp3", "audio/mpeg", ("-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3")),
        AudioFormat("opus", "audio/ogg", ("-c:a", "libopus", "-b:a", "64k", "-f", "ogg")),
        AudioFormat("aac", "audio/aac", ("-c:a", "aac", "-b:a", "128k", "-f", "adts")),
        AudioFormat("flac", "audio/flac", ("-c:a", "flac", "-f", "flac")),
        AudioFormat("wav", "audio/wav"),
        AudioFormat("pcm", "audio/pcm"),
    )
}
DEFAULT_FORMAT = "mp3"  # OpenAI's default
_UNKNOWN_SIZE = 0xFFFFFFFF  # RIFF sizes of a WAV streamed before its length is known (ffmpeg and browsers read it)


def pcm_bytes(audio: np.ndarray) -> bytes:
    """Float samples as raw 16-bit little-endian PCM."""
    return pcm16(audio).astype("<i2", copy=False).tobytes()


def wav_header(sample_rate: int, data_bytes: int | None) -> bytes:
    """A 44-byte PCM16 mono WAV header; ``data_bytes=None`` = length unknown (streaming)."""
    data = _UNKNOWN_SIZE if data_bytes is None else data_bytes
    riff = _UNKNOWN_SIZE if data_bytes is None else 36 + data_bytes
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data)
    )


def _ffmpeg_command(fmt: AudioFormat, sample_rate: int) -> list[str]:
    return [
        "ffmpeg", "-nostdin", "-v", "error", "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
        *fmt.ffmpeg, "-flush_packets", "1", "pipe:1",
    ]  # fmt: skip


def _ffmpeg_missing(exc: OSError) -> LabError:
    return LabError(f"Encoding speech needs the ffmpeg program, which could not be run ({exc}). Install ffmpeg.")


def encode(audio: np.ndarray, sample_rate: int, name: str) -> bytes:
    """The whole clip in one format.

    Raises:
        KeyError: an unknown format name (callers check against ``FORMATS`` first).
        LabError: ffmpeg is missing or failed.
    """
    fmt = FORMATS[name]
    raw = pcm_bytes(audio)
    if name == "pcm":
        return raw
    if name == "wav":
        return wav_header(sample_rate, len(raw)) + raw
    if name == "flac":
        import soundfile as sf

        buffer = io.BytesIO()
        sf.write(buffer, pcm16(audio), sample_rate, format="FLAC", subtype="PCM_16")
        return buffer.getvalue()
    try:
        done = subprocess.run(_ffmpeg_command(fmt, sample_rate), input=raw, capture_output=True, check=False)
    except OSError as exc:
        raise _ffmpeg_missing(exc) from exc
    if done.returncode != 0:
        raise LabError(f"ffmpeg could not encode {name}: {done.stderr.decode(errors='replace').strip()[-300:]}")
    return done.stdout


class StreamEncoder:
    """Encodes a clip chunk by chunk and hands the bytes to ``sink`` as soon as they exist.

    pcm and wav (a header with unknown sizes first) are written by ``push`` itself; the other formats go through
    one ffmpeg process per stream, whose output a reader thread passes on as ffmpeg produces it (so neither pipe
    can fill up, and a slow encoder never holds back bytes that are ready).
    """

    def __init__(self, name: str, sample_rate: int, sink: Callable[[bytes], None]) -> None:
        self.name, self.sample_rate, self.sink = name, sample_rate, sink
        self._header_sent = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        if FORMATS[name].ffmpeg:
            try:
                self._proc = subprocess.Popen(
                    _ffmpeg_command(FORMATS[name], sample_rate),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
            except OSError as exc:
                raise _ffmpeg_missing(exc) from exc
            self._reader = threading.Thread(target=self._read, name=f"encode-{name}", daemon=True)
            self._reader.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        assert isinstance(stdout, io.BufferedReader)  # Popen(stdout=PIPE, bufsize=-1): read1 returns what is there
        while data := stdout.read1(65536):
            self.sink(data)

    def _wav_header(self) -> bytes:
        if self.name != "wav" or self._header_sent:
            return b""
        self._header_sent = True
        return wav_header(self.sample_rate, None)

    def push(self, audio: np.ndarray) -> None:
        raw = pcm_bytes(audio)
        if self._proc is None:
            self.sink(self._wav_header() + raw)
            return
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(raw)
            self._proc.stdin.flush()
        except BrokenPipeError as exc:
            raise LabError(f"ffmpeg stopped while encoding {self.name}.") from exc

    def finish(self) -> None:
        """Flush the encoder's tail to ``sink`` and close it.

        Raises:
            LabError: ffmpeg failed.
        """
        if self._proc is None:
            header = self._wav_header()
            if header:
                self.sink(header)
            return
        assert self._proc.stdin is not None and self._reader is not None
        self._proc.stdin.close()
        self._reader.join()
        code = self._proc.wait()
        if code != 0:
            raise LabError(f"ffmpeg could not encode {self.name} (exit status {code}).")

    def close(self) -> None:
        """Stop the encoder without waiting for its output (the client went away)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


__all__ = ["DEFAULT_FORMAT", "FORMATS", "AudioFormat", "StreamEncoder", "encode", "pcm_bytes", "wav_header"]
