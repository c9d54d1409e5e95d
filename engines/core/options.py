"""Generation settings: the one definition of XTTS's sampling options, their defaults and their ranges.

Torch-free, so ``config.Settings`` carries a ``TTSOptions`` (``settings.generation``) that env variables
and ``my_config.py`` override, and every engine, page and headless run starts from that one object.
"""

from __future__ import annotations

from dataclasses import dataclass

# Allowed ranges of the numeric options (inclusive); pages build their sliders from these.
OPTION_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.05, 2.0),
    "top_k": (1, 500),
    "top_p": (0.05, 1.0),
    "repetition_penalty": (1.0, 20.0),
    "length_penalty": (-10.0, 10.0),
    "speed": (0.5, 2.0),
    "seed": (0, 2**32 - 1),
    "max_audio_tokens": (1, 100_000),
}


@dataclass(frozen=True)
class TTSOptions:
    """Generation settings for one request (XttsConfig's own defaults)."""

    language: str = "en"  # one of XTTS_LANGUAGES ("zh" is accepted for "zh-cn")
    temperature: float = 0.85  # sampling temperature of the GPT; lower = steadier, flatter
    top_k: int = 50  # sample from the k most likely audio tokens
    top_p: float = 0.85  # nucleus sampling mass
    repetition_penalty: float = 2.0  # discourages loops and long "uhhh"s
    length_penalty: float = 1.0  # only matters for beam search (kept for completeness)
    speed: float = 1.0  # time-stretch of the GPT latents; 1.0 = as generated
    seed: int | None = 1234  # same seed + same input = same audio; None = a fresh random seed
    split_sentences: bool = True  # one generation per sentence (long sentences are wrapped anyway)
    max_audio_tokens: int | None = None  # cap on GPT audio tokens per sentence (benchmarks, tiny mode)


__all__ = ["OPTION_RANGES", "TTSOptions"]
