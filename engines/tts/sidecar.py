"""Saving a synthesis: the WAV under workspace/outputs/tts and its JSON sidecar with every parameter."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from engines.core.audio import save_wav, write_json
from engines.core.catalog import TINY_ID
from engines.core.names import slug
from engines.core.options import TTSOptions
from engines.core.provenance import name_stamp, utc_now, versions
from engines.tts.result import TTSResult


def output_path(folder: Path, text: str) -> Path:
    """A fresh ``<timestamp>_<slug of the text>.wav`` in ``folder``: neither it nor its sidecar exists yet."""
    stem = f"{name_stamp(millis=True)}_{slug(text.lower(), 40, fallback='tts')}"
    wav_path = folder / f"{stem}.wav"
    n = 2
    while wav_path.exists() or wav_path.with_suffix(".json").exists():
        wav_path = folder / f"{stem}-{n}.wav"
        n += 1
    return wav_path


def save(
    result: TTSResult,
    folder: Path,
    *,
    text: str,
    language: str,
    speaker: str | None,
    references: list[dict[str, Any]],
    options: TTSOptions,
    model_dir: Path | None,
    device: str | None,
    load_seconds: float,
    latents_seconds: float,
) -> tuple[Path, Path]:
    """Write the result's WAV and its sidecar (``<same name>.json``).

    Args:
        result: the finished synthesis.
        folder: where to write (workspace/outputs/tts).
        text, language, speaker, references, options: the request as it was spoken.
        model_dir: the folder of the model that spoke (None: not on disk).
        device: where the model ran.
        load_seconds, latents_seconds: time spent loading the model and computing the voice.

    Returns:
        (the WAV, the sidecar).
    """
    wav_path = output_path(folder, text)
    save_wav(wav_path, result.audio, result.sample_rate)
    record = {
        "created": utc_now(),
        "file": wav_path.name,
        "text": text,
        "language": language,
        "model_id": result.model_id,
        "model_dir": str(model_dir or ""),
        "device": device,
        "speaker": speaker,
        "references": references,
        "options": asdict(options),
        "seed_used": result.seed,
        "chunks": result.chunks,
        "sample_rate": result.sample_rate,
        "timings": {
            "model_load_seconds": round(load_seconds, 3),
            "latents_seconds": round(latents_seconds, 3),
            "gen_seconds": round(result.gen_seconds, 3),
            "audio_seconds": round(result.audio_seconds, 3),
            "rtf": round(result.rtf, 4),
            "first_audio_seconds": (
                round(result.first_audio_seconds, 3) if result.first_audio_seconds is not None else None
            ),
        },
        "streamed": result.streamed,
        "latents_cached": result.latents_cached,
        "notices": result.notices,
        "versions": versions(),
        "tiny_model": result.model_id == TINY_ID,
        "retakes": result.retakes,
        "pronunciation": result.pronunciation,
    }
    return wav_path, write_json(wav_path.with_suffix(".json"), record)
