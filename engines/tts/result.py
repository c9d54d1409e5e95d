"""What one synthesis returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class TTSResult:
    """One synthesis: the audio, where it was saved, and how long it took."""

    audio: np.ndarray  # float32 mono
    sample_rate: int  # 24000 for XTTS v2
    path: Path | None  # the WAV, when saved
    sidecar: Path | None  # the JSON with every parameter, when saved
    gen_seconds: float  # wall time of synthesis (voice latents + generation), model load excluded
    audio_seconds: float  # duration of the output
    rtf: float  # gen_seconds / audio_seconds (below 1 = faster than real time)
    latents_cached: bool  # the voice latents came from the cache
    model_id: str  # the model that spoke
    notices: list[str]  # things the user should know (trimmed reference, fallbacks)
    seed: int | None = None  # the seed actually used (a fresh one when options.seed was None)
    chunks: list[str] = field(default_factory=list)  # the text pieces synthesised one by one
    streamed: bool = False  # made by synthesize_stream (chunk by chunk) rather than synthesize
    first_audio_seconds: float | None = None  # streamed only: from the call to the first chunk being ready
    retakes: dict[str, Any] | None = None  # checked synthesis: every take of every sentence (RetakeReport)
    pronunciation: dict[str, Any] | None = None  # the pronunciation rules that rewrote the text, when any fired
