"""What XTTS conditions on: the part of a reference clip it reads, voice latents, speaker embeddings.

The reference-cut rule (``conditioning_audio``) lives here once: synthesis and Eval's SIM both see exactly
the first ``max_ref_len`` seconds of a clip, level-normalised when the model asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from config import Settings
from engines.core.errors import AudioError, InputError
from engines.tts.references import COND_SR, decode_reference

if TYPE_CHECKING:
    from TTS.tts.models.xtts import Xtts

MIN_EMBED_SECONDS = 0.1  # the speaker encoder needs a few frames
NORM_PEAK = 0.75  # the peak coqui scales a reference to when the model sets sound_norm_refs


def used_seconds(model: Xtts, clip: np.ndarray) -> float:
    """How much of a clip (at ``COND_SR``) XTTS really reads: at most the model's ``max_ref_len`` seconds."""
    return min(len(clip) / COND_SR, float(model.config.max_ref_len))


def conditioning_audio(model: Xtts, clip: np.ndarray) -> torch.Tensor:
    """A reference clip (float32 at ``COND_SR``) as XTTS conditions on it, shape (1, samples): cut to the model's
    ``max_ref_len`` seconds and level-normalised when its config sets ``sound_norm_refs`` (what
    ``Xtts.get_conditioning_latents`` does to the files it reads)."""
    cfg = model.config
    audio = torch.from_numpy(np.ascontiguousarray(clip)).unsqueeze(0)[:, : int(cfg.max_ref_len * COND_SR)]
    if cfg.sound_norm_refs:
        audio = (audio / torch.abs(audio).max()) * NORM_PEAK
    return audio


def compute_voice(model: Xtts, clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(GPT conditioning latent, speaker embedding) on the CPU for clips decoded at ``COND_SR``; several clips
    are averaged (what Xtts.get_conditioning_latents does, from arrays we decoded ourselves)."""
    cfg = model.config
    embeddings, audios = [], []
    for clip in clips:
        audio = conditioning_audio(model, clip)
        embeddings.append(model.get_speaker_embedding(audio, COND_SR))
        audios.append(audio)
    latent = model.get_gpt_cond_latents(
        torch.cat(audios, dim=-1), COND_SR, length=cfg.gpt_cond_len, chunk_length=cfg.gpt_cond_chunk_len
    )
    embedding = torch.stack(embeddings).mean(dim=0)
    return latent.cpu(), embedding.cpu()


def embedding_input(audio: Path | np.ndarray, sr: int | None, settings: Settings) -> tuple[np.ndarray, int, bool]:
    """What ``speaker_embedding`` embeds: a file is read as a reference clip (``decode_reference``), an array as is.

    Returns:
        (float32 mono samples, their rate, whether they are a reference clip to cut with ``conditioning_audio``).

    Raises:
        InputError / AudioError: an array without its rate; an unusable file; audio too short to embed.
    """
    if isinstance(audio, str | Path):
        samples, _notices, _info = decode_reference(Path(audio), settings)
        rate, reference = COND_SR, True
    else:
        if sr is None:
            raise InputError("speaker_embedding: give the sample rate of the array (sr=...).")
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        rate, reference = int(sr), False
    if samples.size < MIN_EMBED_SECONDS * rate:
        raise AudioError(
            f"Audio of {samples.size / rate:.2f} s is too short for a speaker embedding "
            f"(at least {MIN_EMBED_SECONDS:g} s)."
        )
    return samples, rate, reference


def speaker_embedding(model: Xtts, samples: np.ndarray, sr: int, *, reference: bool) -> np.ndarray:
    """The model's speaker-encoder embedding of ``samples``, L2-normalised float32 (a reference clip is cut
    first, as synthesis cuts it). Call it under the GPU lock."""
    if reference:
        tensor = conditioning_audio(model, samples)
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(samples)).unsqueeze(0)
    emb = model.get_speaker_embedding(tensor, sr).reshape(-1).float().cpu().numpy()
    norm = float(np.linalg.norm(emb))
    return (emb / norm if norm > 0 else emb).astype(np.float32)
