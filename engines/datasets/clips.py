"""Rules about one clip that the build and the review share: its transcription, its flags, its split."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from engines.asr.checks import repetition_loop
from engines.core.audio import resample
from engines.datasets.cutting import clean_text
from engines.datasets.options import ASR_RATE, SAMPLE_RATE

TRAINER_MIN_SECONDS = 0.5  # GPTTrainer's dataset drops clips under half a second


def transcribe_clips(
    asr: Any, clips: list[np.ndarray], language: str | None, model_id: str, labels: list[str]
) -> list[tuple[str, str | None]]:
    """What Whisper hears in each clip (22.05 kHz samples), and the language it heard: the decode the build and
    validation share, batched (``ASREngine.transcribe_batch``).

    Clips are packed into shared 30 s windows (``ASROptions.pack``: a clip's text is the words Whisper's alignment
    places inside it, so nothing of a neighbour's; about 3x less encoder work for clips of a few seconds); a clip
    packing cannot vouch for is decoded alone, text-only, with the same voice-activity check, fallback ladder and
    loop guard as one ``transcribe_array`` call. ``language`` None lets a multilingual Whisper detect each clip's
    language (the build's per-clip language check); clips are packed with others of their language only.

    Returns:
        (cleaned text, language Whisper decoded in) per clip, in order.
    """
    from engines.asr.engine import ASROptions

    if not clips:
        return []
    transcripts = asr.transcribe_batch(
        [resample(clip, SAMPLE_RATE, ASR_RATE) for clip in clips],
        ASROptions(language=language or None, pack=True),
        model_id=model_id,
        sources=labels,
    )
    return [(clean_text(t.text), t.language) for t in transcripts]


def multilingual(asr: Any, model_id: str) -> bool:
    """Whether the Whisper model can detect languages (English-only models cannot).

    Asked through the ASR engine's public guard: an English-only model refuses another language.
    """
    from engines.core.errors import LabError

    try:
        asr.check_language(model_id, "de")
    except LabError:
        return False
    return True


def clip_flags(
    entry: Mapping[str, Any],
    limits: Mapping[str, Any],
    language: str,
    token_counter: Callable[[str, str], int] | None = None,
) -> list[str]:
    """Quality flags of one clip, computed from its current text and audio (never stale)."""
    flags = list(entry.get("notes", []))
    duration = float(entry.get("duration", 0.0))
    text = str(entry.get("text", ""))
    if duration > limits["trainer_max_seconds"] + 1e-6:
        flags.append(f"audio {duration:.1f} s > {limits['trainer_max_seconds']:g} s: the trainer drops it (re-cut)")
    elif duration < TRAINER_MIN_SECONDS:
        flags.append(f"audio under {TRAINER_MIN_SECONDS:g} s: the trainer drops it")
    if len(text) > limits["trainer_max_text"]:
        flags.append(f"text {len(text)} chars > {limits['trainer_max_text']}: the trainer drops it (re-cut)")
    elif token_counter is not None and language:
        tokens = token_counter(text, language)
        if tokens > limits["trainer_max_text"]:
            flags.append(f"text {tokens} tokens > {limits['trainer_max_text']}: the trainer drops it (re-cut)")
    loop = repetition_loop(text)
    if loop:
        flags.append(f"repetition loop: {loop}")
    flags.extend(entry.get("screen", []))
    if entry.get("audio") == "original":
        flags.append("trains on the original audio (clean-up undone; its scores are of the cleaned audio)")
    cer = entry.get("cer")
    if cer is not None and cer > limits["cer_threshold"] and not entry.get("choice"):
        flags.append(f"ASR mismatch (CER {cer:.2f}): heard {entry.get('asr_text', '')!r}")
    return flags


def assign_split(clips: Mapping[str, Mapping[str, Any]], share: float, seed: int) -> dict[str, str]:
    """Train/eval per clip: ``share`` of all clips go to eval, spread over the speakers.

    The eval count is ``round(share x clips)`` (at least one, never all), shared out in proportion to
    each speaker's clips (largest remainders first; a one-clip speaker can only give its whole clip).
    Every speaker with two clips or more keeps one eval clip even when that goes over the count (a
    speaker the eval set never hears is not evaluated): with many such small speakers the share grows,
    which is why a transcripts file's speaker column must pass ``speaker_column_rule`` to be used.
    Within a speaker the clips are taken in a seeded hash order, so the choice is stable when clips
    are added.

    Returns:
        {clip: "train" | "eval"}; at least one eval clip whenever there are two clips or more.
    """

    def rank(clip: str) -> str:
        return hashlib.sha1(f"{seed}:{clip}".encode()).hexdigest()

    split = {clip: "train" for clip in clips}
    if len(split) < 2:
        return split
    by_speaker: dict[str, list[str]] = {}
    for clip, entry in clips.items():
        by_speaker.setdefault(str(entry.get("speaker", "")), []).append(clip)
    total = min(len(split) - 1, max(1, round(share * len(split))))
    quota = {spk: share * len(names) for spk, names in by_speaker.items()}
    count = {spk: (max(1, int(quota[spk])) if len(names) >= 2 else 0) for spk, names in by_speaker.items()}
    # the rest of the count by largest remainder; a one-clip speaker may give its clip, others keep one
    for spk in sorted(by_speaker, key=lambda k: (-(quota[k] - int(quota[k])), rank(min(by_speaker[k], key=rank)))):
        if sum(count.values()) >= total:
            break
        if count[spk] < max(1, len(by_speaker[spk]) - 1):
            count[spk] += 1
    for spk, names in by_speaker.items():
        for clip in sorted(names, key=rank)[: count[spk]]:
            split[clip] = "eval"
    return split
