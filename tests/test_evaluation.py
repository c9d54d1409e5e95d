"""The eval loop end to end on the tiny models: files, numbers that match results.csv, stop/resume,
the headless command, listening tests, checkpoint ranking and every bad input.

Tiny-model numbers measure plumbing (every step runs and is scored), never speech quality.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf

from config import ROOT, load_settings
from engines.core.audio import load_audio, save_wav, write_text
from engines.core.errors import AudioError, BusyError, InputError, LabError, MissingWeightsError
from engines.core.options import TTSOptions
from engines.datasets.manifest import ClipEntry, write_dataset
from engines.eval import GROUND_TRUTH, EvalConfig, load_sentences, read_results
from tests.eval_helpers import gate_synthesis

TOKENS = 8  # GPT audio tokens per sentence: ~0.35 s of (noise) audio keeps each synthesis short
FAST = {"generation": TTSOptions(max_audio_tokens=TOKENS), "beam_size": None, "bootstrap": 200}
FAST_JSON = {
    "max_audio_tokens": TOKENS,
    "beam_size": None,
    "bootstrap": 200,
}  # flat keys, as eval.json files write them

ESPEAK_SENTENCES = [
    ("in being comparatively modern.", "s1"),
    ("the quick brown fox jumps over the lazy dog.", "s2"),
    ("ask not what your country can do for you.", "s3"),
]


def _link_tiny(workspace: Path, tiny_models) -> None:
    (workspace / "tiny-models").mkdir(parents=True, exist_ok=True)
    for item in (tiny_models.xtts_dir, tiny_models.whisper_path):
        link = workspace / "tiny-models" / item.name
        if not link.exists():
            link.symlink_to(item, target_is_directory=item.is_dir())


@pytest.fixture(scope="module")
def ev_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eval")


@pytest.fixture(scope="module")
def ev_settings(ev_root, tiny_models):
    _link_tiny(ev_root / "workspace", tiny_models)
    return load_settings(
        {
            "workspace": ev_root / "workspace",
            "datasets_dir": ev_root / "datasets",
            "tiny_models": True,
            "device": "cpu",
        },
        env={},
    )


@pytest.fixture(scope="module")
def eng(ev_settings):
    from engines import Engines

    return Engines.create(ev_settings)


@pytest.fixture(scope="module")
def recordings(request) -> list[tuple[Path, str]]:
    """3 short (wav, transcript) pairs: transcribed LJSpeech clips when ../shared/data exists, else espeak-ng."""
    try:
        shared = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        speak = request.getfixturevalue("speak")
        return [(speak(text, "en", name=f"rec-{sid}"), text) for text, sid in ESPEAK_SENTENCES]
    root = shared / "ljspeech"
    with open(root / "metadata.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="|") if (r.get("text") or "").strip()]
    rows.sort(key=lambda r: sf.info(str(root / r["audio_file"])).duration)
    return [(root / r["audio_file"], r["text"].strip()) for r in rows[:3]]


def make_dataset(datasets_dir: Path, name: str, clips: list[tuple[Path, str]], language: str = "en") -> Path:
    """A coqui-format dataset whose eval split holds all the clips."""
    folder = datasets_dir / name
    (folder / "wavs").mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (src, text) in enumerate(clips):
        audio, sr = load_audio(src, sr=22050)
        save_wav(folder / "wavs" / f"clip{i:03d}.wav", audio, sr)
        entries.append(ClipEntry(f"wavs/clip{i:03d}.wav", text, "speaker"))
    return write_dataset(folder, language, [], entries)


@pytest.fixture(scope="module")
def dataset(ev_settings, recordings) -> Path:
    return make_dataset(ev_settings.path("datasets_dir"), "lj", recordings)


@pytest.fixture(scope="module")
def voice_clip(speak) -> Path:
    return speak(
        "Printing, in the only sense with which we are at present concerned, differs from most arts.", name="eval-ref"
    )


@pytest.fixture(scope="module")
def full_run(eng, dataset, voice_clip):
    """One run: 3 sentences with real recordings x 2 systems (a built-in speaker and a reference clip)."""
    config = EvalConfig(
        sentences="dataset:lj",
        models=("tiny",),
        voices=("speaker:Tiny Alice", str(voice_clip)),
        seed=7,
        asr_batch_size=8,
        name="loop",
        **FAST,
    )
    updates = []
    final = eng.eval.run(config, progress=lambda f, desc="": updates.append((f, desc)))
    return {"final": final, "config": config, "updates": updates}


def _csv_rows(path: Path) -> list[dict[str, str]]:
    """results.csv with its timings.csv, read with the csv module only (independent of engines.eval.read_results)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not path.with_name("timings.csv").is_file():  # other CSVs of a run (listening answers)
        return rows
    with open(path.with_name("timings.csv"), newline="", encoding="utf-8") as fh:
        timings = {t["key"]: t for t in csv.DictReader(fh)}
    return [{**r, **timings[r["key"]]} for r in rows]


def _f(text: str) -> float:
    return float(text) if text != "" else float("nan")


# ---------------------------------------------------------------- report.html vs summary.json vs results.csv


class _Tables(HTMLParser):
    """Every ``<table id=...>`` of a page as rows of cell texts (a nested table's text stays in its cell)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._open: list[list[list[str]]] = []  # rows of each open table, innermost last
        self._cells: list[tuple[list[str], int]] = []  # open cells: (row, index)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            rows: list[list[str]] = []
            self._open.append(rows)
            if dict(attrs).get("id"):
                self.tables[str(dict(attrs)["id"])] = rows
        elif tag == "tr" and self._open:
            self._open[-1].append([])
        elif tag in ("td", "th") and self._open and self._open[-1]:
            row = self._open[-1][-1]
            row.append("")
            self._cells.append((row, len(row) - 1))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._open:
            self._open.pop()
        elif tag in ("td", "th") and self._cells:
            self._cells.pop()

    def handle_data(self, data: str) -> None:
        for row, i in self._cells:
            row[i] += data


def report_tables(page: str) -> dict[str, list[dict[str, str]]]:
    """The report's id'd tables as lists of {header: cell text}."""
    parser = _Tables()
    parser.feed(page)
    return {
        name: [dict(zip([h.strip() for h in rows[0]], [c.strip() for c in r])) for r in rows[1:]]
        for name, rows in parser.tables.items()
        if rows
    }


_NUM = r"[-+]?\d+(?:\.\d+)?"


def _shown(text: str) -> list[float]:
    """The numbers a cell shows, in order ("3.9% [1.4, 6.3]" -> [3.9, 1.4, 6.3]; "n/a" -> [])."""
    return [float(x) for x in re.findall(_NUM, text.replace("−", "-"))]


def _close(shown: float, value: float, digits: int) -> bool:
    """``shown`` is ``value`` rounded to ``digits`` decimals (half a unit of slack, for rounding)."""
    return abs(shown - value) <= 0.5 * 10**-digits + 1e-9


def _pct_text(est: dict, ci: bool = True) -> str:
    """How summary.json's estimate must read in the page (independent of engines.eval.report)."""
    if est["value"] is None:
        return "n/a"
    text = f"{est['value'] * 100:.1f}%"
    return text + (f" [{est['low'] * 100:.1f}, {est['high'] * 100:.1f}]" if ci and est["low"] is not None else "")


def _val_text(est: dict, digits: int = 3, ci: bool = True) -> str:
    if est["value"] is None:
        return "n/a"
    text = f"{est['value']:.{digits}f}"
    return text + (f" [{est['low']:.{digits}f}, {est['high']:.{digits}f}]" if ci and est["low"] is not None else "")


def _finite(values) -> list[float]:
    return [v for v in (_f(x) for x in values) if math.isfinite(v)]


def _weights_text(tts: str, asr: str) -> str:
    return f"{'TTS ' + tts if tts else 'recordings'} · ASR {asr}"


def _check_group(cells: dict[str, str], block: dict, mine: list[dict[str, str]], rates: bool = True) -> None:
    """n, corpus WER/CER, SIM and RTF of one summary or breakdown row: the page shows summary.json's numbers,
    and they are what results.csv's rows give."""
    assert int(cells["n"]) == block["n"] == len(mine)
    for metric, errs, lens in (("wer", "word_errors", "ref_words"), ("cer", "char_errors", "ref_chars")):
        cell = cells[f"{metric.upper()} (corpus)"]
        assert cell == _pct_text(block[metric]["corpus"]), (metric, cell)
        corpus = sum(int(r[errs]) for r in mine) / sum(int(r[lens]) for r in mine)
        assert _close(_shown(cell)[0], corpus * 100, 1), (metric, cell, corpus)
        assert block[metric]["corpus"]["value"] == pytest.approx(corpus)
    sims, rtfs = _finite(r["sim"] for r in mine), _finite(r["rtf"] for r in mine)
    sim_cell = cells["SIM"]
    assert sim_cell == _val_text(block["sim"]["mean"])
    if sims:
        assert _close(_shown(sim_cell)[0], float(np.mean(sims)), 3)
    else:
        assert sim_cell == "n/a"
    if "RTF" in cells:  # breakdown rows: the mean only
        assert cells["RTF"] == _val_text(block["rtf"]["mean"], 3, False)
        assert (_close(_shown(cells["RTF"])[0], float(np.mean(rtfs)), 3)) if rtfs else cells["RTF"] == "n/a"


def check_report_agrees(folder: Path) -> dict:
    """Every number report.html shows (summary, breakdowns, paired comparisons, utterances, counts) equals
    summary.json's and a recomputation from results.csv (read with the csv module only).

    Returns:
        summary.json, for further checks.
    """
    rows = _csv_rows(folder / "results.csv")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    page = (folder / "report.html").read_text(encoding="utf-8")
    tables = report_tables(page)
    line = re.search(r"id='run-line'>(.*?)</p>", page, re.S)
    assert line and f"{len(rows)} utterances" in line.group(1) and summary["n_rows"] == len(rows)

    by_system: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_system.setdefault(r["system"], []).append(r)
    shown = tables["summary-table"]
    assert [c["system"] for c in shown] == list(summary["systems"]) and set(summary["systems"]) == set(by_system)
    for cells in shown:
        name = cells["system"]
        block, mine = summary["systems"][name], by_system[name]
        _check_group(cells, block, mine)
        # which models the numbers rest on: per row in results.csv, per system in summary.json and the page
        tts, asr = {r["tts_weights"] for r in mine}, {r["asr_weights"] for r in mine}
        assert len(tts) == 1 and len(asr) == 1 and asr <= {"random", "real"} and tts <= {"random", "real", ""}
        tts_w, asr_w = tts.pop(), asr.pop()
        assert (tts_w == "") == (name == GROUND_TRUTH)
        assert block["weights"] == {"tts": tts_w or None, "asr": asr_w, "random": "random" in (tts_w, asr_w)}
        assert cells["models"] == _weights_text(tts_w, asr_w)
        assert (name in summary["random_systems"]) == block["weights"]["random"]
        wers = [_f(r["wer"]) for r in mine]
        for col, est, value in (
            ("WER (mean)", block["wer"]["mean"], np.mean(wers)),
            ("with errors", block["wer"]["any_error"], np.mean([w > 0 for w in wers])),
            ("CER (mean)", block["cer"]["mean"], np.mean([_f(r["cer"]) for r in mine])),
        ):
            assert cells[col] == _pct_text(est) and _close(_shown(cells[col])[0], value * 100, 1), col
        median, p90 = _shown(cells["WER median / p90"])
        assert cells["WER median / p90"] == (
            f"{_pct_text(block['wer']['median'], False)} / {_pct_text(block['wer']['p90'], False)}"
        )
        assert _close(median, np.median(wers) * 100, 1) and _close(p90, np.percentile(wers, 90) * 100, 1)
        rtfs = _finite(r["rtf"] for r in mine)
        if rtfs:
            mean, std = _shown(cells["RTF mean ± std"])
            assert _close(mean, np.mean(rtfs), 3)
            assert _close(std, np.std(rtfs, ddof=1) if len(rtfs) > 1 else 0.0, 3)
            p50, p95 = _shown(cells["RTF p50 / p95"])
            assert _close(p50, np.percentile(rtfs, 50), 3) and _close(p95, np.percentile(rtfs, 95), 3)
        else:
            assert cells["RTF mean ± std"] == "n/a" and cells["RTF p50 / p95"] == "n/a / n/a"
        flags = {
            k.replace("_", " "): sum(r[f"flag_{k}"] == "1" for r in mine)
            for k in ("cut_off", "hallucinated_tail", "long_silence", "clipping")
        }
        assert cells["flags"] == (", ".join(f"{k} {v}" for k, v in flags.items() if v) or "none")
        assert {k.replace("_", " "): v for k, v in block["flags"].items()} == flags

    for table, key, column in (
        ("by-language-table", "by_language", "language"),
        ("by-length-table", "by_length", "length_bucket"),
    ):
        shown = tables[table]
        expected = {(r["system"], r[column]) for r in rows}
        assert {(c["system"], c["group"]) for c in shown} == expected and len(shown) == len(expected)
        for cells in shown:
            mine = [r for r in by_system[cells["system"]] if r[column] == cells["group"]]
            _check_group(cells, summary["systems"][cells["system"]][key][cells["group"]], mine)

    paired = tables.get("paired-table", [])
    assert len(paired) == len(summary["paired"])
    for cells, p in zip(paired, summary["paired"]):
        assert (cells["A"], cells["B"]) == (p["a"], p["b"])
        a = {r["sentence_id"]: r for r in by_system[p["a"]]}
        b = {r["sentence_id"]: r for r in by_system[p["b"]]}
        common = sorted(set(a) & set(b))
        assert int(cells["sentences"]) == p["n"] == len(common)
        for metric, errs, lens in (("WER", "word_errors", "ref_words"), ("CER", "char_errors", "ref_chars")):
            total = sum(int(a[s][lens]) for s in common)
            diff = sum(int(a[s][errs]) - int(b[s][errs]) for s in common) / total
            value, *_ = _shown(cells[f"{metric} A−B"])
            assert _close(value, diff * 100, 1) and value == float(f"{p[metric.lower()]['diff']['value'] * 100:+.1f}")
            assert cells[f"P(A better {metric})"] == f"{p[metric.lower()]['p_a_better']:.2f}"
        both = [s for s in common if a[s]["sim"] != "" and b[s]["sim"] != ""]
        if both:
            diff = np.mean([_f(a[s]["sim"]) for s in both]) - np.mean([_f(b[s]["sim"]) for s in both])
            assert _close(_shown(cells["SIM A−B"])[0], diff, 3)

    utts = tables["utterances-table"]
    assert len(utts) == len(rows)
    shown_by_key = {}
    for cells in utts:
        sentence, _, rep = cells["sentence"].partition(" r")
        shown_by_key[(cells["system"], sentence, int(rep or 0))] = cells
    assert len(shown_by_key) == len(rows)
    for r in rows:
        cells = shown_by_key[(r["system"], r["sentence_id"], int(r["repeat"]))]
        assert _close(_shown(cells["WER"])[0], _f(r["wer"]) * 100, 1) and _close(
            _shown(cells["CER"])[0], _f(r["cer"]) * 100, 1
        )
        assert cells["S/D/I"] == f"{r['substitutions']}/{r['deletions']}/{r['insertions']}"
        assert _close(float(cells["dur (s)"]), _f(r["audio_seconds"]), 2)
        for col, digits in (("RTF", 3), ("SIM", 3)):
            value = _f(r[col.lower()])
            assert (_close(float(cells[col]), value, digits)) if math.isfinite(value) else cells[col] == ""
        assert cells["models"] == _weights_text(r["tts_weights"], r["asr_weights"])
        for flag in r["flags"].split():
            assert flag.replace("_", " ") in cells["flags"]
    return summary


# ---------------------------------------------------------------- the whole loop


def test_loop_writes_every_file_and_row(full_run):
    final = full_run["final"]
    folder = final.folder
    assert final.state == "done" and final.done == final.total == 3 + 2 * 3
    for name in ("results.csv", "summary.json", "report.html", "config.json", "sentences.csv", "status.json"):
        assert (folder / name).is_file(), name
    rows = _csv_rows(folder / "results.csv")
    assert len(rows) == 9 and len({r["key"] for r in rows}) == 9
    systems = {r["system"] for r in rows}
    assert systems == {GROUND_TRUTH, "tiny / Tiny Alice", "tiny / eval-ref"}
    for r in rows:
        audio, sr = sf.read(folder / r["audio_file"])
        assert len(audio) > 0 and _f(r["audio_seconds"]) == pytest.approx(len(audio) / sr, abs=1e-3)
        assert r["language"] == "en" and r["normalizer"] == "whisper.EnglishTextNormalizer"
        if r["system"] == GROUND_TRUTH:
            assert r["rtf"] == "" and r["gen_seconds"] == ""
            # real recordings vs the run's reference clip (the SIM ceiling), from the default verifier
            assert -1.0 <= _f(r["sim"]) <= 1.0 and r["sim_encoder"] == "resemblyzer"
            assert r["sim_reference"] == "file:eval-ref.wav"
        else:
            assert _f(r["gen_seconds"]) > 0 and _f(r["rtf"]) == pytest.approx(
                _f(r["gen_seconds"]) / _f(r["audio_seconds"]), rel=1e-3
            )
            # 8 tokens = 0.36 s of audio: too short for a speaker embedding (tests/test_eval_quality.py has SIM)
            assert r["sim"] == "" and r["sim_encoder"] == ""
            assert r["seed"] == "7"
    # Progress was reported along the way and ended at 100 %.
    assert full_run["updates"][-1][0] == 1.0
    # The reference clip was copied into the run, so the report can play it.
    assert any((folder / "refs").iterdir())


def test_row_scores_match_jiwer_and_the_normalizer(full_run):
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    for r in _csv_rows(full_run["final"].folder / "results.csv"):
        assert r["ref_norm"] == " ".join(norm(r["ref_text"]).split())
        assert r["hyp_norm"] == " ".join(norm(r["hyp_text"]).split())
        out = jiwer.process_words(r["ref_norm"], r["hyp_norm"])
        assert int(r["substitutions"]) == out.substitutions and int(r["deletions"]) == out.deletions
        assert int(r["insertions"]) == out.insertions and int(r["ref_words"]) == len(r["ref_norm"].split())
        assert _f(r["wer"]) == pytest.approx(out.wer, abs=1e-6)
        assert _f(r["cer"]) == pytest.approx(jiwer.cer(r["ref_norm"], r["hyp_norm"]), abs=1e-6)
        if r["hyp_norm"] == "":  # empty ASR text: WER 1.0, every word deleted, row kept
            assert _f(r["wer"]) == 1.0 and int(r["deletions"]) == int(r["ref_words"])


def test_summary_numbers_match_results_csv(full_run):
    folder = full_run["final"].folder
    rows = _csv_rows(folder / "results.csv")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["systems"]) == {r["system"] for r in rows}
    for name, block in summary["systems"].items():
        mine = [r for r in rows if r["system"] == name]
        assert block["n"] == len(mine) == 3
        corpus_wer = sum(int(r["word_errors"]) for r in mine) / sum(int(r["ref_words"]) for r in mine)
        corpus_cer = sum(int(r["char_errors"]) for r in mine) / sum(int(r["ref_chars"]) for r in mine)
        assert block["wer"]["corpus"]["value"] == pytest.approx(corpus_wer)
        assert block["cer"]["corpus"]["value"] == pytest.approx(corpus_cer)
        assert block["wer"]["mean"]["value"] == pytest.approx(np.mean([_f(r["wer"]) for r in mine]))
        assert block["wer"]["median"]["value"] == pytest.approx(np.median([_f(r["wer"]) for r in mine]))
        assert block["wer"]["any_error"]["value"] == pytest.approx(np.mean([_f(r["wer"]) > 0 for r in mine]))
        for stat in ("corpus", "mean", "median", "p90"):
            est = block["wer"][stat]
            assert est["low"] <= est["value"] + 1e-12 and est["value"] <= est["high"] + 1e-12
        sims = [_f(r["sim"]) for r in mine if r["sim"] != ""]
        assert block["sim"]["mean"]["value"] == (pytest.approx(np.mean(sims), rel=1e-5) if sims else None)
        if name == GROUND_TRUTH:
            assert block["rtf"]["mean"]["value"] is None and sims
        else:
            assert block["rtf"]["mean"]["value"] == pytest.approx(np.mean([_f(r["rtf"]) for r in mine]), rel=1e-5)
            assert block["rtf"]["std"] == pytest.approx(np.std([_f(r["rtf"]) for r in mine], ddof=1), rel=1e-4)
        assert set(block["by_language"]) == {"en"}
        assert sum(b["n"] for b in block["by_length"].values()) == 3
    # The two TTS systems are compared pairwise on the same 3 sentences.
    assert len(summary["paired"]) == 1 and summary["paired"][0]["n"] == 3
    assert [e["system"] for e in summary["ranking"]] and GROUND_TRUTH not in [e["system"] for e in summary["ranking"]]


def test_summary_records_provenance(full_run):
    summary = json.loads((full_run["final"].folder / "summary.json").read_text(encoding="utf-8"))
    prov = summary["provenance"]
    for lib in ("xtts_lab", "torch", "coqui-tts", "openai-whisper", "jiwer", "python"):
        assert prov["versions"].get(lib), lib
    assert prov["device"] == "cpu" and prov["asr_model"] == "tiny-random"
    assert "tiny" in prov["tts_models"] and prov["tts_models"]["tiny"]["dir"]
    assert prov["speaker_encoder"] == "Resemblyzer GE2E (256-d)"  # the default SIM verifier, by name
    assert summary["normalizers_used"] == ["whisper.EnglishTextNormalizer"]
    assert summary["seed"] == 7 and summary["config"]["generation"]["max_audio_tokens"] == TOKENS
    assert summary["config"]["voices"] == list(full_run["config"].voices)
    assert summary["tiny"] is True and "plumbing" in summary["note"]


def test_report_is_self_contained_and_shows_the_numbers(full_run):
    folder = full_run["final"].folder
    page = (folder / "report.html").read_text(encoding="utf-8")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert 'id="tiny-note"' in page and "plumbing" in page and "not speech quality" in page
    for name, block in summary["systems"].items():
        assert name in page
        assert f"{block['wer']['corpus']['value'] * 100:.1f}%" in page
        assert f"{block['cer']['corpus']['value'] * 100:.1f}%" in page
    for r in read_results(folder / "results.csv"):
        assert f'src="{r["audio_file"]}"' in page  # relative: the report works wherever the folder goes
    assert page.count("data:image/png;base64,") >= 2  # WER distribution and RTF vs duration
    assert 'class="align"' in page and "<style>" in page
    assert "http://" not in page and "https://" not in page  # no external resources


def test_report_numbers_agree_with_summary_and_results(full_run):
    summary = check_report_agrees(full_run["final"].folder)
    assert len(summary["paired"]) == 1  # the paired table was checked too


def test_rows_and_summary_say_which_models_were_random(eng, full_run):
    folder = full_run["final"].folder
    rows = _csv_rows(folder / "results.csv")
    for r in rows:  # tiny mode: tiny XTTS and tiny Whisper, so every row's ASR is random
        assert r["asr_weights"] == "random"
        assert r["tts_weights"] == ("" if r["system"] == GROUND_TRUTH else "random")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["systems"][GROUND_TRUTH]["weights"] == {"tts": None, "asr": "random", "random": True}
    assert summary["systems"]["tiny / eval-ref"]["weights"] == {"tts": "random", "asr": "random", "random": True}
    assert summary["random_systems"] == list(summary["systems"]) and summary["tiny"] is True
    for name in summary["systems"]:
        assert name in summary["note"]
    assert "random TTS speaks noise" in summary["note"] and "random ASR writes gibberish" in summary["note"]
    assert "Real measurements" not in summary["note"]  # nothing here rests on trained models only
    meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert meta["asr_weights"] == "random" and {d["tts_weights"] for d in meta["systems"]} == {"random"}
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "recordings · ASR random" in page and "TTS random · ASR random" in page
    assert eng.eval.tts_weights("tiny") == "random" and eng.eval.asr_weights("tiny-random") == "random"
    assert eng.eval.tts_weights("xtts_v2") == "real" and eng.eval.asr_weights("small") == "real"
    assert eng.eval.asr_weights(str(eng.asr.tiny.whisper_path)) == "random"  # by file, not only by id


def test_rebuild_fills_the_model_columns_of_an_older_run(eng, full_run):
    """A run recorded before results.csv had tts_weights/asr_weights still gets per-system weights."""
    src = full_run["final"].folder
    old = eng.eval.reports_dir / "old-format"
    shutil.copytree(src, old)
    meta = json.loads((old / "config.json").read_text(encoding="utf-8"))
    meta.pop("asr_weights")
    for d in meta["systems"]:
        d.pop("tts_weights")
    write_text(old / "config.json", json.dumps(meta))
    with open(old / "results.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    keep = [i for i, col in enumerate(table[0]) if col not in ("tts_weights", "asr_weights")]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([row[i] for i in keep] for row in table)
    write_text(old / "results.csv", buf.getvalue())
    eng.eval.rebuild_report("old-format")
    summary = json.loads((old / "summary.json").read_text(encoding="utf-8"))
    assert summary["systems"][GROUND_TRUTH]["weights"] == {"tts": None, "asr": "random", "random": True}
    assert summary["systems"]["tiny / Tiny Alice"]["weights"]["tts"] == "random" and summary["tiny"] is True
    shutil.rmtree(old)


def test_compare_runs_and_paired_comparison(eng, full_run):
    from engines.eval import paired_comparison

    run_id = full_run["final"].run_id
    table = eng.eval.compare_runs(run_id, run_id)
    assert {row["system"] for row in table} == {GROUND_TRUTH, "tiny / Tiny Alice", "tiny / eval-ref"}
    for row in table:
        assert row["A WER"] == row["B WER"] and row["A n"] == 3
    _, rows, _ = eng.eval.load_run(run_id)
    same = paired_comparison(rows, "tiny / Tiny Alice", "tiny / Tiny Alice", 200, 0)
    assert same["wer"]["diff"]["value"] == 0.0 and same["n"] == 3
    assert [r.run_id for r in eng.eval.list_runs()].count(run_id) == 1


def test_listening_test_round_trip(eng, full_run):
    ev = eng.eval
    run_id = full_run["final"].run_id
    a, b = "tiny / Tiny Alice", "tiny / eval-ref"
    test_id = ev.create_listening_test(run_id, a, b, mode="ab+mos", seed=3)
    plan = ev.listening_plan(run_id, test_id)
    assert len(plan["trials"]) == 3
    _, rows, _ = ev.load_run(run_id)
    audio = {(r["system"], r["sentence_id"]): r["audio_file"] for r in rows}
    for t in plan["trials"]:
        assert {t["system1"], t["system2"]} == {a, b}  # both systems, sides shuffled
        assert t["clip1"] == audio[(t["system1"], t["sentence_id"])]
        assert t["clip2"] == audio[(t["system2"], t["sentence_id"])]
    with pytest.raises(InputError, match="better"):
        ev.record_listening(run_id, test_id, 0, preference=None, mos1=3, mos2=3)
    with pytest.raises(InputError, match="Rate clip 1"):
        ev.record_listening(run_id, test_id, 0, preference="1", mos1=7, mos2=3)
    with pytest.raises(InputError, match="does not exist"):
        ev.record_listening(run_id, test_id, 9, preference="1", mos1=3, mos2=3)
    scores = {a: [], b: []}
    for t in plan["trials"]:
        answer = ev.record_listening(run_id, test_id, t["index"], preference="1", mos1=4, mos2=2)
        assert answer["preferred_system"] == t["system1"]
        scores[t["system1"]].append(4.0)
        scores[t["system2"]].append(2.0)
    folder = ev.run_dir(run_id) / "listening" / test_id
    assert len(_csv_rows(folder / "answers.csv")) == 3 and (folder / "answers.json").is_file()
    summary = ev.listening_summary(run_id, test_id)
    share = {name: sum(1 for t in plan["trials"] if t["system1"] == name) / 3 for name in (a, b)}
    assert summary["preference"][a]["value"] == pytest.approx(share[a])
    assert summary["preference"][b]["value"] == pytest.approx(share[b])
    assert summary["preference"]["same"]["value"] == 0.0
    for name in (a, b):
        est = summary["mos"][name]
        assert est["value"] == pytest.approx(np.mean(scores[name])) and est["n"] == 3
        assert est["low"] <= est["value"] <= est["high"]
    with pytest.raises(InputError, match="two different"):
        ev.create_listening_test(run_id, a, a)


# ---------------------------------------------------------------- stop, crash and resume


def test_stop_after_k_then_resume_finishes_without_redoing(eng, tmp_path, monkeypatch):
    ev = eng.eval
    config = EvalConfig(
        sentences="builtin:en",
        max_sentences=4,
        models=("tiny",),
        voices=("speaker:Tiny Bob",),
        asr_batch_size=2,
        ground_truth=False,
        name="stopme",
        **FAST,
    )
    last = None
    for p in ev.iter_run(config):
        last = p
        if p.done >= 2:
            ev.stop()
    assert last.state == "stopped" and last.done == 2 and last.total == 4
    folder = last.folder
    first = read_results(folder / "results.csv")
    assert len(first) == 2
    mtimes = {r["audio_file"]: (folder / r["audio_file"]).stat().st_mtime_ns for r in first}
    assert json.loads((folder / "summary.json").read_text())["complete"] is False  # partial report written
    assert "partial" in (folder / "report.html").read_text(encoding="utf-8")
    assert next(r for r in ev.list_runs() if r.run_id == last.run_id).state == "stopped"

    # A crash leaves status "running" with nobody writing: the list says "interrupted", resume still works.
    status = json.loads((folder / "status.json").read_text())
    write_text(folder / "status.json", json.dumps({**status, "state": "running"}))
    assert next(r for r in ev.list_runs() if r.run_id == last.run_id).state == "interrupted"

    # The run keeps the ASR it started with (config asr_model None = the default then), even if the default
    # changed since (e.g. the app restarted without tiny mode): one run, one ASR.
    monkeypatch.setattr(eng.asr, "default_model", lambda: "large-v3")
    final = ev.resume(last.run_id)
    monkeypatch.undo()
    assert final.state == "done" and final.done == final.total == 4
    rows = read_results(folder / "results.csv")
    assert len(rows) == 4 and len({r["key"] for r in rows}) == 4
    for old in first:  # the finished utterances were kept as they were, not synthesized again
        new = next(r for r in rows if r["key"] == old["key"])
        assert new["gen_seconds"] == old["gen_seconds"] and new["hyp_text"] == old["hyp_text"]
        assert (folder / old["audio_file"]).stat().st_mtime_ns == mtimes[old["audio_file"]]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["complete"] is True and summary["systems"]["tiny / Tiny Bob"]["n"] == 4
    assert summary["provenance"]["asr_model"] == "tiny-random" and {r["asr_weights"] for r in rows} == {"random"}
    with pytest.raises(InputError, match="No eval run"):
        ev.resume("no-such-run")


# ---------------------------------------------------------------- headless command


def test_headless_command_writes_the_same_report(eng, ev_settings, ev_root):
    config = {
        "sentences": "builtin:en",
        "max_sentences": 2,
        "models": ["tiny"],
        "voices": ["speaker:Tiny Bob"],
        "ground_truth": False,
        "seed": 11,
        **FAST_JSON,
    }
    cfg_path = ev_root / "eval.json"
    cfg_path.write_text(json.dumps(config), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTTSLAB_")}
    common = [
        "--workspace",
        str(ev_settings.workspace_dir),
        "--datasets-dir",
        str(ev_settings.path("datasets_dir")),
        "--tiny-models",
        "--device",
        "cpu",
    ]
    cmd = [sys.executable, "-m", "engines.eval", "--config", str(cfg_path), "--run-id", "headless", *common]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Report:" in proc.stdout and "WER (corpus)" in proc.stdout and "plumbing" in proc.stdout
    headless = ev_settings.workspace_dir / "reports" / "headless"
    for name in ("results.csv", "summary.json", "report.html"):
        assert (headless / name).is_file(), name

    inproc = eng.eval.run(EvalConfig.from_dict(config), run_id="inproc").folder
    a, b = _csv_rows(headless / "results.csv"), _csv_rows(inproc / "results.csv")
    same = ("key", "hyp_text", "wer", "cer", "audio_seconds", "audio_file", "sim")
    assert [{k: r[k] for k in same} for r in a] == [{k: r[k] for k in same} for r in b]
    sa = json.loads((headless / "summary.json").read_text())
    sb = json.loads((inproc / "summary.json").read_text())
    assert sa["systems"]["tiny / Tiny Bob"]["wer"] == sb["systems"]["tiny / Tiny Bob"]["wer"]
    assert sa["config"] == sb["config"]

    bad = ev_root / "bad.json"
    bad.write_text(json.dumps({"sentences": "builtin:en", "voices": ["speaker:Tiny Bob"], "colour": "red"}))
    proc = subprocess.run(
        [sys.executable, "-m", "engines.eval", "--config", str(bad), *common],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "Unknown eval config key" in proc.stderr


# ---------------------------------------------------------------- bad input


def test_empty_sentence_set_is_refused(eng, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(InputError, match="no sentences"):
        eng.eval.plan(EvalConfig(sentences=str(empty), language="en", voices=("speaker:Tiny Alice",)))
    header_only = tmp_path / "header.csv"
    header_only.write_text("id,text,language\n", encoding="utf-8")
    with pytest.raises(InputError, match="no sentences"):
        load_sentences(str(header_only), eng.settings)
    with pytest.raises(InputError, match="Pick a sentence set"):
        load_sentences("", eng.settings)
    with pytest.raises(InputError, match="No built-in sentence set"):
        load_sentences("builtin:klingon", eng.settings)


def test_csv_without_text_column_is_refused(eng, tmp_path):
    path = tmp_path / "sentences.csv"
    path.write_text("id,sentence\n1,Hello there.\n", encoding="utf-8")
    with pytest.raises(InputError, match="no 'text' column") as err:
        load_sentences(str(path), eng.settings)
    assert "sentence" in str(err.value)  # names the columns it found


def test_uploaded_csv_and_txt_are_read(eng, tmp_path):
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text("text;language\nHola, ¿qué tal?;es\nGood morning.;en\n", encoding="utf-8")
    s = load_sentences(str(csv_path), eng.settings)
    assert [(x.text, x.language) for x in s.sentences] == [("Hola, ¿qué tal?", "es"), ("Good morning.", "en")]
    assert len({x.id for x in s.sentences}) == 2
    txt = tmp_path / "mine.txt"
    txt.write_text("Привет.\n\nКак дела?\n", encoding="utf-8")
    s = load_sentences(str(txt), eng.settings, language="ru")
    assert [x.text for x in s.sentences] == ["Привет.", "Как дела?"] and s.languages == ["ru"]
    with pytest.raises(InputError, match="no language"):
        load_sentences(str(txt), eng.settings)
    for name in ("en", "en-hard", "ru", "zh-cn"):
        built_in = load_sentences(f"builtin:{name}", eng.settings)
        assert 20 <= len(built_in.sentences) <= 30 and built_in.languages == [name if name != "en-hard" else "en"]


def test_sentence_in_a_language_the_model_lacks(eng, tmp_path, tiny_models):
    path = tmp_path / "swedish.csv"
    path.write_text("text,language\nHej då.,sv\n", encoding="utf-8")
    # any language code is text XTTS may learn (issue 21); the model's own languages decide
    with pytest.raises(InputError, match=r"Model 'tiny' does not speak sv .*It speaks: en"):
        eng.eval.plan(EvalConfig(sentences=str(path), voices=("speaker:Tiny Alice",)))
    path.write_text("text,language\nHej då.,swedish\n", encoding="utf-8")
    with pytest.raises(InputError, match="not a language code"):
        eng.eval.plan(EvalConfig(sentences=str(path), voices=("speaker:Tiny Alice",)))
    # A model whose config lists English only cannot be asked for Russian.
    folder = eng.settings.workspace_sub("models", "tiny-en-only")
    for item in tiny_models.xtts_dir.iterdir():
        if item.name != "config.json" and not (folder / item.name).exists():
            (folder / item.name).symlink_to(item)
    cfg = json.loads((tiny_models.xtts_dir / "config.json").read_text(encoding="utf-8"))
    cfg["languages"] = ["en"]
    write_text(folder / "config.json", json.dumps(cfg))
    with pytest.raises(InputError, match="does not speak ru") as err:
        eng.eval.plan(EvalConfig(sentences="builtin:ru", models=("tiny-en-only",), voices=("speaker:Tiny Alice",)))
    assert "It speaks: en" in str(err.value)
    assert eng.eval.plan(EvalConfig(sentences="builtin:en", models=("tiny-en-only",), voices=("speaker:Tiny Alice",)))[
        1
    ]


def test_unknown_model_is_refused(eng):
    with pytest.raises(MissingWeightsError, match="not found"):
        eng.eval.plan(EvalConfig(sentences="builtin:en", models=("no-such-model",), voices=("speaker:Tiny Alice",)))


def test_reference_voice_that_is_not_audio(eng, tmp_path):
    fake = tmp_path / "voice.wav"
    fake.write_text("this is not audio", encoding="utf-8")
    with pytest.raises(AudioError, match="not a readable audio file"):
        eng.eval.plan(EvalConfig(sentences="builtin:en", voices=(str(fake),)))
    with pytest.raises(InputError, match="not found"):
        eng.eval.plan(EvalConfig(sentences="builtin:en", voices=(str(tmp_path / "missing.wav"),)))
    with pytest.raises(InputError, match="Unknown built-in speaker"):
        eng.eval.plan(EvalConfig(sentences="builtin:en", voices=("speaker:Nobody",)))
    with pytest.raises(InputError, match="No saved voice"):
        eng.eval.plan(EvalConfig(sentences="builtin:en", voices=("voice:nobody",)))
    with pytest.raises(InputError, match="at least one reference voice"):
        eng.eval.plan(EvalConfig(sentences="builtin:en"))


def test_empty_asr_text_scores_wer_one_and_keeps_the_row(eng, ev_settings, tmp_path):
    silent = tmp_path / "silence.wav"
    save_wav(silent, np.zeros(int(1.5 * 22050), np.float32), 22050)
    make_dataset(ev_settings.path("datasets_dir"), "silent", [(silent, "Hello there, my friend.")])
    final = eng.eval.run(
        EvalConfig(sentences="dataset:silent", models=("tiny",), voices=("speaker:Tiny Alice",), name="silent", **FAST)
    )
    rows = read_results(final.folder / "results.csv")
    gt = next(r for r in rows if r["system"] == GROUND_TRUTH)
    assert gt["hyp_text"] == "" and gt["asr_notice"]  # Whisper was told it is silence: nothing decoded
    assert gt["wer"] == 1.0 and gt["cer"] == 1.0 and gt["deletions"] == gt["ref_words"] == 4
    assert gt["flag_cut_off"]  # every word missing at the end
    summary = json.loads((final.folder / "summary.json").read_text())
    assert summary["systems"][GROUND_TRUTH]["wer"]["corpus"]["value"] == 1.0
    assert summary["systems"][GROUND_TRUTH]["empty_hypotheses"] == 1


def test_bad_config_values(eng, tmp_path):
    with pytest.raises(InputError, match="Repeats"):
        eng.eval.plan(EvalConfig(sentences="builtin:en", voices=("speaker:Tiny Alice",), repeats=0))
    with pytest.raises(InputError, match="Unknown eval config key"):
        EvalConfig.from_dict({"sentences": "builtin:en", "voice": ["x"]})
    with pytest.raises(InputError, match="needs 'sentences'"):
        EvalConfig.from_dict({"voices": ["speaker:Tiny Alice"]})
    with pytest.raises(InputError, match="not allowed"):
        eng.eval.run_dir("../etc")
    with pytest.raises(InputError, match="no eval split"):
        load_sentences("dataset:nothing-here", eng.settings)


def english_only_whisper(folder: Path) -> Path:
    """A tiny random Whisper with the English-only vocabulary (like tiny.en), saved as ``tiny-random.en.pt``."""
    from engines.tiny import build_tiny_whisper

    path = folder / "tiny-random.en.pt"
    return path if path.is_file() else build_tiny_whisper(path, english_only=True)


def refused_before_any_work(eng, monkeypatch, config: EvalConfig, match: str) -> str:
    """``run(config)`` raises InputError matching ``match`` before a run folder exists or a word is synthesized."""
    reports = eng.eval.reports_dir
    before = sorted(p.name for p in reports.iterdir())

    def no_synthesis(*args, **kwargs):
        raise AssertionError("synthesis started before the config was refused")

    monkeypatch.setattr(eng.tts, "synthesize", no_synthesis)
    with pytest.raises(InputError, match=match) as err:
        eng.eval.run(config)
    assert sorted(p.name for p in reports.iterdir()) == before  # no run folder
    monkeypatch.undo()
    return str(err.value)


def test_english_only_asr_with_other_languages_is_refused_in_plan(eng, monkeypatch):
    model = english_only_whisper(eng.asr.models_dir)
    base = {"models": ("tiny",), "voices": ("speaker:Tiny Alice",), "asr_model": str(model), **FAST}
    for spec, lang in (("builtin:ru", "Russian (ru)"), ("builtin:zh-cn", "(zh-cn)")):
        message = refused_before_any_work(eng, monkeypatch, EvalConfig(sentences=spec, **base), "English-only")
        assert "tiny-random.en.pt" in message and lang in message  # which model, which language
        assert "multilingual Whisper model" in message and "asr_model" in message  # what to pick instead
    # the same model by its name in workspace/models/whisper, and English sentences are fine
    by_name = EvalConfig(sentences="builtin:ru", **{**base, "asr_model": "tiny-random.en"})
    refused_before_any_work(eng, monkeypatch, by_name, "English-only")
    assert eng.eval.plan(EvalConfig(sentences="builtin:en", **base))[1]
    assert eng.eval.asr_weights(str(model)) == "random"  # a toy-width checkpoint under any name


def test_plan_checks_every_request_before_synthesis(eng, ev_settings, monkeypatch, tmp_path, recordings):
    base = {"models": ("tiny",), "voices": ("speaker:Tiny Alice",), **FAST}
    long = tmp_path / "long.csv"
    long.write_text("id,text,language\nok,Hello there.,en\nlong," + "word " * 500 + ",en\n", encoding="utf-8")
    message = refused_before_any_work(eng, monkeypatch, EvalConfig(sentences=str(long), **base), "characters long")
    assert "Sentence 'long'" in message
    refused_before_any_work(
        eng, monkeypatch, EvalConfig(sentences="builtin:en", **{**base, "beam_size": 0}), "Beam size must be between"
    )
    refused_before_any_work(
        eng,
        monkeypatch,
        EvalConfig(sentences="builtin:en", **{**base, "generation": TTSOptions(temperature=5.0)}),
        "temperature must be",
    )
    # seed + repeat is each utterance's seed: the last repeat's must be valid too
    refused_before_any_work(
        eng, monkeypatch, EvalConfig(sentences="builtin:en", repeats=2, seed=2**32 - 1, **base), "seed must be"
    )
    # a dataset whose recording went missing: refused up front when ground truth is asked for
    folder = make_dataset(ev_settings.path("datasets_dir"), "lost", recordings[:2])
    (folder / "wavs" / "clip001.wav").unlink()
    message = refused_before_any_work(eng, monkeypatch, EvalConfig(sentences="dataset:lost", **base), "missing")
    assert "clip001.wav" in message and "ground_truth" in message
    assert eng.eval.plan(EvalConfig(sentences="dataset:lost", ground_truth=False, **base))[1]


# ---------------------------------------------------------------- checkpoint ranking


@pytest.mark.slow
def test_rank_checkpoints_and_export_best(request, tmp_path_factory, tiny_models):
    from test_training import get_trained_run

    from engines import Engines

    trained = get_trained_run(request, tmp_path_factory, tiny_models)
    assert trained["status"].status == "finished", trained["status"].log_tail
    eng = Engines.create(trained["settings"])
    run_id = trained["run_id"]
    checkpoints = eng.training.checkpoints(run_id)
    assert len(checkpoints) >= 2
    base = EvalConfig(sentences="builtin:en", max_sentences=2, voices=("speaker:Tiny Alice",), **FAST)
    final = eng.eval.rank_checkpoints(run_id, base)
    assert final.state == "done" and final.total == 2 * len(checkpoints)
    summary = final.summary
    assert summary["training_run"] == run_id and summary["tiny"] is True
    ranking = summary["ranking"]
    assert sorted(Path(e["checkpoint"]).name for e in ranking) == sorted(p.name for p in checkpoints)
    keys = [(e["error"], -(e["sim"] if e["sim"] is not None else -math.inf)) for e in ranking]
    assert keys == sorted(keys) and [e["rank"] for e in ranking] == list(range(1, len(ranking) + 1))
    cache = trained["settings"].workspace_dir / "cache" / "eval-checkpoints"
    assert len([p for p in cache.rglob("model.pth")]) == len(checkpoints)
    page = (final.folder / "report.html").read_text(encoding="utf-8")
    assert "Checkpoint ranking" in page

    # A second ranking reuses the exported folders instead of exporting again.
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("model.pth")}
    eng.eval.checkpoint_models(run_id)
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("model.pth")} == stamps

    folder = eng.eval.export_best(final.run_id, "best-of-run")
    assert folder == trained["settings"].workspace_dir / "models" / "best-of-run"
    exported = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    assert exported["checkpoint"] == Path(ranking[0]["checkpoint"]).name
    assert "best-of-run" in [mid for _, mid in eng.tts.list_models()]
    shutil.rmtree(folder)


def test_export_best_needs_a_ranking_run(eng, full_run):
    with pytest.raises(InputError, match="did not rank"):
        eng.eval.export_best(full_run["final"].run_id, "nope")
    with pytest.raises(InputError, match="no saved checkpoints|No training run|not found|Invalid run"):
        eng.eval.checkpoint_models("no-such-training-run")


def test_generation_settings_come_from_the_app_settings(ev_root, tiny_models):
    """A my_config / XTTSLAB_* generation override reaches the eval loop (UI and headless), not only the TTS tab."""
    from engines import Engines

    assert EvalConfig.from_dict({"sentences": "builtin:en"}, TTSOptions(temperature=0.6)).generation.temperature == 0.6
    flat = EvalConfig.from_dict({"sentences": "builtin:en", "top_k": 9}, TTSOptions(temperature=0.6))
    assert (flat.generation.temperature, flat.generation.top_k) == (0.6, 9)  # old flat keys still read
    nested = EvalConfig.from_dict({"sentences": "builtin:en", "generation": {"speed": 1.5}})
    assert nested.generation == TTSOptions(speed=1.5)
    with pytest.raises(InputError, match="temprature"):
        EvalConfig.from_dict({"sentences": "builtin:en", "generation": {"temprature": 1.0}})

    workspace = ev_root / "gen-settings"
    _link_tiny(workspace, tiny_models)
    settings = load_settings(
        {"workspace": workspace, "datasets_dir": ev_root / "datasets", "tiny_models": True, "device": "cpu"},
        env={"XTTSLAB_TEMPERATURE": "0.6", "XTTSLAB_MAX_AUDIO_TOKENS": str(TOKENS)},
    )
    config = EvalConfig(
        sentences="builtin:en", max_sentences=1, voices=("speaker:Tiny Alice",), ground_truth=False, bootstrap=200
    )
    final = Engines.create(settings).eval.run(config, run_id="gen-settings")
    used = json.loads((final.folder / "config.json").read_text(encoding="utf-8"))["config"]["generation"]
    assert (used["temperature"], used["max_audio_tokens"]) == (0.6, TOKENS)


# ---------------------------------------------------------------- background jobs (issue 10, point 7)


def job_config(name: str, n: int = 3) -> EvalConfig:
    """n sentences, one system, one utterance per batch (a batch is committed after every utterance)."""
    return EvalConfig(
        sentences="builtin:en",
        max_sentences=n,
        models=("tiny",),
        voices=("speaker:Tiny Bob",),
        asr_batch_size=1,
        ground_truth=False,
        name=name,
        **FAST,
    )


def first_state(job, predicate):
    """Watch ``job`` until a state satisfies ``predicate``, then stop watching (the job goes on)."""
    for state in job.watch():
        if predicate(state):
            return state
        assert not state.ended, f"the job ended first: {state}"
    raise AssertionError("the job ended before the state was seen")


def test_a_started_run_returns_at_once_and_finishes_with_nobody_watching(eng, monkeypatch):
    ev = eng.eval
    gate = gate_synthesis(eng.tts, monkeypatch, free=2)  # the warm-up and the first utterance
    job = ev.start(job_config("job"))
    assert job.run_id and ev.running == job.run_id and not job.ended  # returned while the run goes on
    assert ev.job is job
    state = first_state(job, lambda s: s.progress is not None and s.progress.done >= 1)
    assert state.state == "running" and state.progress.total == 3
    with pytest.raises(BusyError, match="already running"):
        ev.start(job_config("second"))
    listed = next(r for r in ev.list_runs() if r.run_id == job.run_id)
    assert listed.state == "running"  # a live job, not "interrupted"
    gate.set()
    final = job.wait(timeout=300)
    assert final.state == "done" and final.done == final.total == 3 and final.summary["complete"] is True
    status = json.loads((final.folder / "status.json").read_text())
    assert status["state"] == "done" and len(read_results(final.folder / "results.csv")) == 3
    assert ev.running is None and job.snapshot().ended and job.snapshot().state == "done"


def test_stop_ends_a_job_and_start_resume_finishes_it(eng, monkeypatch):
    ev = eng.eval
    gate = gate_synthesis(eng.tts, monkeypatch, free=2)
    job = ev.start(job_config("stopjob"))
    first_state(job, lambda s: s.progress is not None and s.progress.done >= 1)
    assert ev.stop() is True and job.snapshot().stopping
    gate.set()
    stopped = job.wait(timeout=300)
    assert stopped.state == "stopped" and 1 <= stopped.done < 3
    assert next(r for r in ev.list_runs() if r.run_id == job.run_id).state == "stopped"
    resumed = ev.start_resume(job.run_id)
    assert resumed.kind == "resume" and resumed.run_id == job.run_id
    final = resumed.wait(timeout=300)
    assert final.state == "done" and final.done == 3
    assert len({r["key"] for r in read_results(final.folder / "results.csv")}) == 3


def test_leaving_iter_run_early_marks_the_run_stopped(eng):
    ev = eng.eval
    updates = ev.iter_run(job_config("leave"))
    while (p := next(updates)).done < 1:
        continue
    updates.close()  # a script left its loop: the run is not "running" any more
    status = json.loads((p.folder / "status.json").read_text())
    assert status["state"] == "stopped" and "stopped reading" in status["message"] and status["done"] == 1
    assert next(r for r in ev.list_runs() if r.run_id == p.run_id).state == "stopped" and ev.running is None
    assert ev.resume(p.run_id).state == "done"


# ---------------------------------------------------------------- bad input before any folder (point 8)


def _reference(tmp_path: Path, kind: str) -> Path:
    """A 4 s reference clip with no voice in it."""
    sr = 22050
    t = np.arange(4 * sr) / sr
    rng = np.random.default_rng(3)
    audio = {
        "silence": np.zeros_like(t),
        "room tone": 10 ** (-65 / 20) * rng.standard_normal(t.size),
        "hiss": 10 ** (-25 / 20) * rng.standard_normal(t.size),
        "hum": 0.1 * np.sin(2 * np.pi * 50 * t),
        "dc offset": 0.3 + 1e-5 * rng.standard_normal(t.size),
    }[kind]
    path = tmp_path / f"{kind.replace(' ', '-')}.wav"
    sf.write(path, audio.astype(np.float32), sr, subtype="FLOAT")
    return path


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("silence", "is silent"),
        ("room tone", "is silent"),
        ("hiss", "holds no speech"),
        ("hum", "holds no speech"),
        ("dc offset", "constant offset"),
    ],
)
def test_a_reference_voice_without_speech_is_refused_before_any_folder(eng, monkeypatch, tmp_path, kind, match):
    ref = _reference(tmp_path, kind)
    config = EvalConfig(sentences="builtin:en", max_sentences=1, models=("tiny",), voices=(str(ref),), **FAST)
    message = refused_before_any_work(eng, monkeypatch, config, match)
    assert ref.name in message and "3-10 s of" in message  # which clip, and what to give instead
    with pytest.raises(AudioError, match=match):
        eng.eval.start(config)  # the page's path: refused before a job starts
    assert eng.eval.running is None


def test_a_saved_voice_with_a_silent_clip_and_a_long_sentence_are_refused_before_any_folder(
    eng, ev_settings, monkeypatch, tmp_path, voice_clip
):
    folder = ev_settings.workspace_dir / "voices" / "quiet"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(_reference(tmp_path, "silence"), folder / "take1.wav")  # copied in by hand, not through save_voice
    message = refused_before_any_work(
        eng, monkeypatch, EvalConfig(sentences="builtin:en", voices=("voice:quiet",), **FAST), "is silent"
    )
    assert "Saved voice 'quiet'" in message and "take1.wav" in message
    long = tmp_path / "long.csv"
    long.write_text("id,text,language\nok,Hello there.,en\nlong," + "word " * 500 + ",en\n", encoding="utf-8")
    with_clip = EvalConfig(sentences=str(long), models=("tiny",), voices=(str(voice_clip),), **FAST)
    assert "Sentence 'long'" in refused_before_any_work(eng, monkeypatch, with_clip, "characters long")


def test_a_failure_while_making_the_run_folder_leaves_no_folder(eng, monkeypatch):
    reports = eng.eval.reports_dir
    before = sorted(p.name for p in reports.iterdir())

    def broken(model):
        raise LabError("cannot read the ASR checkpoint (test)")

    monkeypatch.setattr(eng.eval.planner, "asr_weights", broken)  # read while the run is set up
    with pytest.raises(LabError, match="cannot read the ASR checkpoint"):
        eng.eval.start(job_config("debris"))
    assert sorted(p.name for p in reports.iterdir()) == before  # no half-made folder
    assert eng.eval.running is None


def test_a_run_failing_half_way_says_failed_with_the_message(eng, monkeypatch):
    ev = eng.eval
    real = eng.asr.transcribe_batch
    calls = {"n": 0}

    def falls_over(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise LabError("the ASR fell over (test)")
        return real(*args, **kwargs)

    monkeypatch.setattr(eng.asr, "transcribe_batch", falls_over)
    job = ev.start(job_config("fails"))
    with pytest.raises(LabError, match="fell over"):
        job.wait(timeout=300)
    state = job.snapshot()
    assert state.state == "failed" and "fell over" in state.error and state.ended
    folder = ev.run_dir(job.run_id)
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "failed" and "LabError: the ASR fell over (test)" == status["message"]
    assert status["done"] == 1 and len(read_results(folder / "results.csv")) == 1  # the finished row is kept
    listed = next(r for r in ev.list_runs() if r.run_id == job.run_id)
    assert listed.state == "failed" and "fell over" in listed.message
    assert ev.running is None
    monkeypatch.undo()
    assert ev.start_resume(job.run_id).wait(timeout=300).state == "done"  # and it can be finished


# ---------------------------------------------------------------- SIM reads the reference as synthesis does (point 10)


def test_sim_embeds_a_long_reference_as_its_trimmed_part_and_fast(eng, tmp_path):
    """A 3-minute reference: synthesis conditions on its first max_ref_len seconds, and so must SIM's
    embedding (the whole clip took ~20-35 s on this CPU, and risks running out of GPU memory)."""
    sr = 22050
    model = eng.tts.load("tiny")
    head_seconds = float(model.config.max_ref_len)
    rng = np.random.default_rng(10)
    t = np.arange(180 * sr) / sr
    tone = 0.2 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))  # a buzzing, pulsing voice
    audio = (tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    long, head = tmp_path / "long-ref.wav", tmp_path / "head.wav"
    sf.write(long, audio, sr, subtype="FLOAT")
    sf.write(head, audio[: int(head_seconds * sr)], sr, subtype="FLOAT")
    eng.tts.speaker_embedding(head, model_id="tiny")  # warm
    started = time.monotonic()
    from_long = eng.tts.speaker_embedding(long, model_id="tiny")
    seconds = time.monotonic() - started
    from_head = eng.tts.speaker_embedding(head, model_id="tiny")
    np.testing.assert_allclose(from_long, from_head, atol=1e-5)
    assert seconds < 10, f"{seconds:.1f} s for a 3-minute reference"
