"""Eval tab: the layout, and its callbacks called directly (errors become gr.Error), on the tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from config import load_settings
from engines import Engines
from engines.evaluation import GROUND_TRUTH, EvalConfig
from pages import eval as page

TOKENS = 8


@pytest.fixture(scope="module")
def eng(tmp_path_factory, tiny_models) -> Engines:
    root = tmp_path_factory.mktemp("eval-page")
    workspace = root / "workspace"
    (workspace / "tiny-models").mkdir(parents=True)
    for item in (tiny_models.xtts_dir, tiny_models.whisper_path):
        (workspace / "tiny-models" / item.name).symlink_to(item, target_is_directory=item.is_dir())
    settings = load_settings(
        {"workspace": workspace, "datasets_dir": root / "datasets", "tiny_models": True, "device": "cpu"}, env={}
    )
    return Engines.create(settings)


def ui_values(
    set_spec="builtin:en",
    upload=None,
    language="en",
    max_sentences=2,
    models=("tiny",),
    voices=("speaker:Tiny Alice", "speaker:Tiny Bob"),
    voice_files=None,
    repeats=1,
    seed=5,
    temperature=0.85,
    top_k=50,
    top_p=0.85,
    rep=2.0,
    length=1.0,
    speed=1.0,
    tokens=TOKENS,
    asr_model="tiny-random",
    beam=0,
    batch=8,
    ground_truth=True,
    name="page",
) -> dict:
    """The Run button's inputs, by the names the page's form gives them."""
    return {
        "set_spec": set_spec,
        "upload": upload,
        "language": language,
        "max_sentences": max_sentences,
        "models": list(models),
        "voices": list(voices),
        "voice_files": voice_files,
        "repeats": repeats,
        "seed": seed,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "repetition_penalty": rep,
        "length_penalty": length,
        "speed": speed,
        "max_audio_tokens": tokens,
        "asr_model": asr_model,
        "beam_size": beam,
        "batch_size": batch,
        "ground_truth": ground_truth,
        "name": name,
    }


def gr_error(call) -> str:
    with pytest.raises(gr.Error) as exc:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    return exc.value.message


@pytest.fixture(scope="module")
def page_run(eng):
    """The Run button's generator to the end: every update it streamed."""
    return list(page.run_callback(eng, ui_values()))


def test_layout_has_the_ids_the_browser_test_uses(eng):
    with gr.Blocks() as demo:
        page.build(eng)
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    for elem_id in (
        "ev-set",
        "ev-models",
        "ev-voice",
        "ev-run",
        "ev-stop",
        "ev-progress",
        "ev-summary",
        "ev-report-link",
        "ev-runs",
    ):
        assert elem_id in ids, elem_id
    fns = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
    assert fns["eval_run"].concurrency_id == "gpu" and fns["eval_run"].concurrency_limit == 1


def test_choices_list_sets_voices_and_upload(eng):
    specs = [spec for _, spec in page.set_choices(eng)]
    assert {"builtin:en", "builtin:en-hard", "builtin:ru", "builtin:zh-cn"} <= set(specs)
    assert specs[-1] == page.UPLOAD
    voices = [spec for _, spec in page.voice_choices(eng, ["tiny"])]
    assert voices == ["speaker:Tiny Alice", "speaker:Tiny Bob"]


def rank_values(training_run, set_spec="builtin:en", max_sentences=2, tokens=TOKENS) -> dict:
    """The Rank button's inputs, by the names the page's form gives them."""
    return {
        "training_run": training_run,
        "set_spec": set_spec,
        "upload": None,
        "language": "en",
        "max_sentences": max_sentences,
        "voices": ["speaker:Tiny Alice"],
        "voice_files": None,
        "max_audio_tokens": tokens,
        "asr_model": None,
        "beam_size": 0,
        "include_base": False,
    }


def test_build_config_maps_ui_values(eng, tmp_path):
    cfg = page.build_config(ui_values(voice_files=[str(tmp_path / "me.wav")], tokens=0, beam=5, max_sentences=0))
    assert isinstance(cfg, EvalConfig)
    assert cfg.voices == ("speaker:Tiny Alice", "speaker:Tiny Bob", str(tmp_path / "me.wav"))
    assert cfg.generation.max_audio_tokens is None and cfg.beam_size == 5 and cfg.max_sentences is None
    assert cfg.models == ("tiny",) and cfg.seed == 5 and cfg.asr_model == "tiny-random"
    up = tmp_path / "mine.txt"
    up.write_text("One sentence.\n", encoding="utf-8")
    assert page.build_config(ui_values(set_spec=page.UPLOAD, upload=str(up))).sentences == str(up)
    with pytest.raises(Exception, match="Upload a CSV"):
        page.build_config(ui_values(set_spec=page.UPLOAD))
    with pytest.raises(Exception, match="at least one reference voice"):
        page.build_config(ui_values(voices=()))


def test_run_streams_progress_and_ends_with_summary_and_link(eng, page_run):
    assert len(page_run) >= 3  # a start, one per batch, the end
    progress, table, link, files = page_run[-1]
    assert "Finished" in progress and "4/4 utterances" in progress
    assert "plumbing" in progress  # tiny models: the numbers measure plumbing, not quality
    assert "tiny / Tiny Alice (TTS random · ASR random)" in progress
    assert isinstance(table, pd.DataFrame) and set(table["system"]) == {"tiny / Tiny Alice", "tiny / Tiny Bob"}
    assert "gradio_api/file=" in link and "report.html" in link
    assert sorted(Path(f).name for f in files) == ["report.html", "results.csv", "summary.json"]
    summary = json.loads(Path(next(f for f in files if f.endswith("summary.json"))).read_text())
    for _, row in table.iterrows():
        corpus = summary["systems"][row["system"]]["wer"]["corpus"]["value"]
        assert row["WER (corpus)"].startswith(f"{corpus * 100:.1f}%")


def test_errors_reach_the_user_as_messages(eng, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,words\n1,hello\n", encoding="utf-8")
    assert "no 'text' column" in gr_error(
        lambda: page.run_callback(eng, ui_values(set_spec=page.UPLOAD, upload=str(bad)))
    )
    assert "not found" in gr_error(lambda: page.run_callback(eng, ui_values(models=("missing-model",))))
    assert "Pick a training run" in gr_error(lambda: page.rank_callback(eng, rank_values(None)))
    assert "Pick two runs" in gr_error(lambda: page.compare_callback(eng, None, None))
    assert page.stop_callback(eng) == "Nothing is running."


def test_results_view_and_alignment(eng, page_run):
    run_id = page.run_choices(eng)[0][1]
    s, by_lang, by_len, paired, link, files, utts, info = page.run_view_callback(eng, run_id)
    assert set(s["system"]) == {"tiny / Tiny Alice", "tiny / Tiny Bob"} and len(paired) == 1
    assert set(by_lang["group"]) == {"en"} and run_id in info and "report.html" in link
    # tiny mode: which models each system's numbers rest on, per system and in the note
    assert set(s["models"]) == {"TTS random · ASR random"}
    assert "plumbing" in info and all(name in info for name in s["system"])
    keys = [c[1] for c in utts.choices]
    assert len(keys) == 4
    body, audio = page.utterance_callback(eng, run_id, keys[0])
    assert 'class="align"' in body and "REF:" in body and Path(audio).is_file()


def test_compare_and_paired_callbacks(eng, page_run):
    run_id = page.run_choices(eng)[0][1]
    table = page.compare_callback(eng, run_id, run_id)
    assert list(table["A WER"]) == list(table["B WER"])
    a, b = page.systems_callback(eng, run_id)
    names = [a.value, b.value]
    assert GROUND_TRUTH not in names and len(set(names)) == 2
    paired = page.paired_callback(eng, run_id, *names)
    assert len(paired) == 1 and paired.iloc[0]["sentences"] == 2
    assert "two different" in gr_error(lambda: page.paired_callback(eng, run_id, names[0], names[0]))


def test_listening_test_callbacks(eng, page_run):
    run_id = page.run_choices(eng)[0][1]
    state, text, clip1, clip2, pos, summary = page.start_listening_callback(
        eng, run_id, "tiny / Tiny Alice", "tiny / Tiny Bob", "ab+mos", 5
    )
    assert state["index"] == 0 and "Trial 1 of 2" in pos and "Sentence" in text
    assert Path(clip1).is_file() and Path(clip2).is_file() and clip1 != clip2
    assert "better" in gr_error(lambda: page.answer_callback(eng, state, None, 3, 3))
    state, *_ = page.answer_callback(eng, state, "Clip 1", 5, 2)
    state, text, clip1, clip2, pos, summary, pref = page.answer_callback(eng, state, "About the same", 3, 3)
    assert "Done" in text and clip1 is None and pref is None
    assert "2 of 2 trials answered" in summary and "MOS" in summary and "tiny / Tiny Alice" in summary
    assert "finished" in gr_error(lambda: page.answer_callback(eng, state, "Clip 1", 3, 3))


def test_opening_results_shows_the_newest_run(eng, page_run):
    dropdown, summary, *_rest, info = page.open_results_callback(eng, None)
    newest = page.run_choices(eng)[0][1]
    assert dropdown.value == newest and newest in info and len(summary) == 2


@pytest.mark.slow
def test_rank_checkpoints_from_the_tab_and_export_best(request, tmp_path_factory, tiny_models):
    from test_training import get_trained_run

    trained = get_trained_run(request, tmp_path_factory, tiny_models)
    eng = Engines.create(trained["settings"])
    run_id = trained["run_id"]
    assert [v for _, v in page.training_run_choices(eng)] == [run_id]
    updates = list(page.rank_callback(eng, rank_values(run_id, max_sentences=1)))
    progress, table, plot, link, eval_run = updates[-1]
    assert "Finished" in progress and "report.html" in link and "<img" in plot
    assert len(table) == len(eng.training.checkpoints(run_id)) and list(table["rank"]) == list(range(1, len(table) + 1))
    message = page.export_best_callback(eng, eval_run, "tab-best")
    folder = trained["settings"].workspace_dir / "models" / "tab-best"
    assert str(folder) in message and (folder / "model.pth").is_file()
    best = json.loads((folder / "export.json").read_text(encoding="utf-8"))["checkpoint"]
    assert best == table.iloc[0]["checkpoint"]
    assert "Rank the checkpoints" in gr_error(lambda: page.export_best_callback(eng, None, "x"))
