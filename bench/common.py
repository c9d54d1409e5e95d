"""Shared bench helpers: hardware description, input clips, result rows."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_LJ = ROOT.parent / "shared" / "data" / "ljspeech"

# Used when ../shared/data is absent: espeak-ng renders these (robotic; timing only).
FALLBACK_SENTENCES = [
    "Printing, in the only sense with which we are at present concerned, differs from most arts.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "She sells sea shells by the sea shore on a sunny afternoon.",
    "A journey of a thousand miles begins with a single step forward.",
    "The committee will meet again on the third of December at noon.",
    "Numbers like forty two and one hundred seven are hard to read aloud.",
    "Every morning the baker opens his shop before the sun comes up.",
    "They walked along the quiet street, talking about the old days.",
]


@dataclass
class Row:
    """One benchmark figure."""

    bench: str  # which benchmark (asr, tts, loop, start)
    case: str  # what was measured
    value: float | None  # the figure (None = not measured)
    unit: str  # s, x, RTF, utt/min, MB ...
    note: str = ""  # model size, real/random weights, why not measured
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hardware() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def clips(n: int = 32, folder: Path | None = None) -> tuple[list[Path], str]:
    """Up to n speech clips: the LJSpeech wavs when ../shared is there, else espeak-ng renders."""
    if SHARED_LJ.is_dir():
        wavs = sorted((SHARED_LJ / "wavs").glob("LJ001-*.wav"))[:n]
        if wavs:
            return wavs, f"{len(wavs)} LJSpeech clips (real speech, 1.9-10 s)"
    if shutil.which("espeak-ng") is None:
        raise SystemExit("No ../shared/data and no espeak-ng: install espeak-ng to render bench inputs.")
    folder = folder or Path(tempfile.mkdtemp(prefix="xtts-bench-"))
    out = []
    for i in range(n):
        path = folder / f"clip{i:02d}.wav"
        text = FALLBACK_SENTENCES[i % len(FALLBACK_SENTENCES)]
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True)
        out.append(path)
    return out, f"{n} espeak-ng clips (rendered speech)"


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def coqui_sampling(options: Any = None) -> dict[str, Any]:
    """``TTSOptions`` (default: the engine's defaults) as the sampling keywords coqui's ``Xtts.inference`` and
    ``inference_stream`` take, coqui's own sentence splitting off: every option spelled out, as a coqui user
    passing our settings would."""
    from engines.core.options import TTSOptions

    opts = options if options is not None else TTSOptions()
    return {
        "temperature": opts.temperature,
        "length_penalty": opts.length_penalty,
        "repetition_penalty": opts.repetition_penalty,
        "top_k": opts.top_k,
        "top_p": opts.top_p,
        "speed": opts.speed,
        "enable_text_splitting": False,
    }


def full_size_xtts(folder: Path, device: str, gpt_layers: int | None = None) -> tuple[Any, Any, Any, float]:
    """The full-size XTTS v2 architecture with random weights (seeded), its tokenizer in ``folder``, and the
    voice latents of 6 s of seeded noise: ``(model, gpt_cond_latent, speaker_embedding, params in millions)``.
    ``gpt_layers`` (dry runs only) keeps every width but stacks fewer GPT layers than the real 30."""
    import torch
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    from engines.tiny import build_tokenizer

    vocab = folder / "vocab.json"
    build_tokenizer(vocab)
    config = XttsConfig()  # full-size defaults: 30 GPT layers, 1024 wide, 16 heads
    config.model_args.gpt_use_perceiver_resampler = True
    config.model_args.tokenizer_file = str(vocab)
    if gpt_layers is not None:
        config.model_args.gpt_layers = gpt_layers
    torch.manual_seed(0)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(vocab_file=str(vocab))
    model.init_models()
    model.gpt.init_gpt_for_inference(kv_cache=True)
    model.to(device).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    ref_audio = torch.randn(1, 22050 * 6) * 0.1
    with torch.inference_mode():
        latent = model.get_gpt_cond_latents(ref_audio.to(device), 22050, length=6, chunk_length=6)
        emb = model.get_speaker_embedding(ref_audio.to(device), 22050)
    return model, latent, emb, params
