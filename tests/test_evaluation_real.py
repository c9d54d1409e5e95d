"""The eval loop with the real Whisper tiny.en as its ASR (TTS stays the tiny random XTTS).

The ground-truth row (the 8 transcribed LJSpeech recordings through the real Whisper) is a real
measurement: a few percent WER. The TTS rows still rest on a random TTS, and every output says so per system.
Skipped where ../shared (the real model and clips) is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_evaluation import FAST, _csv_rows, check_report_agrees, make_dataset, refused_before_any_work

from engines.eval import GROUND_TRUTH, EvalConfig
from tests.eval_helpers import tiny_engines

pytestmark = pytest.mark.real

SYSTEM = "tiny / Tiny Alice"
MAX_GT_WER = 0.06  # tiny.en greedy measured 3.9 % corpus WER on these 8 clips (../shared/models/README.md)


@pytest.fixture(scope="module")
def eng(tmp_path_factory, tiny_models):
    return tiny_engines(tmp_path_factory.mktemp("eval-real"), tiny_models)


@pytest.fixture(scope="module")
def lj8(eng, shared_data) -> Path:
    """A dataset whose eval split is the 8 transcribed LJSpeech clips (their original text)."""
    root = shared_data / "ljspeech"
    lines = (root / "metadata.csv").read_text(encoding="utf-8").splitlines()[1:]
    cells = [line.split("|") for line in lines if line.strip()]  # split, not csv: the texts hold bare quotes
    clips = [(root / c[0], c[1].strip()) for c in cells if len(c) > 2 and c[2].strip()][:8]
    assert len(clips) == 8
    return make_dataset(eng.settings.path("datasets_dir"), "lj8", clips)


def _lj8_config(real_whisper: str, **changes) -> EvalConfig:
    """The tiny TTS over the lj8 set, scored by the real Whisper, greedy (what the 3.9 % was measured with)."""
    values = dict(sentences="dataset:lj8", models=("tiny",), voices=("speaker:Tiny Alice",), seed=3, name="real-asr")
    return EvalConfig(asr_model=real_whisper, **{**values, **FAST, **changes})


@pytest.fixture(scope="module")
def real_run(eng, lj8, real_whisper):
    return eng.eval.run(_lj8_config(real_whisper))


def test_ground_truth_through_the_real_whisper_scores_a_few_percent(real_run):
    assert real_run.state == "done" and real_run.done == real_run.total == 16
    rows = [r for r in _csv_rows(real_run.folder / "results.csv") if r["system"] == GROUND_TRUTH]
    assert len(rows) == 8
    errors = sum(int(r["word_errors"]) for r in rows)
    words = sum(int(r["ref_words"]) for r in rows)
    print(f"ground truth corpus WER {errors}/{words} = {errors / words:.2%}")
    assert errors / words <= MAX_GT_WER
    for r in rows:
        assert r["hyp_text"] and not r["asr_notice"]  # every recording decoded
        assert float(r["wer"]) <= 0.2, (r["sentence_id"], r["ref_norm"], r["hyp_norm"])
        assert r["flags"] == ""  # real recordings are neither cut off, looping, silent-tailed nor clipped
    summary = json.loads((real_run.folder / "summary.json").read_text(encoding="utf-8"))
    block = summary["systems"][GROUND_TRUTH]
    assert block["wer"]["corpus"]["value"] == pytest.approx(errors / words)
    assert block["wer"]["corpus"]["low"] <= errors / words <= block["wer"]["corpus"]["high"]
    assert block["cer"]["corpus"]["value"] <= block["wer"]["corpus"]["value"]  # one wrong letter, one wrong word


def test_report_summary_and_results_agree_on_every_number(real_run):
    summary = check_report_agrees(real_run.folder)
    assert list(summary["systems"]) == [GROUND_TRUTH, SYSTEM]


def test_each_system_says_which_of_its_models_were_random(real_run):
    folder = real_run.folder
    for r in _csv_rows(folder / "results.csv"):
        assert r["asr_weights"] == "real"  # the real tiny.en transcribed every row
        assert r["tts_weights"] == ("" if r["system"] == GROUND_TRUTH else "random")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["systems"][GROUND_TRUTH]["weights"] == {"tts": None, "asr": "real", "random": False}
    assert summary["systems"][SYSTEM]["weights"] == {"tts": "random", "asr": "real", "random": True}
    assert summary["random_systems"] == [SYSTEM] and summary["tiny"] is True  # some numbers are plumbing
    note = summary["note"]
    assert f"{SYSTEM} (TTS random · ASR real)" in note and "random TTS speaks noise" in note
    assert "random ASR" not in note and "plumbing" in note
    assert f"Real measurements (trained models only): {GROUND_TRUTH} (recordings · ASR real)" in note
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert 'id="tiny-note"' in page and "Real measurements" in page
    assert summary["provenance"]["asr_model"].endswith("whisper-tiny.en.pt")


def test_results_view_shows_the_models_per_system(eng, real_run):
    from pages.eval_common import progress_text
    from pages.eval_results import run_view

    summary_df, *_rest, info = run_view(eng, real_run.run_id)
    models = dict(zip(summary_df["system"], summary_df["models"]))
    assert models == {GROUND_TRUTH: "recordings · ASR real", SYSTEM: "TTS random · ASR real"}
    assert "Real measurements" in info and SYSTEM in info
    assert "Real measurements" in progress_text(real_run)


def test_english_only_model_refuses_russian_before_synthesis(eng, real_whisper, monkeypatch):
    config = EvalConfig(
        sentences="builtin:ru", models=("tiny",), voices=("speaker:Tiny Alice",), asr_model=real_whisper
    )
    message = refused_before_any_work(eng, monkeypatch, config, "English-only")
    assert "'whisper-tiny.en.pt'" in message and "Russian (ru)" in message and "ru-01" in message
    assert "multilingual Whisper model" in message
    assert eng.eval.asr_weights(real_whisper) == "real"


def test_packed_asr_scores_the_ground_truth_as_well_and_says_so(eng, lj8, real_whisper, real_run):
    """asr_pack: the 8 recordings share Whisper windows; the ground truth's WER stays a few percent, the rows
    lose at most a word each against the unpacked run, and the report names the protocol."""
    packed = eng.eval.run(_lj8_config(real_whisper, name="real-asr-packed", asr_pack=True))
    rows = {r["sentence_id"]: r for r in _csv_rows(packed.folder / "results.csv") if r["system"] == GROUND_TRUTH}
    alone = {r["sentence_id"]: r for r in _csv_rows(real_run.folder / "results.csv") if r["system"] == GROUND_TRUTH}
    assert len(rows) == 8
    errors = sum(int(r["word_errors"]) for r in rows.values())
    assert errors / sum(int(r["ref_words"]) for r in rows.values()) <= MAX_GT_WER
    for sid, row in rows.items():
        # no sentence loses more than a word to packing (it may gain: "woodcutters" was measured heard right)
        assert row["hyp_text"] and int(row["word_errors"]) <= int(alone[sid]["word_errors"]) + 1, sid
    summary = json.loads((packed.folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["config"]["asr_pack"] is True
    assert "packed into shared 30 s windows" in (packed.folder / "report.html").read_text(encoding="utf-8")
