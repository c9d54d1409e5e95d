"""Benchmark: what checking costs (issue 22). Checked synthesis transcribes every sentence with Whisper and scores
it; this measures that check per sentence as a share of the sentence's synthesis time, on this machine's CPU.

- The check: ``RetakeChecker.whisper`` (resampling, Whisper tiny.en, CER and flags) on real speech clips of
  sentence length (LJSpeech when ../shared is there, else espeak-ng renders), so Whisper decodes real words.
  Without ../shared/models the tiny random Whisper stands in (plumbing only, said in the note).
- The synthesis: the full-size XTTS v2 architecture (random weights, fixed token count ~1.4 tokens/char, as in
  ``bench/tts_speed.py``) for the same duration of audio; ``--no-full`` uses the tiny XTTS instead, which
  understates synthesis by far, so its share is an upper bound.

Short run: 4 clips for the check, 1 sentence (after a warm-up) for the full-size synthesis.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.common import ROOT, Row, clips

REAL_WHISPER = ROOT.parent / "shared" / "models" / "whisper-tiny.en.pt"
TOKENS_PER_CHAR = 1.4
SENTENCE = "The committee will meet again on the third of December at noon."


def _check_seconds_per_audio_second(n: int = 4) -> tuple[float, str]:
    """Seconds of checking per second of speech (median over n clips)."""
    from config import load_settings
    from engines.asr.engine import ASREngine
    from engines.core.audio import load_audio
    from engines.tiny import ensure_tiny_models
    from engines.tts.retakes import RetakeChecker, RetakeOptions

    paths, what = clips(n)
    with tempfile.TemporaryDirectory() as tmp:
        tiny = None
        model_id: str | None = str(REAL_WHISPER)
        note = f"Whisper tiny.en (real) on {what}"
        if not REAL_WHISPER.is_file():
            tiny = ensure_tiny_models(Path(tmp) / "tiny")
            model_id, note = None, f"tiny random Whisper (plumbing only) on {what}"
        settings = load_settings(
            {"workspace": Path(tmp) / "ws", "device": "cpu", "tiny_models": tiny is not None}, env={}
        )
        asr = ASREngine(settings, threading.RLock(), tiny=tiny)
        checker = RetakeChecker.whisper(asr, RetakeOptions(takes=1, asr_model=model_id))
        rates = []
        for i, path in enumerate(paths):
            audio, sr = load_audio(path, sr=24000)  # what XTTS hands the checker
            start = time.perf_counter()
            checker.best(lambda _k, a=audio: (a, 0), "reference text", "en", sr, 0)
            seconds = time.perf_counter() - start
            if i:  # the first call loads the model
                rates.append(seconds / (len(audio) / sr))
        return statistics.median(rates), note


def _synthesis_seconds_per_audio_second(full: bool) -> tuple[float, str]:
    import torch

    tokens = round(TOKENS_PER_CHAR * len(SENTENCE))
    if full:
        from bench.common import full_size_xtts

        with tempfile.TemporaryDirectory() as tmp:
            model, latent, emb, params = full_size_xtts(Path(tmp), "cpu")
            rtf = 0.0
            for i, text in enumerate(("Warm up.", SENTENCE)):
                n = tokens if i else 8
                torch.manual_seed(i)
                start = time.perf_counter()
                out = model.inference(text.lower(), "en", latent, emb, max_new_tokens=n, min_new_tokens=n)
                rtf = (time.perf_counter() - start) / (len(out["wav"]) / 24000)
            return rtf, f"full-size XTTS architecture ({params:.0f} M params, random weights), {tokens} tokens"
    from config import load_settings
    from engines.tiny import ensure_tiny_models
    from engines.tts.engine import TTSEngine, TTSOptions

    with tempfile.TemporaryDirectory() as tmp:
        tiny = ensure_tiny_models(Path(tmp) / "tiny")
        settings = load_settings({"workspace": Path(tmp) / "ws", "device": "cpu", "tiny_models": True}, env={})
        engine = TTSEngine(settings, threading.RLock(), tiny=tiny)
        speaker = engine.speakers("tiny")[0]
        engine.synthesize("Warm up.", speaker=speaker, options=TTSOptions(max_audio_tokens=8), save=False)
        result = engine.synthesize(SENTENCE, speaker=speaker, options=TTSOptions(max_audio_tokens=tokens), save=False)
        return result.rtf, "tiny XTTS (random, 2 layers): understates synthesis, so the share is an upper bound"


def run(full: bool = True) -> list[Row]:
    check, check_note = _check_seconds_per_audio_second()
    synth, synth_note = _synthesis_seconds_per_audio_second(full)
    return [
        Row("retake", "check per second of speech (resample + Whisper + CER/flags)", check, "s/s", check_note),
        Row("retake", "synthesis per second of speech", synth, "s/s (RTF)", synth_note + "; CPU"),
        Row(
            "retake",
            "checking overhead as a share of synthesis (one take per sentence)",
            100.0 * check / synth,
            "%",
            "each retake adds one synthesis + one check more",
        ),
    ]


if __name__ == "__main__":
    import argparse
    import sys

    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(prog="python -m bench.retake_overhead")
    parser.add_argument("--no-full", action="store_true", help="tiny XTTS instead of the full-size architecture")
    args = parser.parse_args()
    for row in run(full=not args.no_full):
        value = "not measured" if row.value is None else f"{row.value:.3f}"
        print(f"{row.case:70} {value:>12} {row.unit:10} {row.note}")
