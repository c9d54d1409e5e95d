"""Tiny random models of the real architectures, built offline and deterministically.

They exercise every code path (loading through the real loaders, synthesis, transcription,
fine-tuning) without downloadable weights. Their output is noise: they measure plumbing, never
quality.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from config import XTTS_LANGUAGES
from engines.core.audio import write_json

log = logging.getLogger(__name__)

TINY_VERSION = 4  # bump when the recipe changes, so stale tiny models are rebuilt
TINY_XTTS_DIRNAME = "tiny-xtts"
TINY_WHISPER_FILENAME = "tiny-whisper.pt"
TINY_SPEAKERS = ("Tiny Alice", "Tiny Bob")

# A few sentences per script so the BPE sees Latin, Cyrillic, Arabic, Devanagari, CJK and Hangul.
_CORPUS = [
    "the quick brown fox jumps over the lazy dog.",
    "printing, in the only sense with which we are at present concerned, differs from most arts.",
    "and so my fellow americans, ask not what your country can do for you.",
    "hola, ¿cómo estás? très bien, merci. guten tag, wie geht's? ciao, come stai?",
    "olá, tudo bem? dzień dobry. merhaba nasılsın. goedendag. dobrý den. jó napot.",
    "привет, как дела? مرحبا كيف حالك नमस्ते आप कैसे हैं",
    "ni hao, ni hao ma. annyeong haseyo. konnichiwa, genki desu ka.",
    "0123456789 one two three four five six seven eight nine ten hundred thousand",
]


@dataclass(frozen=True)
class TinyModels:
    """Where the tiny models live."""

    xtts_dir: Path  # model directory: config.json, model.pth, vocab.json, speakers_xtts.pth, dvae.pth, mel_stats.pth
    whisper_path: Path  # whisper checkpoint loadable by whisper.load_model(path)


def _special_tokens() -> list[str]:
    return ["[STOP]", "[UNK]", "[SPACE]", "[START]"] + [f"[{code}]" for code in XTTS_LANGUAGES]


def build_tokenizer(path: Path, vocab_size: int = 256) -> None:
    """Train a small BPE (tokenizers library) holding the special tokens XTTS needs."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_special_tokens(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok.save(str(path))


def tiny_xtts_config(vocab_path: Path):
    """An XttsConfig with a 2-layer, 64-wide GPT and the real decoder/speaker encoder shapes."""
    from TTS.tts.configs.xtts_config import XttsConfig

    config = XttsConfig()
    args = config.model_args
    args.gpt_layers = 2
    args.gpt_n_model_channels = 64
    args.gpt_n_heads = 2
    args.decoder_input_dim = 64
    args.gpt_use_perceiver_resampler = True
    # 11.6 s of audio at 1024 samples per code: long enough for fine-tuning clips; a random GPT
    # rarely emits the stop token, so synthesis runs to this cap (fixed work per sentence).
    args.gpt_max_audio_tokens = 260
    args.gpt_max_text_tokens = 402
    args.tokenizer_file = str(vocab_path)
    config.languages = list(XTTS_LANGUAGES)
    config.model_dir = str(vocab_path.parent)
    return config


def build_tiny_xtts(folder: Path, seed: int = 0) -> Path:
    """Write a complete tiny XTTS model directory (also usable as a fine-tuning base)."""
    from TTS.tts.layers.xtts.dvae import DiscreteVAE
    from TTS.tts.models.xtts import Xtts

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vocab = folder / "vocab.json"
    build_tokenizer(vocab)
    config = tiny_xtts_config(vocab)
    config.model_args.tokenizer_file = "vocab.json"
    model = Xtts(config)
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

    model.tokenizer = VoiceBpeTokenizer(vocab_file=str(vocab))
    model.init_models()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("gpt.gpt_inference.")}
    torch.save({"model": state}, folder / "model.pth")
    config.save_json(str(folder / "config.json"))

    # Built-in speakers: latents of two synthetic "voices" (chirps), same format as speakers_xtts.pth.
    model.gpt.init_gpt_for_inference(kv_cache=True)
    model.eval()
    speakers = {}
    sr = 22050
    t = np.arange(int(sr * 3.0)) / sr
    for i, name in enumerate(TINY_SPEAKERS):
        wave = 0.3 * np.sin(2 * np.pi * (120 + 60 * i) * t * (1 + 0.3 * t))
        audio = torch.tensor(wave, dtype=torch.float32).unsqueeze(0)
        with torch.inference_mode():
            latent = model.get_gpt_cond_latents(audio, sr, length=6, chunk_length=6)
            embedding = model.get_speaker_embedding(audio, sr)
        speakers[name] = {"gpt_cond_latent": latent.cpu(), "speaker_embedding": embedding.cpu()}
    torch.save(speakers, folder / "speakers_xtts.pth")

    # Fine-tuning needs a DVAE of the shape GPTTrainer builds and 80 mel statistics.
    dvae = DiscreteVAE(
        channels=80,
        normalization=None,
        positional_dims=1,
        num_tokens=config.model_args.gpt_num_audio_tokens - 2,
        codebook_dim=512,
        hidden_dim=512,
        num_resnet_blocks=3,
        kernel_size=3,
        num_layers=2,
        use_transposed_convs=False,
    )
    torch.save(dvae.state_dict(), folder / "dvae.pth")
    torch.save(torch.ones(80) * 2.0, folder / "mel_stats.pth")
    write_json(folder / "tiny.json", {"version": TINY_VERSION, "seed": seed, "note": "random weights: output is noise"})
    return folder


def build_tiny_whisper(path: Path, seed: int = 0, english_only: bool = False) -> Path:
    """Write a 1-layer, 64-wide Whisper checkpoint that ``whisper.load_model(path)`` loads.

    ``english_only`` gives it tiny.en's vocabulary (51864 tokens; multilingual models have 51865+).
    """
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=64,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=51864 if english_only else 51865,
        n_text_ctx=448,
        n_text_state=64,
        n_text_head=2,
        n_text_layer=1,
    )
    model = Whisper(dims)
    # Whisper allocates the decoder's positional embedding with torch.empty (real checkpoints overwrite it);
    # left as is it holds whatever was in memory (values up to 1e30 -> NaN logits, a different model each build).
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, tmp)
    tmp.replace(path)
    return path


def ensure_tiny_models(folder: Path) -> TinyModels:
    """Build the tiny models under ``folder`` unless an up-to-date build is already there."""
    xtts_dir = folder / TINY_XTTS_DIRNAME
    whisper_path = folder / TINY_WHISPER_FILENAME
    stamp = xtts_dir / "tiny.json"
    current = stamp.is_file() and json.loads(stamp.read_text()).get("version") == TINY_VERSION
    if not current:
        log.info("Building tiny XTTS model in %s", xtts_dir)
        build_tiny_xtts(xtts_dir)
    if not whisper_path.is_file() or not current:
        log.info("Building tiny Whisper model at %s", whisper_path)
        build_tiny_whisper(whisper_path)
    return TinyModels(xtts_dir=xtts_dir, whisper_path=whisper_path)
