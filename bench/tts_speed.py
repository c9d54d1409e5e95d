"""Benchmark 2: XTTS synthesis, cold vs cached speaker latents, RTF by sentence length.

Random weights of the real architecture cost the same compute as real weights when the number of
generated audio tokens is fixed: every case caps GPT generation at a token count proportional to
the text (about 1.4 tokens per character, the rate real XTTS v2 speech runs at), and a random GPT
practically never emits its stop token earlier, so each sentence generates exactly that many.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
from pathlib import Path

from bench.common import Row, clips, full_size_xtts
from config import load_settings

TOKENS_PER_CHAR = 1.4

SENTENCES = {
    "short": [
        "Good morning.",
        "Thank you very much.",
        "See you tomorrow.",
        "It is raining again.",
        "Turn left here.",
        "That sounds great.",
        "Where is the station?",
    ],
    "medium": [
        "The committee will meet again on the third of December at noon.",
        "She sells sea shells by the sea shore on a sunny afternoon.",
        "Every morning the baker opens his shop before the sun comes up.",
        "They walked along the quiet street, talking about the old days.",
        "A journey of a thousand miles begins with a single step forward.",
        "Numbers like forty two are harder to read aloud than words.",
    ],
    "long": [
        "Printing, in the only sense with which we are at present concerned, differs from most if not "
        "from all the arts and crafts represented in the exhibition.",
        "In the early morning light the fishermen pushed their boats into the water, while the gulls circled "
        "above and the village slowly woke up behind them.",
        "The report recommends that the city invest in better public transport, wider cycle lanes and more "
        "trees along the main roads over the next ten years.",
        "Although the weather forecast had promised sunshine for the whole weekend, the clouds rolled in "
        "on Saturday afternoon and it rained until Monday.",
        "When the orchestra finally began to play, the audience fell silent and listened without moving "
        "until the very last note had faded away.",
        "Researchers measured the word error rate of every system on the same sentences, so that the "
        "differences between them could be compared fairly.",
        "She packed her bags, said goodbye to her friends, and took the night train to the coast, where "
        "her grandmother had lived for more than fifty years.",
    ],
}


def _tokens(text: str) -> int:
    return max(8, round(TOKENS_PER_CHAR * len(text)))


def run(full: bool = True) -> list[Row]:
    from engines.tiny import ensure_tiny_models
    from engines.tts.engine import TTSEngine, TTSOptions

    ref = clips(1)[0][0]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        tiny = ensure_tiny_models(tmp_path / "tiny")
        settings = load_settings({"workspace": tmp_path / "ws", "device": "auto", "tiny_models": True}, env={})
        engine = TTSEngine(settings, threading.RLock(), tiny=tiny)
        engine.load("tiny")
        warm = TTSOptions(max_audio_tokens=16, seed=1)
        engine.synthesize("Warm up.", model_id="tiny", speaker=engine.speakers("tiny")[0], options=warm, save=False)

        text = SENTENCES["medium"][0]
        opts = TTSOptions(max_audio_tokens=_tokens(text), seed=1)
        cold = engine.synthesize(text, model_id="tiny", reference=[ref], options=opts, save=False)
        hot = engine.synthesize(text, model_id="tiny", reference=[ref], options=opts, save=False)
        assert not cold.latents_cached and hot.latents_cached
        rows.append(
            Row(
                "tts",
                "tiny XTTS: first call (computes speaker latents)",
                cold.gen_seconds,
                "s",
                "random weights; fixed token count",
            )
        )
        rows.append(
            Row(
                "tts",
                "tiny XTTS: second call (cached latents)",
                hot.gen_seconds,
                "s",
                f"speed-up {cold.gen_seconds / hot.gen_seconds:.2f}x",
            )
        )

        n = 0
        for bucket, sentences in SENTENCES.items():
            rtfs = []
            for sentence in sentences:
                if n >= 20:
                    break
                n += 1
                res = engine.synthesize(
                    sentence,
                    model_id="tiny",
                    reference=[ref],
                    save=False,
                    options=TTSOptions(max_audio_tokens=_tokens(sentence), seed=n),
                )
                rtfs.append(res.rtf)
            if rtfs:
                rows.append(
                    Row(
                        "tts",
                        f"tiny XTTS RTF, {bucket} sentences (n={len(rtfs)})",
                        statistics.median(rtfs),
                        "RTF",
                        "median; CPU; plumbing only",
                    )
                )
        engine.unload()
    if full:
        rows += _full_size_cpu()
    for case in ("fp32", "fp16 (half precision)", "torch.compile / static KV cache"):
        rows.append(Row("tts", f"full-size XTTS on GPU, {case}", None, "RTF", "not measured: no GPU lent this session"))
    return rows


def _full_size_cpu(n_sentences: int = 2) -> list[Row]:
    """Full-size XTTS v2 architecture (random weights) on this machine's CPU, via Xtts.inference."""
    import time

    import torch

    from engines.core.device import resolve_device

    device = resolve_device("auto")
    with tempfile.TemporaryDirectory() as tmp:
        model, latent, emb, params = full_size_xtts(Path(tmp), device)
        rtfs = []
        for i, text in enumerate(SENTENCES["medium"][: n_sentences + 1]):
            torch.manual_seed(i)
            start = time.perf_counter()
            out = model.inference(
                text.lower(), "en", latent, emb, max_new_tokens=_tokens(text), min_new_tokens=_tokens(text)
            )
            seconds = time.perf_counter() - start
            if i:  # first call is warm-up
                rtfs.append(seconds / (len(out["wav"]) / 24000))
    return [
        Row(
            "tts",
            f"full-size XTTS architecture ({params:.0f} M params, random weights) on {device}",
            statistics.median(rtfs),
            "RTF",
            f"median of {len(rtfs)} medium sentences, fixed token count",
        )
    ]
