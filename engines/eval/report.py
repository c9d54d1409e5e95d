"""The eval report: one self-contained report.html per run (inline CSS, plots as base64 PNG), audio
players pointing at the run folder's audio/ by relative path, and a word-alignment view per utterance.

Everything here is drawn from summary.json and results.csv rows, so the page and the files agree.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engines.core.audio import write_text
from engines.scoring import metrics

log = logging.getLogger(__name__)

GROUND_TRUTH = "ground truth"

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328;max-width:1400px}
h1{font-size:1.6em;margin-bottom:0}h2{margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:720px}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;border-radius:6px;margin:12px 0}
.muted{color:#57606a;font-size:12px}
.flag{display:inline-block;background:#ffebe9;color:#a40e26;border-radius:4px;padding:0 4px;margin:1px;font-size:11px}
table.align td{border:none;padding:1px 4px;font-family:ui-monospace,monospace}
table.align th{border:none;background:none;color:#57606a}
table.align td.sub{background:#fff1c1}table.align td.del{background:#ffd7d5}table.align td.ins{background:#d3f4ff}
details summary{cursor:pointer}
audio{height:30px;vertical-align:middle}
img.plot{max-width:100%;border:1px solid #d0d7de;margin:6px 0}
.legend span{display:inline-block;padding:0 6px;margin-right:6px;font-size:12px}
"""


def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _num(x: Any, digits: int = 3) -> str:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return ""
    return "" if not math.isfinite(f) else f"{f:.{digits}f}"


def _pct(est: dict[str, Any] | None, ci: bool = True) -> str:
    """``12.3% [10.1, 14.8]`` from an Estimate dict."""
    if not est or est.get("value") is None:
        return "n/a"
    text = f"{est['value'] * 100:.1f}%"
    if ci and est.get("low") is not None:
        text += f" [{est['low'] * 100:.1f}, {est['high'] * 100:.1f}]"
    return text


def _val(est: dict[str, Any] | None, digits: int = 3, ci: bool = True) -> str:
    if not est or est.get("value") is None:
        return "n/a"
    text = f"{est['value']:.{digits}f}"
    if ci and est.get("low") is not None:
        text += f" [{est['low']:.{digits}f}, {est['high']:.{digits}f}]"
    return text


# --------------------------------------------------------------------------- which numbers rest on random models


def weights_label(weights: dict[str, Any] | None) -> str:
    """What one system's numbers rest on, e.g. ``TTS random · ASR real`` or ``recordings · ASR real``.

    Args:
        weights: a summary system block's ``weights`` (``{"tts", "asr", "random"}``); None for old summaries.
    """
    if not weights:
        return "unknown"
    tts = weights.get("tts")
    return f"{'TTS ' + tts if tts else 'recordings'} · ASR {weights.get('asr') or 'unknown'}"


def random_note(systems: dict[str, dict[str, Any]]) -> str:
    """The warning for a run with random-weight models: which systems, which of their models, and what that
    means; "" when every number rests on trained models.

    Args:
        systems: summary.json's ``systems`` (each block with ``weights``).
    """
    random = {n: b.get("weights") or {} for n, b in systems.items() if (b.get("weights") or {}).get("random")}
    if not random:
        return ""
    effects = []
    if any(w.get("tts") == "random" for w in random.values()):
        effects.append("the random TTS speaks noise")
    if any(w.get("asr") == "random" for w in random.values()):
        effects.append("the random ASR writes gibberish")
    listed = "; ".join(f"{name} ({weights_label(w)})" for name, w in random.items())
    effect = " and ".join(effects) or "random weights were used"
    text = (
        f"Tiny random models were used for {listed}. {effect[0].upper()}{effect[1:]}, so these numbers measure "
        "the plumbing (that every step runs and is scored), not speech quality."
    )
    real = [f"{name} ({weights_label(b.get('weights'))})" for name, b in systems.items() if name not in random]
    if real:
        text += f" Real measurements (trained models only): {'; '.join(real)}."
    return text


# --------------------------------------------------------------------------- tables shared with the page


def summary_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per system with headline numbers and 95% CIs (the page's summary table)."""
    out = []
    for name, b in (summary.get("systems") or {}).items():
        rtf = b["rtf"]
        out.append(
            {
                "system": name,
                "models": weights_label(b.get("weights")),
                "n": b["n"],
                "headline": b["headline"].upper(),
                "WER (corpus)": _pct(b["wer"]["corpus"]),
                "WER (mean)": _pct(b["wer"]["mean"]),
                "WER median / p90": f"{_pct(b['wer']['median'], False)} / {_pct(b['wer']['p90'], False)}",
                "with errors": _pct(b["wer"]["any_error"]),
                "CER (corpus)": _pct(b["cer"]["corpus"]),
                "CER (mean)": _pct(b["cer"]["mean"]),
                "RTF mean ± std": "n/a"
                if rtf["mean"]["value"] is None
                else f"{rtf['mean']['value']:.3f} ± {(rtf['std'] or 0):.3f}",
                "RTF p50 / p95": f"{_val(rtf['p50'], 3, False)} / {_val(rtf['p95'], 3, False)}",
                "SIM": _val(b["sim"]["mean"]),
                **_mos_cells(b),
                "flags": ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in b["flags"].items() if v) or "none",
            }
        )
    return out


MOS_LABELS = {
    "dnsmos_ovrl": "DNSMOS OVRL",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "dnsmos_p808": "DNSMOS P.808",
    "utmos": "UTMOS",
}


def _mos_cells(block: dict[str, Any], names: Sequence[str] = tuple(MOS_LABELS)) -> dict[str, str]:
    """Predicted-MOS cells of a summary block (mean [95% CI]); blocks of older runs have none."""
    return {MOS_LABELS[n]: _val((block.get(n) or {}).get("mean"), 2) for n in names}


def summary_table_text(summary: dict[str, Any]) -> str:
    """A plain-text summary for the headless command."""
    rows = summary_rows(summary)
    if not rows:
        return "(no results)"
    cols = ["system", "models", "n", "WER (corpus)", "CER (corpus)", "RTF mean ± std", "SIM", "DNSMOS OVRL", "UTMOS"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    if summary.get("note"):
        lines.append("\nNOTE: " + summary["note"])
    return "\n".join(lines)


def breakdown_rows(summary: dict[str, Any], by: str = "by_language") -> list[dict[str, Any]]:
    """Per-system rows by language (``by_language``) or by sentence length (``by_length``)."""
    out = []
    for name, b in (summary.get("systems") or {}).items():
        for key, sub in (b.get(by) or {}).items():
            out.append(
                {
                    "system": name,
                    "group": key,
                    "n": sub["n"],
                    "WER (corpus)": _pct(sub["wer"]["corpus"]),
                    "CER (corpus)": _pct(sub["cer"]["corpus"]),
                    "SIM": _val(sub["sim"]["mean"]),
                    **_mos_cells(sub, ("dnsmos_ovrl", "utmos")),
                    "RTF": _val(sub["rtf"]["mean"], 3, False),
                }
            )
    return out


def paired_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The paired comparisons as rows: A - B with CI per metric."""
    out = []
    for p in summary.get("paired") or []:
        row = {"A": p["a"], "B": p["b"], "sentences": p["n"]}
        for m in ("wer", "cer"):
            d = p[m]["diff"]
            row[f"{m.upper()} A−B"] = (
                "n/a"
                if d["value"] is None
                else (f"{d['value'] * 100:+.1f} pts [{d['low'] * 100:+.1f}, {d['high'] * 100:+.1f}]")
            )
            row[f"P(A better {m.upper()})"] = _num(p[m]["p_a_better"], 2)
        for m, label in (("sim", "SIM"), ("dnsmos_ovrl", "DNSMOS OVRL"), ("utmos", "UTMOS")):
            d = (p.get(m) or {}).get("diff") or {}
            row[f"{label} A−B"] = (
                "n/a" if d.get("value") is None else f"{d['value']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
            )
        out.append(row)
    return out


def ranking_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Systems ranked best first (lowest headline error, then highest SIM)."""
    return [
        {
            "rank": e["rank"],
            "system": e["system"],
            "checkpoint": Path(e["checkpoint"]).name if e.get("checkpoint") else "",
            "metric": e["metric"].upper(),
            "WER": _num(e["wer"], 4),
            "CER": _num(e["cer"], 4),
            "SIM": _num(e["sim"], 4),
            "n": e["n"],
        }
        for e in summary.get("ranking") or []
    ]


def alignment_view(row: dict[str, Any]) -> str:
    """jiwer's word alignment of one results row as HTML (characters for zh/ja/ko)."""
    lang = row.get("language") or ""
    ref = metrics.tokens(row.get("ref_norm") or "", lang)
    hyp = metrics.tokens(row.get("hyp_norm") or "", lang)
    counts = metrics.error_counts(ref, hyp)
    return metrics.alignment_html(ref, hyp, counts.alignment)


# --------------------------------------------------------------------------- plots


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_error_distribution(rows: Sequence[dict[str, Any]], systems: Sequence[str]) -> str | None:
    """Box plot + points of per-utterance WER (CER for all-character sets) per system, as a data URI."""
    data = []
    labels = []
    metric = "cer" if rows and all(metrics.is_char_language(r["language"]) for r in rows) else "wer"
    for s in systems:
        vals = [r[metric] for r in rows if r["system"] == s and r[metric] is not None and math.isfinite(r[metric])]
        if vals:
            data.append([v * 100 for v in vals])
            labels.append(s)
    if not data:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(data) + 2), 3.6))
    ax.boxplot(data, showfliers=False)
    for i, vals in enumerate(data, start=1):
        jitter = [i + 0.12 * (((k * 7919) % 13) / 13 - 0.5) for k in range(len(vals))]  # deterministic jitter
        ax.scatter(jitter, vals, s=10, alpha=0.6)
    ax.set_xticks(
        range(1, len(labels) + 1),
        [lbl if len(lbl) < 28 else lbl[:26] + "…" for lbl in labels],
        rotation=20,
        ha="right",
        fontsize=8,
    )
    ax.set_ylabel(f"{metric.upper()} per utterance (%)")
    ax.set_title(f"{metric.upper()} distribution per system")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_rtf_vs_duration(rows: Sequence[dict[str, Any]], systems: Sequence[str]) -> str | None:
    """Scatter of RTF against audio duration, one colour per TTS system."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    any_points = False
    for s in systems:
        pts = [
            (r["audio_seconds"], r["rtf"])
            for r in rows
            if r["system"] == s
            and r["rtf"] is not None
            and math.isfinite(r["rtf"])
            and r["audio_seconds"] is not None
            and math.isfinite(r["audio_seconds"])
        ]
        if pts:
            any_points = True
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, alpha=0.7, label=s[:40])
    if not any_points:
        plt.close(fig)
        return None
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("audio duration (s)")
    ax.set_ylabel("RTF (generation / audio)")
    ax.set_title("Real-time factor vs duration (warm-up excluded)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_ranking(summary: dict[str, Any]) -> str | None:
    """Bar chart of corpus error and SIM per ranked system (checkpoint ranking)."""
    ranking = summary.get("ranking") or []
    if len(ranking) < 2:
        return None
    plt = _pyplot()
    labels = [Path(e["checkpoint"]).stem if e.get("checkpoint") else e["system"] for e in ranking]
    errs = [(e["error"] or 0) * 100 for e in ranking]
    sims = [e["sim"] if e["sim"] is not None else float("nan") for e in ranking]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(labels) + 2), 3.6))
    xs = range(len(labels))
    ax.bar(xs, errs, color="#4c72b0")
    ax.set_ylabel(f"corpus {ranking[0]['metric'].upper()} (%)")
    ax.set_xticks(list(xs), [lbl[:24] for lbl in labels], rotation=25, ha="right", fontsize=8)
    ax2 = ax.twinx()
    ax2.plot(list(xs), sims, "o-", color="#dd8452")
    ax2.set_ylabel("SIM (cosine)")
    ax.set_title("Ranking (best first): error bars, SIM line")
    return _png(fig)


# --------------------------------------------------------------------------- the page


def _table(rows: list[dict[str, Any]], numeric: Sequence[str] = (), table_id: str = "") -> str:
    if not rows:
        return '<p class="muted">Nothing to show.</p>'
    cols = list(rows[0])
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if c in numeric else ""}">{_esc(r.get(c))}</td>' for c in cols) + "</tr>"
        for r in rows
    )
    ident = f' id="{_esc(table_id)}"' if table_id else ""
    return f"<table{ident}><tr>{head}</tr>{body}</table>"


def _provenance_html(summary: dict[str, Any]) -> str:
    prov = summary.get("provenance") or {}
    cfg = summary.get("config") or {}
    items = [
        ("run", summary.get("run_id")),
        ("created", summary.get("created")),
        ("state", summary.get("state")),
        ("sentence set", cfg.get("sentences")),
        ("seed", summary.get("seed")),
        ("bootstrap resamples", summary.get("bootstrap")),
        ("device", prov.get("device")),
        ("GPU", (prov.get("gpu") or {}).get("name") if prov.get("gpu") else "none"),
        (
            "ASR model",
            f"{prov.get('asr_model')} (beam {cfg.get('beam_size') or 'greedy'}, language forced per sentence"
            + (", clips packed into shared 30 s windows)" if cfg.get("asr_pack") else ")"),
        ),
        ("speaker encoder (SIM)", prov.get("speaker_encoder")),
        *_metric_models(summary.get("metrics") or {}),
        ("normalizers used", ", ".join(summary.get("normalizers_used") or [])),
        (
            "generation",
            ", ".join(
                f"{k}={(cfg.get('generation') or cfg).get(k) if k != 'repeats' else cfg.get(k)}"
                for k in (
                    "temperature",
                    "top_k",
                    "top_p",
                    "repetition_penalty",
                    "length_penalty",
                    "speed",
                    "max_audio_tokens",
                    "repeats",
                )
            ),
        ),
        ("versions", ", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items())),
    ]
    for model, info in (prov.get("tts_models") or {}).items():
        items.append((f"model {model}", ", ".join(f"{k}: {v}" for k, v in info.items())))
    return "<table>" + "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in items) + "</table>"


def _versions(asr: dict[str, Any]) -> str:
    """The ASR library versions of a provenance record (runs before the backends' records kept flat keys)."""
    versions = asr.get("versions")
    if isinstance(versions, dict):
        return ", ".join(f"{name} {version}" for name, version in versions.items())
    return str(asr.get("faster-whisper") or asr.get("whisper"))


def _metric_models(models: dict[str, Any]) -> list[tuple[str, str]]:
    """Provenance lines: which model computed each metric, its version and weights hash."""
    items = []
    asr = models.get("asr")
    if asr:
        items.append(
            (
                "WER/CER computed by",
                f"{asr.get('model')} ({asr.get('weights')} weights; {asr.get('backend') or 'openai-whisper'} "
                f"{_versions(asr)}"
                f"{', ' + asr['compute_type'] if asr.get('compute_type') else ''}; sha256 {asr.get('sha256') or 'n/a'})",
            )
        )
    sim = models.get("sim")
    if sim:
        kind = (
            "independent verifier" if sim.get("independent") else "the generating model's own encoder: self-similarity"
        )
        items.append(
            (
                "SIM computed by",
                f"{sim.get('name')} ({kind}; {sim.get('version')}; sha256 {sim.get('sha256') or 'n/a'})",
            )
        )
    for name, info in (models.get("mos") or {}).items():
        if info.get("available") is False:
            items.append((f"{name.upper()}", f"not available: {info.get('reason')}"))
        else:
            items.append(
                (
                    f"{name.upper()} computed by",
                    f"{info.get('name')} ({info.get('version')}; sha256 {info.get('sha256') or 'n/a'})",
                )
            )
    return items


def _row_weights(row: dict[str, Any]) -> str:
    """weights_label of one results row (rows of old runs have no weights columns)."""
    if not row.get("asr_weights"):
        return "unknown"
    return weights_label({"tts": row.get("tts_weights") or None, "asr": row["asr_weights"]})


def _utterance_html(rows: Sequence[dict[str, Any]], systems: Sequence[str]) -> str:
    order = {s: i for i, s in enumerate(systems)}
    parts = [
        "<table id='utterances-table'><tr><th>system</th><th>models</th><th>sentence</th><th>audio</th><th>WER</th><th>CER</th><th>S/D/I</th>"
        "<th>dur (s)</th><th>RTF</th><th>SIM</th><th>DNSMOS OVRL</th><th>UTMOS</th><th>flags</th><th>alignment</th></tr>"
    ]
    for r in sorted(rows, key=lambda r: (r["sentence_id"], order.get(r["system"], 99), r["repeat"])):
        flags = "".join(f'<span class="flag">{_esc(f.replace("_", " "))}</span>' for f in (r["flags"] or "").split())
        if r.get("asr_notice"):
            flags += f'<span class="muted">{_esc(r["asr_notice"])}</span>'
        sdi = f"{r['substitutions']}/{r['deletions']}/{r['insertions']}"
        audio = f'<audio controls preload="none" src="{_esc(r["audio_file"])}"></audio>' if r.get("audio_file") else ""
        rep = f" r{r['repeat']}" if r["repeat"] else ""
        parts.append(
            f"<tr><td>{_esc(r['system'])}</td><td>{_esc(_row_weights(r))}</td><td>{_esc(r['sentence_id'])}{rep}</td><td>{audio}</td>"
            f'<td class="num">{_num(r["wer"] * 100 if r["wer"] is not None else None, 1)}%</td>'
            f'<td class="num">{_num(r["cer"] * 100 if r["cer"] is not None else None, 1)}%</td>'
            f'<td class="num">{sdi}</td><td class="num">{_num(r["audio_seconds"], 2)}</td>'
            f'<td class="num">{_num(r["rtf"], 3)}</td><td class="num">{_num(r["sim"], 3)}</td>'
            f'<td class="num">{_num(r.get("dnsmos_ovrl"), 2)}</td><td class="num">{_num(r.get("utmos"), 2)}</td><td>{flags}</td>'
            f"<td><details><summary>{_esc((r['hyp_text'] or '(empty)')[:60])}</summary>"
            f"<div class='muted'>REF: {_esc(r['ref_text'])}<br>HYP: {_esc(r['hyp_text']) or '(empty)'}<br>"
            f"normalized ({_esc(r['normalizer'])}): {_esc(r['ref_norm'])} → {_esc(r['hyp_norm'])}</div>"
            f"<div class='scroll'>{alignment_view(r)}</div></details></td></tr>"
        )
    parts.append("</table>")
    return "".join(parts)


def metrics_legend(summary: dict[str, Any]) -> str:
    """What SIM and the MOS columns are, which model made them, and what they can be compared with."""
    models = summary.get("metrics") or {}
    sim = models.get("sim")
    if sim and sim.get("independent"):
        sim_text = (
            f"SIM = cosine similarity of {_esc(sim.get('name'))} speaker embeddings, generated audio vs the reference "
            "voice (SIM-o, an independent speaker verifier). Comparable only with SIM from the same verifier; "
            "the ground-truth row (real recordings vs the same reference) is the ceiling."
        )
    elif sim:
        sim_text = (
            f"SIM = cosine similarity of {_esc(sim.get('name'))} embeddings: the generating model's own speaker "
            "encoder, so the model judges itself (self-similarity). Not comparable with published SIM-o."
        )
    else:
        sim_text = "SIM was off for this run."
    mos = models.get("mos") or {}
    mos_text = ""
    if "dnsmos" in mos:
        mos_text += (
            " DNSMOS (Microsoft, P.835: SIG = speech signal, BAK = background noise, OVRL = overall; P.808 = "
            "overall in the P.808 protocol) predicts a 1-5 listener score of noise and distortion from 16 kHz "
            "audio; clips shorter than its 9 s window are repeated to fill it. BAK saturates near its top on "
            "clean TTS output, so it rarely separates TTS systems. It predicts listeners of noisy speech, not TTS "
            "naturalness: compare systems within one run, not with MOS from listening tests."
        )
    if "utmos" in mos:
        info = mos["utmos"]
        mos_text += (
            " UTMOS predicts naturalness MOS (the VoiceMOS 2022 predictor most TTS papers report)."
            if info.get("available") is not False
            else f" UTMOS: not available ({_esc(info.get('reason'))}); its column is empty, never estimated."
        )
    return f"<p class='muted' id='metrics-legend'>{sim_text}{mos_text}</p>"


def render_report(summary: dict[str, Any], rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The whole report as one HTML string (no external resources except the run's own audio files).

    Args:
        summary: summary.json content.
        rows: results.csv rows.
        meta: config.json content (systems, reference clips).

    Returns:
        HTML text.
    """
    systems = list((summary.get("systems") or {}).keys())
    tts_systems = [s for s in systems if s != GROUND_TRUTH]
    title = f"XTTS Lab eval — {summary.get('run_id')}"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    name = (summary.get("config") or {}).get("name")
    state = summary.get("state")
    parts.append(
        f"<p class='muted' id='run-line'>{_esc(name) + ' · ' if name else ''}{summary.get('n_rows')} utterances · "
        f"state: {_esc(state)}"
        f"{' (partial: resume the run to finish it)' if state != 'done' else ''}</p>"
    )
    if summary.get("tiny"):
        parts.append(f'<div class="note" id="tiny-note"><b>Tiny models.</b> {_esc(summary.get("note"))}</div>')

    parts.append(
        "<h2>Summary</h2><p class='muted'>Corpus rate = total errors / total reference words (characters "
        "for zh/ja/ko); mean = average of per-utterance rates. Brackets: bootstrap 95% confidence intervals "
        f"({summary.get('bootstrap')} resamples, seed {summary.get('seed')}). RTF = generation time / audio "
        "duration, warm-up call excluded.</p>"
    )
    parts.append(metrics_legend(summary))
    parts.append(_table(summary_rows(summary), table_id="summary-table"))
    if GROUND_TRUTH in systems:
        parts.append(
            "<p class='muted'>The <b>ground truth</b> row is the same ASR run on the real recordings: "
            "its error is the ASR's own, a floor for the TTS systems.</p>"
        )

    if summary.get("ranking") and summary.get("training_run"):
        parts.append(
            f"<h2>Checkpoint ranking</h2><p class='muted'>Training run {_esc(summary['training_run'])}; "
            "best first by corpus error, then SIM.</p>"
        )
        parts.append(_table(ranking_rows(summary), table_id="ranking-table"))
        img = plot_ranking(summary)
        if img:
            parts.append(f"<img class='plot' alt='ranking' src='{img}'>")

    paired = paired_rows(summary)
    if paired:
        parts.append(
            "<h2>Paired comparison</h2><p class='muted'>A minus B on the sentences both systems have "
            "(paired bootstrap); a negative WER difference means A makes fewer errors. "
            "P(A better) = share of resamples in which A wins.</p>"
        )
        parts.append(_table(paired, table_id="paired-table"))

    parts.append("<h2>Plots</h2>")
    for img in (plot_error_distribution(rows, systems), plot_rtf_vs_duration(rows, tts_systems)):
        if img:
            parts.append(f"<img class='plot' src='{img}'>")

    parts.append("<h2>By language</h2>")
    parts.append(_table(breakdown_rows(summary, "by_language"), table_id="by-language-table"))
    parts.append("<h2>By sentence length</h2>")
    parts.append(_table(breakdown_rows(summary, "by_length"), table_id="by-length-table"))

    folders = {n: f for n, f in (summary.get("audio_folders") or {}).items() if f.get("missing") or f.get("extra")}
    if folders:
        parts.append(
            "<h2>Audio folders</h2><table id='audio-folders-table'><tr><th>system</th><th>folder</th>"
            "<th>files used</th><th>sentences without a file</th><th>files matching no sentence</th></tr>"
        )
        for n, f in folders.items():
            parts.append(
                f"<tr><td>{_esc(n)}</td><td>{_esc(f['folder'])}</td><td class='num'>{f['files']}</td>"
                f"<td>{_esc(', '.join(f['missing']))}</td><td>{_esc(', '.join(f['extra']))}</td></tr>"
            )
        parts.append("</table>")

    refs = meta.get("references") or {}
    if refs:
        parts.append("<h2>Reference voices</h2><table>")
        for spec, files in refs.items():
            players = " ".join(f'<audio controls preload="none" src="{_esc(f)}"></audio>' for f in files)
            parts.append(f"<tr><th>{_esc(spec if not files else Path(files[0]).name)}</th><td>{players}</td></tr>")
        parts.append("</table>")

    parts.append(
        "<h2>Utterances</h2><p class='muted legend'>Alignment: <span style='background:#fff1c1'>"
        "substitution</span><span style='background:#ffd7d5'>deletion</span>"
        "<span style='background:#d3f4ff'>insertion</span> · flags: cut off = deletions at the end, "
        "hallucinated tail = insertions at the end or a looping n-gram, long silence = trailing silence "
        "over 1 s, clipping = samples at full scale.</p>"
    )
    parts.append(_utterance_html(rows, systems))
    parts.append("<h2>Provenance</h2>")
    parts.append(_provenance_html(summary))
    parts.append(
        "<p class='muted'>Files next to this report: results.csv (one row per utterance), summary.json "
        "(every number above), audio/.</p></body></html>"
    )
    return "\n".join(parts)


def write_report(folder: Path, summary: dict[str, Any], rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """Write ``report.html`` into the run folder (atomically)."""
    return write_text(Path(folder) / "report.html", render_report(summary, rows, meta))
