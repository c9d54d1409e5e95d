"""bench/gpu.py: the one script for a GPU slot. Its dry run (reduced sizes, any device) must give a figure for every
part, so the script is known to run before GPU time is spent on it; without CUDA a plain run says "no GPU"."""

from __future__ import annotations

import math
import os

import pytest

from bench import gpu


def test_without_cuda_every_part_is_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rows = gpu.run()
    cases = " ".join(r.case for r in rows)
    assert all(r.value is None and r.note == "not measured: no GPU" for r in rows)
    for part in ("XTTS RTF", "first audio", "Whisper", "eval loop"):
        assert part in cases


def _value(rows: list, *words: str) -> float:
    found = [r for r in rows if all(w in r.case for w in words)]
    assert len(found) == 1, (words, [r.case for r in rows])
    value = found[0].value
    assert value is not None and math.isfinite(value) and value > 0, found[0]
    return value


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("XTTSLAB_BENCH_DRY"),
    reason="the dry run takes 4-10 min on 2 cores: run it before spending GPU time (XTTSLAB_BENCH_DRY=1)",
)
def test_dry_run_measures_every_part() -> None:
    check_dry_rows(gpu.run(dry=True))


def check_dry_rows(rows: list) -> None:
    """What a dry run must give (also usable on a saved bench JSON's rows)."""
    import torch

    half_weights = [r for r in rows if "fp16 weights (model.half())" in r.case]
    assert len(half_weights) == 1  # measured, or why not: XTTS's GPT does not run with half weights on the CPU
    assert half_weights[0].value is not None or "failed: " in half_weights[0].note
    failed = [f"{r.case}: {r.note}" for r in rows if "failed" in r.note and r not in half_weights]
    assert not failed, failed
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert all(r.bench == "gpu" and f"dry run on {device}" in r.note for r in rows)
    # 1. XTTS: RTF per precision (autocast), speed-up, first audio streamed fp32 and half
    for precision in ("fp32 (target", "fp16 (torch.autocast", "bf16 (torch.autocast"):
        _value(rows, "full-size XTTS RTF, " + precision)
    _value(rows, "XTTS RTF speed-up")
    firsts = [r for r in rows if "time to first audio, streamed" in r.case]
    assert len(firsts) == 2 and "fp32" in firsts[0].case
    assert all(r.value is not None and r.value > 0 for r in firsts)
    assert len([r for r in rows if "RTF, streamed" in r.case and r.value]) == 2
    # 2. Whisper: both paths through the engine, the same transcripts, the ratio
    seq = _value(rows, "Whisper base", "sequential transcribe_array")
    batched = _value(rows, "Whisper base", "batched transcribe_batch")
    ratio = [r for r in rows if "batched (16) vs sequential" in r.case]
    assert len(ratio) == 1 and ratio[0].value == pytest.approx(seq / batched)
    assert "same transcripts" in ratio[0].note
    # 3. the eval loop's four variants and its speed-ups
    for variant in ("batched ASR (16): ", "one clip at a time: ", "one model lock: ", "own lane: "):
        _value(rows, "eval loop", variant, "utterances")
    _value(rows, "eval loop", "speed-up from pipelining, ASR on its own lane")
