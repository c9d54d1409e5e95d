"""The speaker-latent cache: voice conditioning computed once per set of reference files, bounded (LRU)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from config import Settings
from engines.core.audio import file_sha256
from engines.core.errors import AudioError
from engines.tts.conditioning import compute_voice, used_seconds
from engines.tts.references import decode_reference

if TYPE_CHECKING:
    from TTS.tts.models.xtts import Xtts


@dataclass
class Voice:
    """Conditioning for the GPT and the decoder, kept on the CPU."""

    gpt_cond_latent: torch.Tensor
    speaker_embedding: torch.Tensor
    references: list[dict[str, Any]]  # name, sha256, seconds, trimmed (for the sidecar)
    notices: list[str]


class LatentCache:
    """Voices keyed by the weights on disk, the clips' contents and every setting that changes the cut; at most
    ``settings.latent_cache_size`` of them, least recently used dropped first. Thread-safe."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        """
        Args:
            settings: returns the engine's current settings (read on each use, so a replaced one applies).
        """
        self._settings = settings
        self._voices: OrderedDict[Hashable, Voice] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._voices)

    def voice(self, model: Xtts, weights: str, reference: Sequence[Path]) -> tuple[Voice, bool]:
        """The voice of reference clips, from the cache when the same files were seen with the same weights.

        Args:
            model: the loaded model (the caller holds the GPU lock).
            weights: identity of the model's weights on disk (``XttsModels.weights_stamp``).
            reference: the clips.

        Returns:
            (the voice, whether it came from the cache).

        Raises:
            AudioError: a missing or unusable clip.
        """
        paths = [Path(p) for p in reference]
        for p in paths:
            if not p.is_file():
                raise AudioError(f"Reference file not found: {p.name}")
        hashes = tuple(file_sha256(p) for p in paths)
        settings, cfg = self._settings(), model.config
        cut = (
            settings.max_ref_seconds,
            settings.min_audio_seconds,
            cfg.max_ref_len,
            cfg.gpt_cond_len,
            cfg.gpt_cond_chunk_len,
            bool(cfg.sound_norm_refs),
        )
        key = (weights, hashes, cut)
        with self._lock:
            cached = self._voices.get(key)
            if cached is not None:
                self._voices.move_to_end(key)
                self._trim()
                return cached, True
        clips: list[np.ndarray] = []
        notices: list[str] = []
        infos: list[dict[str, Any]] = []
        for p, digest in zip(paths, hashes, strict=True):
            audio, clip_notices, info = decode_reference(p, settings)
            clips.append(audio)
            notices.extend(clip_notices)
            # XTTS itself reads only the first max_ref_len seconds of each clip: record what was really used.
            infos.append({**info, "used_seconds": round(used_seconds(model, audio), 3), "sha256": digest})
        latent, embedding = compute_voice(model, clips)
        voice = Voice(latent, embedding, infos, notices)
        with self._lock:
            self._voices[key] = voice
            self._voices.move_to_end(key)
            self._trim()
        return voice, False

    def clear(self) -> int:
        """Forget every cached voice. Returns how many entries were dropped."""
        with self._lock:
            count = len(self._voices)
            self._voices.clear()
        return count

    def _trim(self) -> None:
        """Drop the least recently used voices beyond settings.latent_cache_size (caller holds the lock)."""
        while len(self._voices) > max(self._settings().latent_cache_size, 0):
            self._voices.popitem(last=False)
