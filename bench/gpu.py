"""The GPU rows, one script for one short GPU slot: ``python -m bench --only gpu`` (``make bench-gpu``).

Three parts, each side by side in this one process, each against the issue's targets:

1. The full-size XTTS v2 architecture (random weights, fixed token counts as in bench/tts_speed.py): RTF in fp32,
   fp16 and bf16, and time to first audio through ``Xtts.inference_stream`` (fp32 and the faster half precision).
   Half precision is ``torch.autocast`` around the call: the engine runs XTTS in fp32 today (engines/tts has no
   precision setting), and autocast is what it could adopt without a second copy of the weights; the weights
   cast to fp16 (``model.half()``) are measured once at the end, for comparison.
2. Whisper with the large-v3 architecture (random weights) through our ASREngine (openai-whisper backend, fp16 on
   CUDA): one ``transcribe_array`` per clip vs ``transcribe_batch`` at batch 16, the same options and a fixed
   token cap, so both paths decode the same token counts.
3. The eval loop (bench/eval_loop.py: sequential, pipelined, overlapped), on this machine's device.

``dry=True`` runs every part with reduced sizes (2 GPT layers, a few tokens, 4 clips, Whisper base dimensions,
one round of the loop) on whatever device there is, to prove the plumbing; its rows say so. Without CUDA and
without ``dry`` it returns "not measured" rows at once. A part that fails gives one row with the error and the
others still run; every part prints its rows as soon as it has them, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Row, clips, coqui_sampling, full_size_xtts
from bench.tts_speed import SENTENCES, _tokens
from config import load_settings

RTF_TARGET = 0.05  # issue 23: XTTS RTF on an H100-class GPU
FIRST_AUDIO_TARGET = 0.150  # s, streamed
BATCH_TARGET = 4.0  # batched Whisper vs one clip at a time
XTTS_REPEATS = 3  # runs of each sentence per precision (medians reported)
XTTS_SENTENCES = 3  # medium sentences, ~90 tokens (~4 s of speech) each
WHISPER_CLIPS = 32
WHISPER_BATCH = 16
WHISPER_TOKENS = 48  # decoded-token cap per clip: about what a 2-10 s LJSpeech clip's transcript takes
DRY_TOKENS = 8  # per utterance in the dry eval loop


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What one run measures: the real sizes, or a dry run's reduced ones."""

    gpt_layers: int | None  # None = XTTS's 30
    sentences: int
    repeats: int
    tokens: int | None  # per XTTS sentence; None = ~1.4 per character (tts_speed's rate)
    stream_chunk: int | None  # tokens per streamed chunk; None = the engine's
    whisper: str
    clips: int
    asr_tokens: int
    loop: dict[str, Any]
    warm_up: bool  # an untimed call per precision first (dry runs skip it: half precision is slow on a CPU)


FULL = Sizes(None, XTTS_SENTENCES, XTTS_REPEATS, None, None, "large-v3", WHISPER_CLIPS, WHISPER_TOKENS, {}, True)
DRY = Sizes(2, 1, 1, 4, 2, "base", 4, 4, {"rounds": 1, "tokens": DRY_TOKENS, "max_sentences": 1}, False)

PRECISIONS = ("fp32", "fp16", "bf16")


def run(full: bool = True, dry: bool = False) -> list[Row]:
    """Every GPU row (see the module docstring). ``full=False`` skips the full-size parts (1 and 2)."""
    import torch

    from engines.core.device import resolve_device

    cuda = torch.cuda.is_available()
    if not cuda and not dry:
        return [
            Row("gpu", case, None, unit, "not measured: no GPU")
            for case, unit in (
                ("full-size XTTS RTF, fp32 / fp16 / bf16", "RTF"),
                ("full-size XTTS first audio, streamed", "s"),
                ("Whisper large-v3 architecture, batched (16) vs sequential", "x speed-up"),
                ("eval loop: sequential vs pipelined vs overlapped", "utt/min"),
            )
        ]
    device = resolve_device("auto")
    sizes = DRY if dry else FULL
    note = f"dry run on {device}, reduced sizes, not a GPU figure" if dry else ""
    parts: list[tuple[str, Callable[[], list[Row]]]] = [("eval loop", lambda: _loop(sizes))]
    if full or dry:
        parts = [("XTTS", lambda: _xtts(device, sizes)), ("Whisper", lambda: _whisper(sizes)), *parts]
    else:
        parts.insert(
            0, ("XTTS and Whisper", lambda: [Row("gpu", "full-size parts", None, "", "not measured: --no-full")])
        )
    rows: list[Row] = []
    for name, part in parts:
        start = time.perf_counter()
        print(f"  gpu: {name} ...", flush=True)
        try:
            got = part()
        except Exception as exc:  # noqa: BLE001 - one failing part must not lose the others' figures
            traceback.print_exc()
            got = [Row("gpu", name, None, "", f"failed: {type(exc).__name__}: {exc}"[:300])]
        if note:
            got = [dataclasses.replace(r, note=f"{note}; {r.note}" if r.note else note) for r in got]
        for r in got:
            value = "-" if r.value is None else f"{r.value:.4g}"
            print(f"  gpu | {r.case} | {value} {r.unit} | {r.note}", flush=True)
        print(f"  gpu: {name} took {time.perf_counter() - start:.0f} s", flush=True)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        rows += got
    return rows


# ----- 1. XTTS -----


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _precision(device: str, name: str) -> contextlib.AbstractContextManager[Any]:
    """Autocast for fp16/bf16 (weights stay fp32), nothing for fp32."""
    import torch

    if name == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if name == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def _xtts(device: str, sizes: Sizes) -> list[Row]:
    import torch

    from engines.tts.inference import STREAM_CHUNK_TOKENS, STREAM_OVERLAP_SAMPLES

    sentences = [s.lower() for s in SENTENCES["medium"][: sizes.sentences]]
    tokens = {s: sizes.tokens or _tokens(s) for s in sentences}
    chunk = sizes.stream_chunk or STREAM_CHUNK_TOKENS
    sampling = coqui_sampling()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        model, latent, emb, params = full_size_xtts(Path(tmp), device, gpt_layers=sizes.gpt_layers)
        # Under bf16 autocast the vocoder returns bf16, which Xtts.inference's final .numpy() cannot convert;
        # the engine would need the same cast.
        model.hifigan_decoder.register_forward_hook(lambda _module, _args, out: out.float())
        arch = f"{params:.0f} M params, random weights" + (
            f", {sizes.gpt_layers} GPT layers" if sizes.gpt_layers else ""
        )

        def plain(text: str, n: int, precision: str, cond: Any = latent, spk: Any = emb) -> float:
            """RTF of one Xtts.inference call generating exactly n tokens."""
            _sync(device)
            start = time.perf_counter()
            with torch.inference_mode(), _precision(device, precision):
                out = model.inference(text, "en", cond, spk, max_new_tokens=n, min_new_tokens=n, **sampling)
            _sync(device)
            return (time.perf_counter() - start) / (len(out["wav"]) / 24000)

        def streamed(text: str, n: int, precision: str) -> tuple[float, float]:
            """(time to the first chunk, RTF of the whole stream) of one Xtts.inference_stream call."""
            first, samples = None, 0
            _sync(device)
            start = time.perf_counter()
            with _precision(device, precision):
                for wav in model.inference_stream(
                    text,
                    "en",
                    latent,
                    emb,
                    stream_chunk_size=chunk,
                    overlap_wav_len=STREAM_OVERLAP_SAMPLES,
                    do_sample=True,
                    max_new_tokens=n,
                    min_new_tokens=n,
                    **sampling,
                ):
                    if first is None:
                        _sync(device)
                        first = time.perf_counter() - start
                    samples += wav.shape[-1]
            _sync(device)
            assert first is not None, "inference_stream yielded no audio"
            return first, (time.perf_counter() - start) / (samples / 24000)

        for precision in PRECISIONS if sizes.warm_up else ():  # warm-up: cuBLAS handles, autocast's kernels
            torch.manual_seed(0)
            plain(sentences[0], 4, precision)
        rtf: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        for r in range(sizes.repeats):  # interleaved, so drift in the machine's speed hits every precision alike
            for i, text in enumerate(sentences):
                for precision in PRECISIONS:
                    torch.manual_seed(100 * r + i)
                    rtf[precision].append(plain(text, tokens[text], precision))
        runs = f"median of {sizes.repeats} x {len(sentences)} sentences, {sorted(set(tokens.values()))} tokens each"
        for precision in PRECISIONS:
            how = "fp32" if precision == "fp32" else f"{precision} (torch.autocast, fp32 weights)"
            rows.append(_rtf_row(f"full-size XTTS RTF, {how}", statistics.median(rtf[precision]), arch, runs, device))
        best = min(("fp16", "bf16"), key=lambda p: statistics.median(rtf[p]))
        rows.append(
            Row(
                "gpu",
                f"full-size XTTS RTF speed-up, {best} autocast vs fp32",
                statistics.median(rtf["fp32"]) / statistics.median(rtf[best]),
                "x",
                f"{best} was the faster half precision; same sentences, same run",
            )
        )

        text = sentences[0]
        for precision in ("fp32", best):
            if sizes.warm_up:  # the streaming path's own first call
                torch.manual_seed(0)
                streamed(text, min(tokens[text], 2 * chunk), precision)
            firsts, stream_rtf = [], []
            for r in range(sizes.repeats):
                torch.manual_seed(200 + r)
                first, srtf = streamed(text, tokens[text], precision)
                firsts.append(first)
                stream_rtf.append(srtf)
            how = "fp32" if precision == "fp32" else f"{precision} autocast"
            detail = f"{chunk} tokens per chunk; median of {sizes.repeats}, 1 sentence x {tokens[text]} tokens"
            first = statistics.median(firsts)
            rows.append(
                Row(
                    "gpu",
                    f"full-size XTTS time to first audio, streamed, {how} (target <= {FIRST_AUDIO_TARGET * 1000:.0f} ms)",
                    first,
                    "s",
                    _verdict(first, FIRST_AUDIO_TARGET, device, f"{arch}; {detail}"),
                )
            )
            rows.append(
                _rtf_row(f"full-size XTTS RTF, streamed, {how}", statistics.median(stream_rtf), arch, detail, device)
            )

        # Last, because it changes the model: the weights themselves in fp16 (what model.half() gives).
        try:
            model.half()
            half_latent, half_emb = latent.half(), emb.half()
            if sizes.warm_up:
                torch.manual_seed(0)
                plain(sentences[0], 4, "fp32", half_latent, half_emb)
            halves = []
            for r in range(sizes.repeats):
                for i, text in enumerate(sentences):
                    torch.manual_seed(100 * r + i)
                    halves.append(plain(text, tokens[text], "fp32", half_latent, half_emb))
            rows.append(
                _rtf_row(
                    "full-size XTTS RTF, fp16 weights (model.half())", statistics.median(halves), arch, runs, device
                )
            )
        except Exception as exc:  # noqa: BLE001 - on the CPU it does not (XTTS's GPT adds fp32 zeros as position
            # embeddings, which turn the activations back to fp32 before a half LayerNorm); say so, keep the rest
            rows.append(
                Row(
                    "gpu",
                    "full-size XTTS RTF, fp16 weights (model.half())",
                    None,
                    "RTF",
                    f"failed: {type(exc).__name__}: {exc}"[:300],
                )
            )
    return rows


def _verdict(value: float, target: float, device: str, detail: str) -> str:
    if not device.startswith("cuda"):
        return detail
    return f"{'meets' if value <= target else 'misses'} the target; {detail}"


def _rtf_row(case: str, value: float, arch: str, runs: str, device: str) -> Row:
    return Row(
        "gpu", f"{case} (target <= {RTF_TARGET})", value, "RTF", _verdict(value, RTF_TARGET, device, f"{arch}; {runs}")
    )


# ----- 2. Whisper -----


def _whisper(sizes: Sizes) -> list[Row]:
    from bench.asr_batch import _compare, _random_whisper
    from engines.asr.engine import ASREngine
    from engines.core.audio import load_audio

    paths, what = clips(sizes.clips)
    audio = [load_audio(p, sr=16000)[0] for p in paths]
    total = sum(len(a) for a in audio) / 16000
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        start = time.perf_counter()
        checkpoint = _random_whisper(sizes.whisper, tmp_path)
        print(f"  gpu: random Whisper {sizes.whisper} written in {time.perf_counter() - start:.0f} s", flush=True)
        settings = load_settings({"workspace": tmp_path / "ws", "device": "auto"}, env={})
        engine = ASREngine(settings, threading.RLock())
        label = (
            f"Whisper {sizes.whisper} architecture (random weights), {len(audio)} clips, {sizes.asr_tokens} tokens max"
        )
        got = _compare(
            str(checkpoint),
            label,
            audio,
            total,
            engine,
            (WHISPER_BATCH,),
            ladder=False,  # temperature 0 only: the fallback's sampling meets random weights' NaN logits
            max_tokens=sizes.asr_tokens,
        )
    seq, batched = got[0], got[-1]
    info = seq.extra
    precision = f"{info.get('backend', '?')} {info.get('compute_type', '?')} on {info.get('device', '?')}"
    rows = [
        Row(
            "gpu",
            f"{seq.case}: sequential transcribe_array",
            seq.value,
            "s",
            f"{precision}; {what}, {total:.0f} s",
            seq.extra,
        ),
        Row(
            "gpu", f"{batched.case}: batched transcribe_batch", batched.extra["seconds"], "s", precision, batched.extra
        ),
    ]
    assert batched.value is not None
    ratio = batched.value
    verdict = (
        f"{'meets' if ratio >= BATCH_TARGET else 'misses'} the target; "
        if info.get("device", "").startswith("cuda")
        else ""
    )
    rows.append(
        Row(
            "gpu",
            f"Whisper {sizes.whisper}: batched ({WHISPER_BATCH}) vs sequential (target >= {BATCH_TARGET:.0f}x)",
            ratio,
            "x speed-up",
            f"{verdict}{batched.note}",
        )
    )
    return rows


# ----- 3. the eval loop -----


def _loop(sizes: Sizes) -> list[Row]:
    from bench import eval_loop

    return [dataclasses.replace(r, bench="gpu", case=f"eval loop: {r.case}") for r in eval_loop.run(**sizes.loop)]
