"""Benchmark: streamed vs non-streamed XTTS synthesis, side by side: time to first audio and RTF.

Non-streamed, the first audio is the whole clip, so its time to first audio is the full synthesis time.
Streamed, it is the time from the call to the first chunk (``TTSResult.first_audio_seconds``). Every case
caps (and, for the full-size model, fixes) the GPT token count, so random weights cost what real ones do
(see bench/tts_speed.py). On CPU streaming is expected to gain little on a short text: the vocoder re-runs
over all latents of a sentence at every chunk.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.common import Row, coqui_sampling, full_size_xtts
from config import load_settings

TEXT = (
    "The committee will meet again on the third of December at noon. "
    "She sells sea shells by the sea shore on a sunny afternoon. "
    "Every morning the baker opens his shop before the sun comes up."
)
TINY_TOKENS = 40  # per sentence: two streamed chunks of 20 tokens each
FULL_TOKENS = 30  # one sentence on the full-size architecture (two chunks; CPU time is the limit)
REPEATS = 2


def run(full: bool = True) -> list[Row]:
    """Tiny model through the engine (both paths), then the full-size architecture unless ``full`` is False."""
    rows = _tiny()
    if full:
        rows += _full_size()
    else:
        rows.append(Row("stream", "full-size XTTS architecture", None, "s", "not measured: --no-full"))
    import torch

    if not torch.cuda.is_available():
        rows.append(
            Row("stream", "full-size XTTS on GPU, streamed vs not", None, "s", "not measured: no GPU lent this session")
        )
    return rows


def _pair_rows(label: str, plain_first: list[float], stream_first: list[float], plain_rtf, stream_rtf, note: str):
    pf, sf_ = statistics.median(plain_first), statistics.median(stream_first)
    pr, sr = statistics.median(plain_rtf), statistics.median(stream_rtf)
    return [
        Row("stream", f"{label}: time to first audio, not streamed (= whole synthesis)", pf, "s", note),
        Row("stream", f"{label}: time to first audio, streamed", sf_, "s", note),
        Row(
            "stream", f"{label}: first-audio ratio streamed / not streamed", sf_ / pf, "x", "below 1 = streaming helps"
        ),
        Row("stream", f"{label}: RTF, not streamed", pr, "RTF", note),
        Row("stream", f"{label}: RTF, streamed", sr, "RTF", note),
        Row("stream", f"{label}: RTF ratio streamed / not streamed", sr / pr, "x", "above 1 = streaming costs compute"),
    ]


def _tiny() -> list[Row]:
    from engines.core.options import TTSOptions
    from engines.tiny import ensure_tiny_models
    from engines.tts.engine import TTSEngine

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        tiny = ensure_tiny_models(tmp_path / "tiny")
        settings = load_settings({"workspace": tmp_path / "ws", "device": "auto", "tiny_models": True}, env={})
        engine = TTSEngine(settings, threading.RLock(), tiny=tiny)
        speaker = engine.speakers("tiny")[0]
        warm = TTSOptions(max_audio_tokens=8, seed=1)
        engine.synthesize("Warm up.", model_id="tiny", speaker=speaker, options=warm, save=False)
        list(engine.synthesize_stream("Warm up.", model_id="tiny", speaker=speaker, options=warm, save=False))
        plain_first, stream_first, plain_rtf, stream_rtf = [], [], [], []
        for i in range(REPEATS):
            opts = TTSOptions(max_audio_tokens=TINY_TOKENS, seed=i)
            start = time.perf_counter()
            plain = engine.synthesize(TEXT, model_id="tiny", speaker=speaker, options=opts, save=False)
            plain_first.append(time.perf_counter() - start)
            plain_rtf.append(plain.rtf)
            stream = engine.synthesize_stream(TEXT, model_id="tiny", speaker=speaker, options=opts, save=False)
            for _chunk in stream:
                pass
            stream_first.append(stream.result.first_audio_seconds)
            stream_rtf.append(stream.result.rtf)
            print(
                f"  tiny run {i}: first audio {plain_first[-1]:.2f} s vs {stream_first[-1]:.2f} s streamed", flush=True
            )
        engine.unload()
    device = settings.device if settings.device != "auto" else _device()
    note = f"median of {REPEATS}; 3 sentences x {TINY_TOKENS} tokens; {device}; random weights, plumbing only"
    return _pair_rows("tiny XTTS", plain_first, stream_first, plain_rtf, stream_rtf, note)


def _device() -> str:
    from engines.core.device import resolve_device

    return resolve_device("auto")


def _full_size() -> list[Row]:
    """Full-size XTTS v2 architecture (random weights): Xtts.inference vs Xtts.inference_stream, one sentence
    each, the same options and a fixed token count (min = max new tokens)."""
    import torch

    from engines.core.options import TTSOptions
    from engines.tts.engine import STREAM_CHUNK_TOKENS, STREAM_OVERLAP_SAMPLES

    device = _device()
    opts = TTSOptions()
    sentence = TEXT.split(". ")[0].lower() + "."
    with tempfile.TemporaryDirectory() as tmp:
        model, latent, emb, params = full_size_xtts(Path(tmp), device)
        sampling = coqui_sampling(opts)

        def plain(tokens: int) -> tuple[float, float]:
            start = time.perf_counter()
            out = model.inference(sentence, "en", latent, emb, max_new_tokens=tokens, min_new_tokens=tokens, **sampling)
            seconds = _sync(device, start)
            return seconds, seconds / (len(out["wav"]) / 24000)

        def streamed(tokens: int) -> tuple[float, float]:
            start = time.perf_counter()
            first, samples = None, 0
            for wav in model.inference_stream(
                sentence,
                "en",
                latent,
                emb,
                stream_chunk_size=STREAM_CHUNK_TOKENS,
                overlap_wav_len=STREAM_OVERLAP_SAMPLES,
                do_sample=True,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                **sampling,
            ):
                samples += wav.shape[-1]
                if first is None:
                    first = _sync(device, start)
            seconds = _sync(device, start)
            return first, seconds / (samples / 24000)

        torch.manual_seed(1)
        plain(8)  # warm-up
        streamed(8)
        runs = 1 if device == "cpu" else REPEATS
        plain_first, plain_rtf, stream_first, stream_rtf = [], [], [], []
        for i in range(runs):
            torch.manual_seed(10 + i)
            first, rtf = plain(FULL_TOKENS)
            plain_first.append(first)
            plain_rtf.append(rtf)
            torch.manual_seed(10 + i)
            first, rtf = streamed(FULL_TOKENS)
            stream_first.append(first)
            stream_rtf.append(rtf)
            print(f"  full-size run {i}: first audio {plain_first[-1]:.2f} s vs {first:.2f} s streamed", flush=True)
    note = f"{params:.0f} M params, random weights; {runs} run(s), 1 sentence x {FULL_TOKENS} tokens; {device}"
    return _pair_rows(f"full-size XTTS on {device}", plain_first, stream_first, plain_rtf, stream_rtf, note)


def _sync(device: str, start: float) -> float:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - start
