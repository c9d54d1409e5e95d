"""Benchmark: what XTTS Lab's ``TTSEngine.synthesize`` costs over coqui's own ``Xtts.inference`` (issue 23).

Three arms on one model object, interleaved (the order rotates each repetition), each timed around the whole call:

- coqui: ``torch.manual_seed(seed)``, then ``Xtts.inference(sentence, "en", gpt_cond_latent, speaker_embedding,
  temperature=..., top_k=..., top_p=..., repetition_penalty=..., length_penalty=..., speed=...,
  enable_text_splitting=False, max_new_tokens=T)`` per sentence, joined with our 0.2 s pause: what a coqui user
  who splits sentences writes (coqui's own splitter needs spaCy, which is not installed; ours splits the same
  text into the same sentences, asserted).
- ours, wrapper only: ``engine.synthesize(text, speaker=..., options=TTSOptions(seed=..., max_audio_tokens=T))``
  with coqui's decoder as ``load_checkpoint`` leaves it (weight norm parametrized): the overhead ratio.
- ours, default: the same with the decoder's weight norm folded (``engines.tts.speedups``), what the app loads.

The voice is cached on both sides (a built-in speaker whose latents are the ones coqui gets), so no latent
computation is counted. Random weights of the real architecture cost what real weights cost for a fixed number
of audio tokens (``bench/tts_speed.py``): a random GPT never emits its stop token, so every sentence generates
exactly T tokens. The seeded audio of the three arms is compared sample by sample. A cProfile run of each side
says where the wrapper's extra time goes.

``--no-full`` runs the tiny XTTS instead (plumbing only: there the wrapper's share is magnified).
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from bench.common import Row, coqui_sampling, full_size_xtts
from config import load_settings

SENTENCES = [
    "Good morning to everyone here.",
    "The meeting starts at noon today.",
    "Please bring your notes along.",
]
SEED = 7
SPEAKER = "bench voice"
PAUSE_SECONDS = 0.2  # engines.tts.synthesis.PAUSE_SECONDS, checked below


@dataclass
class _Setup:
    engine: Any  # TTSEngine
    model: Any  # Xtts
    model_id: str
    latent: Any
    embedding: Any
    label: str


def run(full: bool = True) -> list[Row]:
    """Full-size: 2 sentences x 8 audio tokens, 3 repetitions (~3 min on 2 busy cores); tiny: 3 x 8, 3."""
    with tempfile.TemporaryDirectory() as tmp:
        if full:
            setup = _full_size(Path(tmp))
            return _compare(setup, SENTENCES[:2], tokens=8, reps=3)
        setup = _tiny(Path(tmp))
        return _compare(setup, SENTENCES, tokens=8, reps=3)


def _engine(workspace: Path, tiny: Any = None) -> Any:
    from engines.tts.engine import TTSEngine

    settings = load_settings({"workspace": workspace, "device": "cpu", "tiny_models": tiny is not None}, env={})
    engine = TTSEngine(settings, threading.RLock(), tiny=tiny)
    engine.models.fold_weight_norm = False  # the arms swap decoders themselves
    return engine


def _full_size(tmp: Path) -> _Setup:
    """The full-size architecture (seeded random weights) in a model folder the engine accepts, already loaded."""
    folder = tmp / "xtts-full"
    folder.mkdir()
    model, latent, embedding, params = full_size_xtts(folder, "cpu")
    model.config.save_json(str(folder / "config.json"))
    (folder / "model.pth").touch()  # the weights are in memory; the engine only stats this file
    model.speaker_manager = SimpleNamespace(
        speakers={SPEAKER: {"gpt_cond_latent": latent, "speaker_embedding": embedding}}
    )
    engine = _engine(tmp / "ws")
    model_id = str(folder)
    engine.models.holder.get(model_id, "cpu", lambda _key, _dev: model)
    return _Setup(engine, model, model_id, latent, embedding, f"full-size XTTS ({params:.0f} M params, random)")


def _tiny(tmp: Path) -> _Setup:
    from engines.tiny import ensure_tiny_models

    tiny = ensure_tiny_models(tmp / "tiny")
    engine = _engine(tmp / "ws", tiny)
    model = engine.load("tiny")
    speaker = engine.speakers("tiny")[0]
    entry = model.speaker_manager.speakers[speaker]
    model.speaker_manager.speakers[SPEAKER] = entry
    return _Setup(engine, model, "tiny", entry["gpt_cond_latent"], entry["speaker_embedding"], "tiny XTTS (random)")


def _folded_twin(model: Any) -> Any:
    """A second copy of the model's HiFi-GAN generator with its weight norm folded (the original stays as coqui
    leaves it). Built fresh, not deep-copied: removing a parametrization edits the class a deep copy shares."""
    from TTS.tts.layers.xtts.hifigan_decoder import HifiDecoder

    from engines.tts.speedups import fold_weight_norm

    a = model.args
    twin = HifiDecoder(
        input_sample_rate=a.input_sample_rate,
        output_sample_rate=a.output_sample_rate,
        output_hop_length=a.output_hop_length,
        ar_mel_length_compression=a.gpt_code_stride_len,
        decoder_input_dim=a.decoder_input_dim,
        d_vector_dim=a.d_vector_dim,
        cond_d_vector_in_each_upsampling_layer=a.cond_d_vector_in_each_upsampling_layer,
    ).waveform_decoder
    twin.load_state_dict(model.hifigan_decoder.waveform_decoder.state_dict())
    twin.eval()
    assert fold_weight_norm(twin) > 0
    return twin


def _compare(s: _Setup, sentences: list[str], *, tokens: int, reps: int) -> list[Row]:
    import torch

    from engines.core.options import TTSOptions
    from engines.tts import synthesis

    assert synthesis.PAUSE_SECONDS == PAUSE_SECONDS
    options = TTSOptions(seed=SEED, max_audio_tokens=tokens)
    text = " ".join(sentences)
    sr = int(s.model.args.output_sample_rate)
    pause = np.zeros(int(PAUSE_SECONDS * sr), dtype=np.float32)
    coqui_kwargs = {**coqui_sampling(options), "max_new_tokens": tokens}
    plain = s.model.hifigan_decoder.waveform_decoder
    folded = _folded_twin(s.model)

    def coqui() -> np.ndarray:
        s.model.hifigan_decoder.waveform_decoder = plain
        torch.manual_seed(SEED)
        pieces: list[np.ndarray] = []
        for i, sentence in enumerate(sentences):
            if i:
                pieces.append(pause)
            out = s.model.inference(sentence, "en", s.latent, s.embedding, **coqui_kwargs)
            pieces.append(np.asarray(out["wav"], dtype=np.float32))
        return np.concatenate(pieces)

    def ours(decoder: Any) -> Callable[[], np.ndarray]:
        def call() -> np.ndarray:
            s.model.hifigan_decoder.waveform_decoder = decoder
            result = s.engine.synthesize(text, model_id=s.model_id, speaker=SPEAKER, options=options, save=False)
            assert result.chunks == sentences, result.chunks
            return np.asarray(result.audio)

        return call

    arms: dict[str, Callable[[], np.ndarray]] = {
        "coqui": coqui,
        "ours (wrapper only)": ours(plain),
        "ours (default: folded weight norm)": ours(folded),
    }
    from engines.tts.inference import _quiet_transformers

    _quiet_transformers()  # coqui's side would print transformers' max_length notice on every call
    coqui()  # warm-up (first-call allocations, lazy imports)
    times: dict[str, list[float]] = {name: [] for name in arms}
    cpu: dict[str, list[float]] = {name: [] for name in arms}  # this process's CPU seconds: steadier under load
    audio: dict[str, np.ndarray] = {}
    stable = True
    names = list(arms)
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            start, cpu_start = time.perf_counter(), time.process_time()
            wav = arms[name]()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - cpu_start)
            if name in audio:
                stable = stable and np.array_equal(audio[name], wav)
            audio[name] = wav
    s.model.hifigan_decoder.waveform_decoder = plain

    base = audio["coqui"]
    same = {name: _sameness(base, wav) for name, wav in audio.items() if name != "coqui"}
    med = {name: statistics.median(t) for name, t in times.items()}
    paired = [o / c for o, c in zip(times[names[1]], times["coqui"], strict=True)]
    cpu_paired = [o / c for o, c in zip(cpu[names[1]], cpu["coqui"], strict=True)]
    fold_paired = [f / o for f, o in zip(cpu[names[2]], cpu[names[1]], strict=True)]
    case = f"{s.label}, {len(sentences)} sentences x {tokens} tokens, CPU"
    rows = [
        Row(
            "overhead",
            f"{case}: {name}",
            med[name],
            "s",
            f"wall, median of {reps} (min {min(times[name]):.2f}); CPU {statistics.median(cpu[name]):.2f} s",
        )
        for name in names
    ]
    rows.append(
        Row(
            "overhead",
            "ours (wrapper only) / coqui, CPU time",
            statistics.median(cpu_paired),
            "x",
            f"median of per-repetition ratios (target <= 1.05; wall: {statistics.median(paired):.3f}); "
            f"audio vs coqui: {same[names[1]]}",
            {"cpu_ratios": cpu_paired, "wall_ratios": paired, "wall_seconds": times, "cpu_seconds": cpu},
        )
    )
    rows.append(
        Row(
            "overhead",
            "ours (default) / coqui, CPU time",
            statistics.median(cpu[names[2]]) / statistics.median(cpu["coqui"]),
            "x",
            f"ratio of medians; audio vs coqui: {same[names[2]]}",
        )
    )
    rows.append(
        Row(
            "overhead",
            "weight-norm fold: synthesis CPU time saved",
            100 * (1 - statistics.median(fold_paired)),
            "%",
            f"end to end, per-repetition pairs ({min(fold_paired):.2f}-{max(fold_paired):.2f}x): below the noise on a "
            "busy machine, see the decoder-alone row; "
            + ("bit-identical audio" if same[names[2]] == "identical" else "NOT identical"),
        )
    )
    if not stable:
        rows.append(Row("overhead", "seeded audio stable across repetitions", 0, "bool", "NOT stable"))
    rows.append(_decoder_row(s, plain, folded, tokens))
    rows += _profile_rows(s, coqui, arms[names[1]])
    rows += _not_applied(s)
    return rows


def _decoder_row(s: _Setup, plain: Any, folded: Any, tokens: int, reps: int = 5) -> Row:
    """The HiFi-GAN decoder alone on one sentence's latents, coqui's parametrized vs folded: the fold's saving
    without the GPT's noise around it (CPU time, interleaved)."""
    import torch

    torch.manual_seed(0)
    latents = torch.randn(1, tokens, int(s.model.args.gpt_n_model_channels))
    g = s.embedding.to(latents.device)
    cpu: dict[str, list[float]] = {"plain": [], "folded": []}
    out: dict[str, Any] = {}
    with torch.inference_mode():
        for _ in range(reps):
            for name, decoder in (("plain", plain), ("folded", folded)):
                s.model.hifigan_decoder.waveform_decoder = decoder
                start = time.process_time()
                out[name] = s.model.hifigan_decoder(latents, g=g)
                cpu[name].append(time.process_time() - start)
    s.model.hifigan_decoder.waveform_decoder = plain
    p, f = statistics.median(cpu["plain"]), statistics.median(cpu["folded"])
    return Row(
        "overhead",
        f"HiFi-GAN decoder alone, {tokens} tokens: weight norm folded vs parametrized",
        100 * (1 - f / p),
        "% saved",
        f"CPU time {f:.3f} vs {p:.3f} s, median of {reps}; output "
        + ("identical" if torch.equal(out["plain"], out["folded"]) else "NOT identical"),
    )


def _sameness(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape == b.shape and np.array_equal(a, b):
        return "identical"
    if a.shape != b.shape:
        return f"different lengths ({a.size} vs {b.size} samples)"
    return f"differ: max |diff| {float(np.abs(a - b).max()):.3g}"


def _profile_rows(s: _Setup, coqui: Callable[[], Any], ours: Callable[[], Any]) -> list[Row]:
    """One cProfile run per side: the wrapper's time outside ``Xtts.inference`` and its top items."""
    out: list[Row] = []
    for name, fn in (("coqui", coqui), ("ours (wrapper only)", ours)):
        prof = cProfile.Profile()
        prof.runcall(fn)
        stats = pstats.Stats(prof)
        total = max(v[3] for v in stats.stats.values())  # type: ignore[attr-defined]
        inside = sum(
            v[3]
            for k, v in stats.stats.items()  # type: ignore[attr-defined]
            if k[0].endswith("TTS/tts/models/xtts.py") and k[2] == "inference"
        )
        top = _top(stats, "tottime", None, 8)
        parts = {
            label: sum(v[3] for k, v in stats.stats.items() if k[0].endswith(path) and k[2] == func)  # type: ignore[attr-defined]
            for label, path, func in (
                ("GPT sampling", "xtts/gpt.py", "generate"),
                ("coqui's second GPT pass", "xtts/gpt.py", "forward"),
                ("HiFi-GAN", "xtts/hifigan_decoder.py", "forward"),
            )
        }
        split = ", ".join(f"{label} {100 * t / total:.0f} %" for label, t in parts.items())
        ours_top = _top(stats, "cumtime", ("/engines/",), 10) if name != "coqui" else []
        print(f"cProfile, {name}: heaviest by own time:", *top, sep="\n  ")
        if ours_top:
            print(f"cProfile, {name}: our functions by cumulative time:", *ours_top, sep="\n  ")
        out.append(
            Row(
                "overhead",
                f"cProfile {name}: time outside Xtts.inference",
                total - inside,
                "s",
                f"of {total:.2f} s in all ({split}); top by own time: {top[0] if top else '-'}",
                {"top_tottime": top, "ours_cumulative": ours_top, "split": parts},
            )
        )
    return out


def _top(stats: pstats.Stats, key: str, only: tuple[str, ...] | None, n: int) -> list[str]:
    """The n heaviest functions by own time ("tottime") or cumulative time ("cumtime"), as short lines."""
    entries = []
    for (path, line, func), (_cc, _nc, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if only is not None and not any(part in path for part in only):
            continue
        where = "/".join(Path(path).parts[-2:]) if path != "~" else "built-in"
        entries.append((tottime if key == "tottime" else cumtime, f"{func} ({where}:{line})"))
    entries.sort(reverse=True)
    return [f"{seconds:.3f} s {label}" for seconds, label in entries[:n]]


def _not_applied(s: _Setup) -> list[Row]:
    """What was tried and is already on, or not applied because the samples change."""
    import torch
    from transformers.activations import NewGELUActivation

    attn = getattr(s.model.gpt.gpt.config, "_attn_implementation", "?")
    torch.manual_seed(0)
    x = torch.randn(64, 4 * int(s.model.args.gpt_n_model_channels))
    gelu_diff = float((NewGELUActivation()(x) - torch.nn.functional.gelu(x, approximate="tanh")).abs().max())
    return [
        Row("overhead", "inference mode", None, "-", "already on: coqui decorates Xtts.inference with inference_mode"),
        Row("overhead", "GPT attention kernel", None, "-", f"already {attn} (transformers' GPT2 default)"),
        Row(
            "overhead",
            "torch threads",
            torch.get_num_threads(),
            "threads",
            "left at torch's default (= cores); not changed",
        ),
        Row(
            "overhead",
            "fused tanh-GELU in the GPT: max |diff| per activation",
            gelu_diff,
            "abs",
            f"{gelu_diff:.2g}: not bit-identical, so not applied",
        ),
    ]
