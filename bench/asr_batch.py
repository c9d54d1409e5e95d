"""Benchmark 1: eval-loop ASR, one transcribe() call per clip vs batched decoding.

Both paths run through engines.asr with the same options (language forced, temperature 0,
text only), so the transcripts must be identical; the bench checks that and says so.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import Row, clips
from config import load_settings

BATCH_SIZES = (1, 4, 8, 16, 32)


def _random_whisper(dims_name: str, folder: Path) -> Path:
    """A full-size Whisper architecture with random weights (same compute per token as the real one)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    sizes = {  # openai/whisper's published dimensions
        "base": dict(
            n_audio_state=512, n_audio_head=8, n_audio_layer=6, n_text_state=512, n_text_head=8, n_text_layer=6
        ),
        "small": dict(
            n_audio_state=768, n_audio_head=12, n_audio_layer=12, n_text_state=768, n_text_head=12, n_text_layer=12
        ),
    }[dims_name]
    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_vocab=51865, n_text_ctx=448, **sizes)
    path = folder / f"random-{dims_name}.pt"
    torch.save({"dims": dims.__dict__, "model_state_dict": Whisper(dims).state_dict()}, path)
    return path


def _compare(
    model_id: str, label: str, audio: list[np.ndarray], total_audio: float, engine, batch_sizes: tuple[int, ...]
) -> list[Row]:
    from engines.asr import ASROptions

    options = ASROptions(language="en", temperature=0.0, segment_timestamps=False)
    engine.load(model_id)
    engine.transcribe_array(audio[0], options, model_id)  # warm-up, not counted
    start = time.perf_counter()
    sequential = [engine.transcribe_array(a, options, model_id) for a in audio]
    seq_seconds = time.perf_counter() - start
    rows = [
        Row(
            "asr",
            f"{label}: sequential transcribe(), {len(audio)} clips",
            seq_seconds,
            "s",
            extra={"rtf": seq_seconds / total_audio},
        )
    ]
    for bs in batch_sizes:
        start = time.perf_counter()
        batched = engine.transcribe_batch(audio, options, model_id, batch_size=bs)
        seconds = time.perf_counter() - start
        same = [a.text for a in sequential] == [b.text for b in batched]
        rows.append(
            Row(
                "asr",
                f"{label}: batched decode, batch {bs}",
                seq_seconds / seconds,
                "x speed-up",
                "same transcripts as sequential" if same else "TRANSCRIPTS DIFFER",
                {"seconds": seconds, "identical": same},
            )
        )
    engine.unload()
    return rows


def run(full: bool = True, n_full: int = 16) -> list[Row]:
    from engines.asr import ASREngine
    from engines.audio import load_audio
    from engines.tiny import ensure_tiny_models

    paths, what = clips(32)
    audio = [load_audio(p, sr=16000)[0] for p in paths]
    total = sum(len(a) for a in audio) / 16000
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        tiny = ensure_tiny_models(tmp_path / "tiny")
        settings = load_settings({"workspace": tmp_path / "ws", "device": "auto", "tiny_models": True}, env={})
        engine = ASREngine(settings, threading.RLock(), tiny=tiny)
        rows = [Row("asr", "input", total, "s of audio", what)]
        rows += _compare("tiny-random", "tiny Whisper (1 layer, 64 wide, random)", audio, total, engine, BATCH_SIZES)
        if full:
            path = _random_whisper("base", tmp_path)
            sub = audio[:n_full]
            rows += _compare(
                str(path),
                f"Whisper base architecture (74 M, random weights), {n_full} clips",
                sub,
                sum(len(a) for a in sub) / 16000,
                engine,
                (1, 8, 16),
            )
    return rows
