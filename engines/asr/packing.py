"""Packing short clips into shared 30 s windows (``ASROptions.pack``).

Whisper's encoder always reads 30 s: a 3 s clip costs the encoder as much as a 30 s one, and on a CPU the encoder
is most of a batch's time (the profile is in docs/performance.md). Packed, clips of one language are laid end to
end with ``GAP_SECONDS`` of silence between them, each pack is decoded once (text only), and the decoded words go
back to their clips by time, from the cross-attention alignment (the DTW whisper uses for word timestamps): a
word belongs to the clip whose span holds its midpoint, else to the nearest one.

Whisper then hears each clip with its neighbours around it, so a clip's text can differ from its one-clip
decoding (measured on 32 LJSpeech clips: docs/asr.md). What packing cannot vouch for goes back to the one-clip
path (``redo``): a pack Whisper's fallback rules would decode again or judge silent, a clip that got no word or
too few for the speech the detector heard in it, a clip whose words loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engines.asr.backends.base import RawWord
from engines.asr.guards import loop_reason
from engines.asr.vad import SpeechRegion

SAMPLE_RATE = 16000
GAP_SECONDS = 1.0  # silence between packed clips: the alignment's boundary tolerance
WINDOW_SECONDS = 30.0  # Whisper's window: a piece of a long recording fills at most one
PACK_SECONDS = 28.0  # fill at most this much of a 30 s window (Whisper's last seconds are its least sure)
MIN_WORDS_PER_SECOND = 0.4  # fewer words than this per second of detected speech: Whisper skipped some


@dataclass(frozen=True)
class Pack:
    """Clips laid end to end: ``members`` index the caller's list, ``spans`` are their (start, end) seconds."""

    members: tuple[int, ...]
    spans: tuple[tuple[float, float], ...]
    audio: np.ndarray

    @property
    def frames(self) -> int:
        """Content length in 10 ms mel frames (what the alignment is limited to)."""
        return int(np.ceil(len(self.audio) / SAMPLE_RATE * 100))


def plan(
    lengths: Sequence[int], pack_seconds: float = PACK_SECONDS, gap_seconds: float = GAP_SECONDS
) -> list[list[int]]:
    """Group clip indices, in order, into packs that fit ``pack_seconds`` with gaps between members.

    Args:
        lengths: each clip's length in samples at 16 kHz.

    Returns:
        Lists of indices; a clip too long to share a window is a pack of its own.
    """
    limit = int(pack_seconds * SAMPLE_RATE)
    gap = int(gap_seconds * SAMPLE_RATE)
    packs: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, n in enumerate(lengths):
        need = n + (gap if current else 0)
        if current and used + need > limit:
            packs.append(current)
            current, used, need = [], 0, n
        current.append(i)
        used += need
    if current:
        packs.append(current)
    return packs


def build(members: Sequence[int], clips: Sequence[np.ndarray], gap_seconds: float = GAP_SECONDS) -> Pack:
    """The packed audio of ``members`` (indices into ``clips``) and each member's span in it."""
    gap = np.zeros(int(gap_seconds * SAMPLE_RATE), dtype=np.float32)
    pieces: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    at = 0
    for k, i in enumerate(members):
        if k:
            pieces.append(gap)
            at += len(gap)
        clip = np.asarray(clips[i], dtype=np.float32)
        spans.append((at / SAMPLE_RATE, (at + len(clip)) / SAMPLE_RATE))
        pieces.append(clip)
        at += len(clip)
    return Pack(tuple(members), tuple(spans), np.concatenate(pieces))


def pieces(
    regions: Sequence[SpeechRegion], audio_seconds: float, piece_seconds: float = WINDOW_SECONDS
) -> list[tuple[float, float]]:
    """A long recording's cuts at pauses: consecutive speech regions merged while the piece (padded by half a gap
    on each side) fits ``piece_seconds`` (one Whisper window); a region longer than that is cut into equal parts.
    Where two pieces' paddings would overlap, they meet halfway through the pause, so no word is cut or heard
    twice."""
    pad = GAP_SECONDS / 2
    groups: list[list[SpeechRegion]] = []
    for region in regions:
        if groups and (region.end + pad) - (groups[-1][0].start - pad) <= piece_seconds:
            groups[-1].append(region)
        else:
            groups.append([region])
    out: list[tuple[float, float]] = []
    for k, group in enumerate(groups):
        start = max(0.0, group[0].start - pad)
        end = min(audio_seconds, group[-1].end + pad)
        if k > 0:
            start = max(start, (groups[k - 1][-1].end + group[0].start) / 2)
        if k + 1 < len(groups):
            end = min(end, (group[-1].end + groups[k + 1][0].start) / 2)
        parts = int(np.ceil((end - start) / piece_seconds - 1e-9))
        step = (end - start) / parts
        out += [(start + i * step, start + (i + 1) * step) for i in range(parts)]
    return out


def assign(words: Sequence[RawWord], spans: Sequence[tuple[float, float]]) -> list[list[RawWord]]:
    """Each span's words, times made relative to the span's start: a word goes to the span holding its midpoint,
    else to the nearest span."""

    def distance(mid: float, span: tuple[float, float]) -> float:
        start, end = span
        return 0.0 if start <= mid <= end else min(abs(mid - start), abs(mid - end))

    out: list[list[RawWord]] = [[] for _ in spans]
    for word in words:
        mid = (word["start"] + word["end"]) / 2
        k = min(range(len(spans)), key=lambda j: distance(mid, spans[j]))
        start = spans[k][0]
        length = spans[k][1] - start
        out[k].append(
            {
                "word": word["word"],
                "start": float(min(max(word["start"] - start, 0.0), length)),
                "end": float(min(max(word["end"] - start, 0.0), length)),
                "probability": word["probability"],
            }
        )
    return out


def text_of(words: Sequence[RawWord]) -> str:
    """A clip's text from its words (each carries its leading space, as Whisper splits them)."""
    return "".join(w["word"] for w in words).strip()


def redo_reason(words: Sequence[RawWord], speech_seconds: float, loop_guard: bool = True) -> str | None:
    """Why a clip's packed result is not trusted (it is then decoded alone), or None. ``loop_guard`` is off for
    random test models, as on the one-clip path."""
    if not words:
        return "no words"
    if len(words) < MIN_WORDS_PER_SECOND * speech_seconds:
        return f"{len(words)} words for {speech_seconds:.1f} s of speech"
    loop = loop_reason(text_of(words)) if loop_guard else None
    if loop:
        return loop
    return None


__all__ = [
    "GAP_SECONDS",
    "MIN_WORDS_PER_SECOND",
    "PACK_SECONDS",
    "Pack",
    "assign",
    "build",
    "plan",
    "redo_reason",
    "text_of",
]
