"""Numbers of a run from its rows only: per-system blocks with bootstrap CIs, breakdowns, paired
comparisons and the ranking; ``write_outputs`` turns them into summary.json and report.html."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engines.core.audio import write_json
from engines.core.provenance import utc_now
from engines.eval import report
from engines.eval.config import EvalConfig
from engines.eval.results import GROUND_TRUTH, MOS_COLUMNS, RANDOM, REAL
from engines.scoring import metrics

PAIRED_SCORES = ("sim", "dnsmos_ovrl", "utmos")  # higher-is-better scores compared sentence by sentence


def _finite(values: Iterable[Any]) -> list[float]:
    out: list[float] = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def _rate_block(rows: list[dict], unit: str, n_boot: int, seed: int) -> dict[str, Any]:
    """Corpus and per-utterance statistics of one error rate (unit "word" or "char")."""
    if unit == "word":
        errs, lens, rates = "word_errors", "ref_words", "wer"
    else:
        errs, lens, rates = "char_errors", "ref_chars", "cer"
    e = [r[errs] or 0 for r in rows]
    n = [r[lens] or 0 for r in rows]
    v = _finite(r[rates] for r in rows)
    return {
        "corpus": metrics.bootstrap_ratio(e, n, n_boot, seed).as_dict(),
        "mean": metrics.bootstrap(v, np.mean, n_boot, seed).as_dict(),
        "median": metrics.bootstrap(v, np.median, n_boot, seed).as_dict(),
        "p90": metrics.bootstrap(v, metrics.percentile(90), n_boot, seed).as_dict(),
        "any_error": metrics.bootstrap(v, metrics.share_nonzero, n_boot, seed).as_dict(),
        "errors": int(sum(e)),
        "ref_units": int(sum(n)),
        "substitutions": int(
            sum((r["substitutions"] if unit == "word" else r["char_substitutions"]) or 0 for r in rows)
        ),
        "deletions": int(sum((r["deletions"] if unit == "word" else r["char_deletions"]) or 0 for r in rows)),
        "insertions": int(sum((r["insertions"] if unit == "word" else r["char_insertions"]) or 0 for r in rows)),
    }


def _system_block(rows: list[dict], n_boot: int, seed: int, detail: bool = True) -> dict[str, Any]:
    rtf = _finite(r["rtf"] for r in rows)
    sim = _finite(r["sim"] for r in rows)
    languages = sorted({r["language"] for r in rows})
    block: dict[str, Any] = {
        "n": len(rows),
        "headline": "cer" if languages and all(metrics.is_char_language(x) for x in languages) else "wer",
        "wer": _rate_block(rows, "word", n_boot, seed),
        "cer": _rate_block(rows, "char", n_boot, seed),
        "rtf": {
            "mean": metrics.bootstrap(rtf, np.mean, n_boot, seed).as_dict(),
            "std": float(np.std(rtf, ddof=1)) if len(rtf) > 1 else (0.0 if rtf else None),
            "p50": metrics.bootstrap(rtf, metrics.percentile(50), n_boot, seed).as_dict(),
            "p95": metrics.bootstrap(rtf, metrics.percentile(95), n_boot, seed).as_dict(),
        },
        "sim": {
            "mean": metrics.bootstrap(sim, np.mean, n_boot, seed).as_dict(),
            "n": len(sim),
            # one encoder per run; a set of several would mean pooled scales (never written by a run)
            "encoders": sorted({r.get("sim_encoder") or "" for r in rows} - {""}),
        },
        **{
            name: {"mean": metrics.bootstrap(v, np.mean, n_boot, seed).as_dict(), "n": len(v)}
            for name in MOS_COLUMNS
            for v in [_finite(r.get(name) for r in rows)]
        },
        "audio_seconds": round(sum(_finite(r["audio_seconds"] for r in rows)), 3),
        "gen_seconds": round(sum(_finite(r["gen_seconds"] for r in rows)), 3),
        "flags": {
            k: int(sum(bool(r[f"flag_{k}"]) for r in rows))
            for k in ("cut_off", "hallucinated_tail", "long_silence", "clipping")
        },
        "empty_hypotheses": int(sum(1 for r in rows if not (r["hyp_norm"] or "").strip())),
    }
    if detail:
        block["by_language"] = {
            lang: _system_block([r for r in rows if r["language"] == lang], n_boot, seed, detail=False)
            for lang in languages
        }
        buckets = sorted({r["length_bucket"] for r in rows}, key=_bucket_order)
        block["by_length"] = {
            b: _system_block([r for r in rows if r["length_bucket"] == b], n_boot, seed, detail=False) for b in buckets
        }
    return block


def _bucket_order(label: str) -> tuple[int, str]:
    for i, word in enumerate(("short", "medium", "long")):
        if label.startswith(word):
            return i, label
    return 9, label


def paired_comparison(
    rows: Sequence[dict], system_a: str, system_b: str, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """A minus B on the sentences both systems have (repeats summed per sentence).

    Args:
        rows: results rows.
        system_a: first system's name.
        system_b: second system's name.
        n_boot: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        ``{"a", "b", "n", "wer", "cer", "sim"}`` with each difference and its CI (see
        ``metrics.PairedDifference``).
    """

    def per_sentence(name: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["system"] != name:
                continue
            d = out.setdefault(
                r["sentence_id"], {"we": 0.0, "wn": 0.0, "ce": 0.0, "cn": 0.0, **{m: [] for m in PAIRED_SCORES}}
            )
            d["we"] += r["word_errors"] or 0
            d["wn"] += r["ref_words"] or 0
            d["ce"] += r["char_errors"] or 0
            d["cn"] += r["ref_chars"] or 0
            for m in PAIRED_SCORES:
                v = r.get(m)
                if v is not None and math.isfinite(v):
                    d[m].append(v)
        return out

    a, b = per_sentence(system_a), per_sentence(system_b)
    common = sorted(set(a) & set(b))
    nan = float("nan")
    # Ref lengths: A's and B's are equal per sentence when repeats match; use the mean of both.
    wl = [(a[s]["wn"] + b[s]["wn"]) / 2 for s in common]
    cl = [(a[s]["cn"] + b[s]["cn"]) / 2 for s in common]
    wa = [a[s]["we"] * wl[i] / a[s]["wn"] if a[s]["wn"] else 0.0 for i, s in enumerate(common)]
    wb = [b[s]["we"] * wl[i] / b[s]["wn"] if b[s]["wn"] else 0.0 for i, s in enumerate(common)]
    ca = [a[s]["ce"] * cl[i] / a[s]["cn"] if a[s]["cn"] else 0.0 for i, s in enumerate(common)]
    cb = [b[s]["ce"] * cl[i] / b[s]["cn"] if b[s]["cn"] else 0.0 for i, s in enumerate(common)]

    def means(side: dict[str, dict[str, Any]], m: str) -> list[float]:
        return [float(np.mean(side[s][m])) if side[s][m] else nan for s in common]

    return {
        "a": system_a,
        "b": system_b,
        "n": len(common),
        "wer": metrics.paired_difference(wa, wb, wl, "wer", n_boot=n_boot, seed=seed).as_dict(),
        "cer": metrics.paired_difference(ca, cb, cl, "cer", n_boot=n_boot, seed=seed).as_dict(),
        **{
            m: metrics.paired_difference(
                means(a, m), means(b, m), None, m, higher_is_better=True, n_boot=n_boot, seed=seed
            ).as_dict()
            for m in PAIRED_SCORES
        },
    }


def summarize(rows: Sequence[dict], systems: Sequence[str], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Per-system metrics with bootstrap CIs, breakdowns and paired comparisons, from results rows only.

    Args:
        rows: results.csv rows (typed, see ``read_results``).
        systems: system names in display order (ground truth first when present).
        n_boot: bootstrap resamples.
        seed: bootstrap seed (same seed, same intervals).

    Returns:
        ``{"systems": {name: block}, "paired": [...], "ranking": [...]}``.
    """
    rows = list(rows)
    present = [s for s in systems if any(r["system"] == s for r in rows)]
    present += sorted({r["system"] for r in rows} - set(present))
    out: dict[str, Any] = {"systems": {}, "paired": []}
    for name in present:
        sys_rows = [r for r in rows if r["system"] == name]
        block = _system_block(sys_rows, n_boot, seed)
        block["model"] = sys_rows[0]["model"]
        block["voice"] = sys_rows[0]["voice"]
        block["checkpoint"] = sys_rows[0]["checkpoint"]
        block["weights"] = _weights_of(sys_rows)
        out["systems"][name] = block
    tts_systems = [s for s in present if s != GROUND_TRUTH]
    pairs = [(a, b) for i, a in enumerate(tts_systems) for b in tts_systems[i + 1 :]]
    if len(pairs) > 15:  # many systems: compare each with the first one only
        pairs = [(tts_systems[0], b) for b in tts_systems[1:]]
    out["paired"] = [paired_comparison(rows, a, b, n_boot, seed) for a, b in pairs]
    out["ranking"] = rank_systems(out["systems"])
    return out


def _weights_of(rows: Sequence[dict]) -> dict[str, Any]:
    """What a system's numbers rest on: ``{"tts": "random"|"real"|None (no TTS), "asr": ..., "random": bool}``.

    A kind counts as random when any of its rows had random weights.
    """

    def kind(column: str) -> str | None:
        values = {r.get(column) or "" for r in rows}
        if RANDOM in values:
            return RANDOM
        return REAL if REAL in values else next(iter(values - {""}), None)  # e.g. "external": an audio folder

    tts, asr = kind("tts_weights"), kind("asr_weights")
    return {"tts": tts, "asr": asr, "random": RANDOM in (tts, asr)}


def rank_systems(blocks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """TTS systems ordered best first: lowest corpus headline error, then highest SIM."""
    entries = []
    for name, b in blocks.items():
        if name == GROUND_TRUTH:
            continue
        head = b["headline"]
        err = b[head]["corpus"]["value"]
        sim = b["sim"]["mean"]["value"]
        entries.append(
            {
                "system": name,
                "model": b.get("model"),
                "checkpoint": b.get("checkpoint"),
                "metric": head,
                "error": err,
                "wer": b["wer"]["corpus"]["value"],
                "cer": b["cer"]["corpus"]["value"],
                "sim": sim,
                "n": b["n"],
            }
        )
    entries.sort(
        key=lambda e: (
            e["error"] if e["error"] is not None else math.inf,
            -(e["sim"] if e["sim"] is not None else -math.inf),
        )
    )
    for i, e in enumerate(entries, start=1):
        e["rank"] = i
    return entries


# --------------------------------------------------------------------------- engine


def write_outputs(
    folder: Path, meta: dict[str, Any], rows: list[dict], config: EvalConfig, state: str
) -> dict[str, Any]:
    """summary.json and report.html of a run from its config.json (``meta``) and rows (what results.csv holds).

    The seed and bootstrap count come from the run's config, so a rebuilt report gives the same intervals.
    """
    order = ([GROUND_TRUTH] if any(r["system"] == GROUND_TRUTH for r in rows) else []) + [
        s["name"] for s in meta["systems"]
    ]
    summary = {
        "run_id": meta["run_id"],
        "created": meta["created"],
        "updated": utc_now(),
        "state": state,
        "complete": state == "done",
        "n_rows": len(rows),
        "seed": config.seed,
        "bootstrap": config.bootstrap,
        "config": meta["config"],
        "systems_config": meta["systems"],
        "provenance": meta["provenance"],
        "normalizers_used": sorted({r["normalizer"] for r in rows}),
        "languages": sorted({r["language"] for r in rows}),
        "training_run": config.training_run,
        "metrics": meta.get("metrics") or {},
        "audio_folders": meta.get("audio_folders") or {},
        **summarize(rows, order, config.bootstrap, config.seed),
    }
    blocks = summary["systems"]
    # "tiny" (kept for readers of older summaries): some number here rests on a random-weight model;
    # "random_systems" and each system's "weights" say which numbers, "note" says it in words.
    summary["tiny"] = any(b["weights"]["random"] for b in blocks.values()) if blocks else bool(meta.get("tiny"))
    summary["random_systems"] = [name for name, b in blocks.items() if b["weights"]["random"]]
    summary["note"] = report.random_note(blocks) if blocks else ""
    write_json(folder / "summary.json", summary)
    report.write_report(folder, summary, rows, meta)
    return summary


def fill_weights(
    meta: dict[str, Any], rows: list[dict], tts_weights: Callable[[str], str], asr_weights: Callable[[str], str]
) -> list[dict]:
    """Rows of runs recorded before results.csv had tts_weights/asr_weights get them from the run's models."""
    if all(r.get("asr_weights") for r in rows):
        return rows
    asr = meta.get("asr_weights") or asr_weights((meta.get("provenance") or {}).get("asr_model") or "")
    tts = {d["name"]: d.get("tts_weights") or tts_weights(d["model_id"]) for d in meta.get("systems", [])}
    return [
        r
        if r.get("asr_weights")
        else {**r, "asr_weights": asr, "tts_weights": "" if r["system"] == GROUND_TRUTH else tts.get(r["system"], "")}
        for r in rows
    ]
