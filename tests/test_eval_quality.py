"""Eval's audio-only metrics (SIM from an independent verifier, predicted MOS) and systems that are folders of
audio made elsewhere, through the headless engine.

Resemblyzer and DNSMOS are real models (their weights ship in the wheels), so the plumbing tests here run on a
fresh clone; the numbers that speak about quality (a Piper folder's WER, SIM of real recordings) need the real
Whisper and LJSpeech in ../shared and are marked ``real``.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_evaluation import ESPEAK_SENTENCES, FAST, make_dataset, refused_before_any_work

from engines.core.options import TTSOptions
from engines.eval import GROUND_TRUTH, EvalConfig, read_results
from engines.eval.results import FILE_COLUMNS, MOS_COLUMNS, TIMING_COLUMNS
from tests.eval_helpers import tiny_engines

DNSMOS = ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")


def _empty(value) -> bool:
    """An empty results.csv cell read back (floats come back as NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


@pytest.fixture(scope="module")
def eng(tmp_path_factory, tiny_models):
    return tiny_engines(tmp_path_factory.mktemp("eval-quality"), tiny_models)


@pytest.fixture(scope="module")
def spoken(eng, speak) -> list[tuple[Path, str, str]]:
    """(wav, text, id) of three espeak-ng recordings: known text, robotic voice (plumbing only)."""
    return [(speak(text, "en", name=f"q-{sid}"), text, sid) for text, sid in ESPEAK_SENTENCES]


@pytest.fixture(scope="module")
def dataset(eng, spoken) -> str:
    make_dataset(eng.settings.path("datasets_dir"), "q3", [(p, t) for p, t, _ in spoken])
    return "dataset:q3"


@pytest.fixture(scope="module")
def voice(speak) -> Path:
    return speak(
        "Printing, in the only sense with which we are at present concerned, differs from most arts.", name="q-ref"
    )


# ~1.8 s of tiny-model audio: SIM and MOS need at least 0.5 s (8 tokens, the other eval tests' cap, give 0.36 s)
LONGER = {**FAST, "generation": TTSOptions(max_audio_tokens=40)}


def _config(dataset: str, voice: Path, **kw) -> EvalConfig:
    base = {"sentences": dataset, "models": ("tiny",), "voices": (str(voice),), "seed": 11, **LONGER}
    return EvalConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def run(eng, dataset, voice):
    return eng.eval.run(_config(dataset, voice, sim_encoder="resemblyzer", mos=("dnsmos", "utmos")), run_id="q-run")


def _summary(final) -> dict:
    return json.loads((final.folder / "summary.json").read_text(encoding="utf-8"))


def test_every_row_has_sim_from_the_chosen_encoder_and_dnsmos(run):
    rows = read_results(run.folder / "results.csv")
    assert {r["system"] for r in rows} == {GROUND_TRUTH, "tiny / q-ref"}
    for r in rows:
        assert r["sim_encoder"] == "resemblyzer", r
        assert r["sim_reference"] == "file:q-ref.wav"
        assert -1.0 <= r["sim"] <= 1.0
        for name in DNSMOS:
            assert 1.0 <= r[name] <= 5.0, (name, r[name])
    # espeak recordings vs an espeak reference (one synthetic speaker) against random-weight noise
    gt = np.mean([r["sim"] for r in rows if r["system"] == GROUND_TRUTH])
    tts = np.mean([r["sim"] for r in rows if r["system"] != GROUND_TRUTH])
    assert gt > tts + 0.1, (gt, tts)
    # noise from a random model is not clean speech
    gt_ovrl = np.mean([r["dnsmos_ovrl"] for r in rows if r["system"] == GROUND_TRUTH])
    tts_ovrl = np.mean([r["dnsmos_ovrl"] for r in rows if r["system"] != GROUND_TRUTH])
    assert gt_ovrl > tts_ovrl, (gt_ovrl, tts_ovrl)


def test_summary_has_each_metric_with_its_model_and_cis(run):
    summary = _summary(run)
    rows = read_results(run.folder / "results.csv")
    models = summary["metrics"]
    assert models["sim"]["id"] == "resemblyzer" and models["sim"]["independent"] is True
    assert len(models["sim"]["sha256"]) == 64 and models["sim"]["version"]
    assert models["mos"]["dnsmos"]["available"] is True and len(models["mos"]["dnsmos"]["sha256"]) == 64
    assert models["asr"]["model"] and len(models["asr"]["sha256"]) == 64
    for name, block in summary["systems"].items():
        mine = [r for r in rows if r["system"] == name]
        for col in ("dnsmos_ovrl", "dnsmos_p808"):
            est = block[col]["mean"]
            assert est["value"] == pytest.approx(np.mean([r[col] for r in mine]), abs=1e-5)
            assert est["low"] <= est["value"] <= est["high"]
        assert block["sim"]["encoders"] == ["resemblyzer"]
        for lang_block in block["by_language"].values():
            assert "dnsmos_ovrl" in lang_block and "sim" in lang_block


def test_utmos_without_weights_is_not_available_never_a_number(run, eng):
    if eng.mos.available("utmos") is None:
        pytest.skip("UTMOS weights are present on this machine")
    rows = read_results(run.folder / "results.csv")
    assert all(_empty(r["utmos"]) for r in rows)
    info = _summary(run)["metrics"]["mos"]["utmos"]
    assert info["available"] is False and info["reason"]
    html = (run.folder / "report.html").read_text(encoding="utf-8")
    assert "UTMOS: not available" in html


def test_report_explains_each_metric_and_names_its_model(run):
    html = (run.folder / "report.html").read_text(encoding="utf-8")
    assert 'id="metrics-legend"' in html or "id='metrics-legend'" in html
    assert "independent speaker verifier" in html and "BAK saturates" in html
    assert "SIM computed by" in html and "DNSMOS computed by" in html and "WER/CER computed by" in html
    summary = _summary(run)
    assert summary["metrics"]["sim"]["sha256"] in html


def test_timings_live_beside_results_and_read_back_together(run):
    with open(run.folder / "results.csv", newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == FILE_COLUMNS and not set(TIMING_COLUMNS) & set(header)
    with open(run.folder / "timings.csv", newline="", encoding="utf-8") as fh:
        timings = {t["key"]: t for t in csv.DictReader(fh)}
    rows = read_results(run.folder / "results.csv")
    assert set(timings) == {r["key"] for r in rows}
    for r in rows:
        if r["system"] != GROUND_TRUTH:
            assert r["gen_seconds"] > 0 and r["rtf"] == pytest.approx(r["gen_seconds"] / r["audio_seconds"], rel=1e-3)
        assert r["asr_seconds"] > 0


def test_same_config_and_seed_give_a_byte_identical_results_csv(eng, dataset, voice, run):
    config = _config(dataset, voice, sim_encoder="resemblyzer", mos=("dnsmos", "utmos"))
    again = eng.eval.run(config, run_id="q-run-again")
    assert (again.folder / "results.csv").read_bytes() == (run.folder / "results.csv").read_bytes()
    assert (again.folder / "timings.csv").read_bytes() != (run.folder / "timings.csv").read_bytes()


def test_a_config_read_back_keeps_its_seed_language_and_metrics():
    # config.json -> EvalConfig is how resume, rebuild and Ray workers reopen a run: nothing may fall back to defaults
    config = EvalConfig(
        sentences="builtin:en", seed=5, language="de", sim_encoder="xtts", mos=("dnsmos",), executor="ray", **LONGER
    )
    back = EvalConfig.from_dict(json.loads(json.dumps(config.to_dict())), TTSOptions())
    assert back == config
    assert EvalConfig.from_dict({"sentences": "builtin:en", "seed": 9, "temperature": 0.5}).seed == 9


def test_xtts_encoder_is_recorded_as_self_similarity(eng, dataset, voice):
    final = eng.eval.run(_config(dataset, voice, sim_encoder="xtts", mos=(), max_sentences=1), run_id="q-xtts")
    rows = read_results(final.folder / "results.csv")
    assert rows and all(r["sim_encoder"] == "xtts" and not _empty(r["sim"]) for r in rows)
    assert all(_empty(r[m]) for r in rows for m in MOS_COLUMNS)
    summary = _summary(final)
    assert summary["metrics"]["sim"]["independent"] is False
    assert "self-similarity" in (final.folder / "report.html").read_text(encoding="utf-8")


def test_runs_with_different_encoders_are_not_compared_on_sim(eng, dataset, voice, run):
    other = eng.eval.run(_config(dataset, voice, sim_encoder="xtts", mos=()), run_id="q-xtts-all")
    rows = eng.eval.compare_runs(run.run_id, other.run_id)
    assert rows and all(r["A SIM"] is None and r["B SIM"] is None for r in rows)
    assert all("resemblyzer" in r["note"] and "xtts" in r["note"] for r in rows)
    same = eng.eval.compare_runs(run.run_id, "q-run-again")
    assert all(r["A SIM"] is not None and r["note"] == "" for r in same)


def test_unknown_encoder_or_predictor_is_refused_before_any_work(eng, dataset, voice, monkeypatch):
    message = refused_before_any_work(eng, monkeypatch, _config(dataset, voice, sim_encoder="ecapa-magic"), "ecapa")
    assert "resemblyzer" in message  # names what is known
    message = refused_before_any_work(eng, monkeypatch, _config(dataset, voice, mos=("pesq",)), "pesq")
    assert "dnsmos" in message


def test_sim_off_leaves_the_columns_empty(eng, dataset, voice):
    final = eng.eval.run(_config(dataset, voice, sim_encoder="none", mos=(), max_sentences=1), run_id="q-off")
    rows = read_results(final.folder / "results.csv")
    assert rows and all(_empty(r["sim"]) and r["sim_encoder"] == "" for r in rows)
    assert _summary(final)["metrics"]["sim"] is None


# ---------------------------------------------------------------- systems that are folders of audio


def _folder_of(tmp_path: Path, spoken, take: int, extra: bool = True, reference: Path | None = None) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    for i, (wav, _text, _sid) in enumerate(spoken[:take]):
        shutil.copy(wav, folder / f"clip{i:03d}.wav")  # make_dataset names the sentences clip000, clip001, ...
    if extra:
        shutil.copy(spoken[0][0], folder / "not-a-sentence.wav")
    if reference is not None:
        shutil.copy(reference, folder / "reference.wav")
    return folder


def test_an_audio_folder_is_scored_beside_a_tts_system(eng, dataset, voice, spoken, tmp_path):
    folder = _folder_of(tmp_path, spoken, take=2, reference=voice)
    final = eng.eval.run(
        _config(dataset, voice, models=("tiny", f"audio:{folder}"), sim_encoder="resemblyzer", mos=("dnsmos",)),
        run_id="q-folder",
    )
    rows = read_results(final.folder / "results.csv")
    mine = [r for r in rows if r["system"] == "elsewhere (audio)"]
    assert sorted(r["sentence_id"] for r in mine) == ["clip000", "clip001"]
    for r in mine:
        assert _empty(r["rtf"]) and _empty(r["gen_seconds"]) and r["tts_weights"] == "external"
        assert not _empty(r["sim"]) and not _empty(r["dnsmos_ovrl"])
        assert (final.folder / r["audio_file"]).is_file()
    summary = _summary(final)
    listed = summary["audio_folders"]["elsewhere (audio)"]
    assert listed["missing"] == ["clip002"] and listed["extra"] == ["not-a-sentence.wav"]
    assert summary["systems"]["elsewhere (audio)"]["rtf"]["mean"]["value"] is None
    assert summary["systems"]["elsewhere (audio)"]["weights"]["tts"] == "external"
    html = (final.folder / "report.html").read_text(encoding="utf-8")
    assert "audio-folders-table" in html and "not-a-sentence.wav" in html
    # the same recordings as the ground truth: the same transcripts
    gt = {r["sentence_id"]: r["hyp_text"] for r in rows if r["system"] == GROUND_TRUTH}
    assert all(r["hyp_text"] == gt[r["sentence_id"]] for r in mine)


def test_audio_folders_alone_need_no_voice_and_no_tts(eng, dataset, spoken, tmp_path):
    folder = _folder_of(tmp_path, spoken, take=3, extra=False)
    final = eng.eval.run(
        EvalConfig(sentences=dataset, models=(f"audio:{folder}",), sim_encoder="resemblyzer", mos=(), **FAST),
        run_id="q-folder-only",
    )
    rows = [r for r in read_results(final.folder / "results.csv") if r["system"] != GROUND_TRUTH]
    assert len(rows) == 3 and all(_empty(r["sim"]) for r in rows)  # no reference.<ext>: no SIM


def test_a_folder_matching_no_sentence_is_refused_before_any_work(eng, dataset, voice, tmp_path, monkeypatch):
    folder = tmp_path / "wrong"
    folder.mkdir()
    sf.write(folder / "hello.wav", np.zeros(16000, np.float32), 16000)
    config = _config(dataset, voice, models=("tiny", f"audio:{folder}"))
    message = refused_before_any_work(eng, monkeypatch, config, "is named by a sentence id")
    assert "clip000" in message  # shows how a file should be named
    refused_before_any_work(
        eng, monkeypatch, _config(dataset, voice, models=(f"audio:{tmp_path / 'absent'}",)), "not found"
    )


# ---------------------------------------------------------------- real: Piper renders a set into a folder


@pytest.mark.real
@pytest.mark.slow
def test_piper_folder_through_the_real_whisper_scores_a_few_percent(
    eng, shared_data, real_whisper, piper_say, tmp_path
):
    root = shared_data / "ljspeech"
    lines = (root / "metadata.csv").read_text(encoding="utf-8").splitlines()[1:]
    cells = [line.split("|") for line in lines if line.strip()]
    clips = [(root / c[0], c[2].strip() or c[1].strip()) for c in cells if len(c) > 2 and c[2].strip()][:4]
    make_dataset(eng.settings.path("datasets_dir"), "lj-piper", clips)
    sentence_set, _ = eng.eval.plan(EvalConfig(sentences="dataset:lj-piper", voices=(str(clips[0][0]),)))
    folder = tmp_path / "piper"
    folder.mkdir()
    for s in sentence_set.sentences:
        shutil.copy(piper_say([s.text], name=f"p-{s.id}"), folder / f"{s.id}.wav")
    reference = clips[-1][0]  # an LJSpeech clip: the voice of the recordings, and the one Piper's folder imitates
    shutil.copy(reference, folder / "reference.wav")
    final = eng.eval.run(
        EvalConfig(
            sentences="dataset:lj-piper",
            models=("tiny", f"audio:{folder}"),
            voices=(str(reference),),
            asr_model=real_whisper,
            sim_encoder="resemblyzer",
            mos=("dnsmos",),
            **FAST,
        ),
        run_id="q-piper",
    )
    summary = _summary(final)
    piper = summary["systems"]["piper (audio)"]
    assert piper["n"] == 4 and piper["wer"]["corpus"]["value"] < 0.10, piper["wer"]
    gt = summary["systems"][GROUND_TRUTH]
    # SIM against an LJSpeech reference: her own recordings beat another speaker (Piper's joe)
    assert gt["sim"]["mean"]["value"] > piper["sim"]["mean"]["value"] + 0.05
    assert math.isfinite(piper["dnsmos_ovrl"]["mean"]["value"])
    rows = read_results(final.folder / "results.csv")
    assert all(r["sim_encoder"] == "resemblyzer" for r in rows if not _empty(r["sim"]))
