"""Eval tab: the layout, and its callbacks called directly (errors become gr.Error), on the tiny models."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from config import load_settings
from engines import Engines
from engines.core.errors import LabError
from engines.eval import GROUND_TRUTH, EvalConfig, read_results
from pages import eval as page
from pages import eval_checkpoints, eval_common, eval_compare, eval_listening, eval_results, eval_run
from tests.eval_helpers import gate_synthesis

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
    return list(eval_run.run_callback(eng, ui_values()))


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
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility != "private"}
    assert public == {"eval_run", "eval_stop", "eval_resume", "eval_rank_checkpoints"}
    for name in ("eval_resume", "eval_rank_checkpoints"):
        assert fns[name].concurrency_id == "gpu" and fns[name].concurrency_limit == 1


def test_events_across_sub_tabs_are_wired(eng):
    with gr.Blocks() as demo:
        page.build(eng)
    fns = list(demo.fns.values())
    run = next(fn for fn in fns if fn.api_name == "eval_run")
    after_run = [fn for fn in fns if fn.trigger_after == run._id]
    assert [[b.elem_id for b in fn.outputs] for fn in after_run] == [["ev-runs"]]  # a finished run is listed
    pickers = ["ev-cmp-a", "ev-cmp-b", "ev-pair-run", "ev-ls-run"]
    focused = {
        demo.blocks[block_id].elem_id: [b.elem_id for b in fn.outputs]
        for fn in fns
        for block_id, event in fn.targets
        if event == "focus"
    }
    assert focused == {"ev-cmp-a": pickers, "ev-pair-run": pickers, "ev-ls-run": pickers}
    ck = next(fn for fn in fns if fn.api_name == "eval_rank_checkpoints")
    shared = {"ev-language", "ev-max-tokens", "ev-asr-model", "ev-beam"}  # the Run sub-tab's settings
    assert shared <= {b.elem_id for b in ck.inputs}


def test_choices_list_sets_voices_and_upload(eng):
    specs = [spec for _, spec in eval_common.set_choices(eng)]
    assert {"builtin:en", "builtin:en-hard", "builtin:ru", "builtin:zh-cn"} <= set(specs)
    assert specs[-1] == eval_common.UPLOAD
    voices = [spec for _, spec in eval_common.voice_choices(eng, ["tiny"])]
    assert voices == ["speaker:Tiny Alice", "speaker:Tiny Bob"]
    picker = eval_run.voices_callback(eng, ["tiny"], ["speaker:Tiny Bob"])  # choosing models keeps the voices
    assert [spec for _, spec in picker.choices] == voices and picker.value == ["speaker:Tiny Bob"]


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
    cfg = eval_common.build_config(ui_values(voice_files=[str(tmp_path / "me.wav")], tokens=0, beam=5, max_sentences=0))
    assert isinstance(cfg, EvalConfig)
    assert cfg.voices == ("speaker:Tiny Alice", "speaker:Tiny Bob", str(tmp_path / "me.wav"))
    assert cfg.generation.max_audio_tokens is None and cfg.beam_size == 5 and cfg.max_sentences is None
    assert cfg.models == ("tiny",) and cfg.seed == 5 and cfg.asr_model == "tiny-random"
    up = tmp_path / "mine.txt"
    up.write_text("One sentence.\n", encoding="utf-8")
    assert eval_common.build_config(ui_values(set_spec=eval_common.UPLOAD, upload=str(up))).sentences == str(up)
    with pytest.raises(Exception, match="Upload a CSV"):
        eval_common.build_config(ui_values(set_spec=eval_common.UPLOAD))
    with pytest.raises(Exception, match="at least one reference voice"):
        eval_common.build_config(ui_values(voices=()))


def test_run_streams_progress_and_ends_with_summary_and_link(eng, page_run):
    assert len(page_run) >= 3  # a start, one per batch, the end
    progress, table, link, files = page_run[-1]
    assert "Finished" in progress and "4/4 utterances" in progress
    assert "plumbing" in progress  # tiny models: the numbers measure plumbing, not quality
    assert "tiny / Tiny Alice (TTS random · ASR random)" in progress
    assert isinstance(table, pd.DataFrame) and set(table["system"]) == {"tiny / Tiny Alice", "tiny / Tiny Bob"}
    assert "gradio_api/file=" in link and "report.html" in link
    assert sorted(Path(f).name for f in files) == ["report.html", "results.csv", "summary.json", "timings.csv"]
    summary = json.loads(Path(next(f for f in files if f.endswith("summary.json"))).read_text())
    for _, row in table.iterrows():
        corpus = summary["systems"][row["system"]]["wer"]["corpus"]["value"]
        assert row["WER (corpus)"].startswith(f"{corpus * 100:.1f}%")


def test_errors_reach_the_user_as_messages(eng, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,words\n1,hello\n", encoding="utf-8")
    assert "no 'text' column" in gr_error(
        lambda: eval_run.run_callback(eng, ui_values(set_spec=eval_common.UPLOAD, upload=str(bad)))
    )
    assert "Unknown TTS model" in gr_error(lambda: eval_run.run_callback(eng, ui_values(models=("missing-model",))))
    assert "Pick a training run" in gr_error(lambda: eval_checkpoints.rank_callback(eng, rank_values(None)))
    assert "Pick two runs" in gr_error(lambda: eval_compare.compare_callback(eng, None, None))
    assert eval_run.stop_callback(eng) == "Nothing is running."


def test_results_view_and_alignment(eng, page_run):
    run_id = eval_common.run_choices(eng)[0][1]
    s, by_lang, by_len, paired, link, files, utts, info = eval_results.run_view_callback(eng, run_id)
    assert set(s["system"]) == {"tiny / Tiny Alice", "tiny / Tiny Bob"} and len(paired) == 1
    assert set(by_lang["group"]) == {"en"} and run_id in info and "report.html" in link
    # tiny mode: which models each system's numbers rest on, per system and in the note
    assert set(s["models"]) == {"TTS random · ASR random"}
    assert "plumbing" in info and all(name in info for name in s["system"])
    keys = [c[1] for c in utts.choices]
    assert len(keys) == 4
    body, audio = eval_results.utterance_callback(eng, run_id, keys[0])
    assert 'class="align"' in body and "REF:" in body and Path(audio).is_file()


def test_compare_and_paired_callbacks(eng, page_run):
    run_id = eval_common.run_choices(eng)[0][1]
    table = eval_compare.compare_callback(eng, run_id, run_id)
    assert list(table["A WER"]) == list(table["B WER"])
    a, b = eval_common.systems_callback(eng, run_id)
    names = [a.value, b.value]
    assert GROUND_TRUTH not in names and len(set(names)) == 2
    paired = eval_compare.paired_callback(eng, run_id, *names)
    assert len(paired) == 1 and paired.iloc[0]["sentences"] == 2
    assert "two different" in gr_error(lambda: eval_compare.paired_callback(eng, run_id, names[0], names[0]))


def answer(state, preference, mos1, mos2) -> dict:
    """The Submit button's inputs, by the names the page's form gives them."""
    return {"state": state, "preference": preference, "mos1": mos1, "mos2": mos2}


def test_listening_test_callbacks(eng, page_run):
    run_id = eval_common.run_choices(eng)[0][1]
    start = {
        "run_id": run_id,
        "system_a": "tiny / Tiny Alice",
        "system_b": "tiny / Tiny Bob",
        "mode": "ab+mos",
        "max_items": 5,
    }
    state, text, clip1, clip2, pos, summary = eval_listening.start_listening_callback(eng, start)
    assert state["index"] == 0 and "Trial 1 of 2" in pos and "Sentence" in text
    assert Path(clip1).is_file() and Path(clip2).is_file() and clip1 != clip2
    assert "better" in gr_error(lambda: eval_listening.answer_callback(eng, answer(state, None, 3, 3)))
    state, *_ = eval_listening.answer_callback(eng, answer(state, "Clip 1", 5, 2))
    state, text, clip1, clip2, pos, summary, pref = eval_listening.answer_callback(
        eng, answer(state, "About the same", 3, 3)
    )
    assert "Done" in text and clip1 is None and pref is None
    assert "2 of 2 trials answered" in summary and "MOS" in summary and "tiny / Tiny Alice" in summary
    assert "finished" in gr_error(lambda: eval_listening.answer_callback(eng, answer(state, "Clip 1", 3, 3)))


def test_opening_results_shows_the_newest_run(eng, page_run):
    dropdown, summary, *_rest, info = eval_results.open_results_callback(eng, None)
    newest = eval_common.run_choices(eng)[0][1]
    assert dropdown.value == newest and newest in info and len(summary) == 2


@pytest.mark.slow
def test_rank_checkpoints_from_the_tab_and_export_best(request, tmp_path_factory, tiny_models):
    from test_training import get_trained_run

    trained = get_trained_run(request, tmp_path_factory, tiny_models)
    eng = Engines.create(trained["settings"])
    run_id = trained["run_id"]
    assert [v for _, v in eval_checkpoints.training_run_choices(eng)] == [run_id]
    updates = list(eval_checkpoints.rank_callback(eng, rank_values(run_id, max_sentences=1)))
    progress, table, plot, link, ranking_run = updates[-1]
    assert "Finished" in progress and "report.html" in link and "<img" in plot
    assert len(table) == len(eng.training.checkpoints(run_id)) and list(table["rank"]) == list(range(1, len(table) + 1))
    message = eval_checkpoints.export_best_callback(eng, ranking_run, "tab-best")
    folder = trained["settings"].workspace_dir / "models" / "tab-best"
    assert str(folder) in message and (folder / "model.pth").is_file()
    best = json.loads((folder / "export.json").read_text(encoding="utf-8"))["checkpoint"]
    assert best == table.iloc[0]["checkpoint"]
    assert "Rank the checkpoints" in gr_error(lambda: eval_checkpoints.export_best_callback(eng, None, "x"))


def test_closing_the_page_leaves_the_run_running_and_a_reload_attaches(eng, monkeypatch):
    """Issue 10 point 7: the Run button starts a job and only watches it; dropping the watcher (the tab
    closed) leaves the run going, and the page's load event watches it again."""
    gate = gate_synthesis(eng.tts, monkeypatch, free=2)  # the warm-up and the first utterance, then hold
    values = ui_values(max_sentences=3, voices=("speaker:Tiny Bob",), batch=1, name="outlives")
    watcher = eval_run.run_callback(eng, values)
    for text, *_ in watcher:
        if "1/3 utterances" in text:
            break
    assert "Running" in text
    watcher.close()  # the browser tab went away
    run_id = eng.eval.running
    assert run_id and run_id in text and not eng.eval.job.ended  # still running, nobody watching

    reload = eval_run.attach_callback(eng)  # the page opened again
    text, *_ = next(reload)
    assert "Running" in text and run_id in text and "1/3 utterances" in text
    gate.set()
    updates = list(reload)
    text, table, link, files = updates[-1]
    assert "Finished" in text and "3/3 utterances" in text and run_id in text
    assert (
        list(table["system"]) == ["tiny / Tiny Bob"] and "report.html" in link and len(files) == 4
    )  # report, results, timings, summary
    folder = eng.eval.run_dir(run_id)
    assert json.loads((folder / "status.json").read_text())["state"] == "done"
    assert len(read_results(folder / "results.csv")) == 3

    again = list(eval_run.attach_callback(eng))  # a later load shows how it ended, once
    assert len(again) == 1 and "Finished" in again[0][0] and run_id in again[0][0]


def test_a_page_load_with_no_job_changes_nothing(eng):
    fresh = Engines.create(eng.settings)  # an app that has run nothing yet
    (updates,) = list(eval_run.attach_callback(fresh))
    assert all(u == gr.update() for u in updates)


def test_the_page_load_watches_the_job_without_the_gpu_slot(eng):
    with gr.Blocks() as demo:
        page.build(eng)
    loads = [fn for fn in demo.fns.values() if any(event == "load" for _, event in fn.targets)]
    watch = [fn for fn in loads if "ev-progress" in [b.elem_id for b in fn.outputs]]
    assert len(watch) == 1 and watch[0].api_visibility == "private"
    assert watch[0].concurrency_id != "gpu" and watch[0].concurrency_limit is None  # every tab may watch


def test_a_failing_run_shows_its_message_on_the_page(eng, monkeypatch):
    def falls_over(*args, **kwargs):
        raise LabError("the ASR fell over (test)")

    monkeypatch.setattr(eng.asr, "transcribe_batch", falls_over)
    assert "fell over" in gr_error(lambda: eval_run.run_callback(eng, ui_values(max_sentences=1, name="fails")))
    run_id = eng.eval.job.run_id
    *_, info = eval_results.run_view_callback(eng, run_id)
    assert "failed" in info and "Failed:" in info and "the ASR fell over (test)" in info
    text, *_ = next(eval_run.attach_callback(eng))  # a reload says so too, without an error popup
    assert "Failed" in text and "fell over" in text


def test_the_form_takes_audio_folders_sim_encoder_and_mos(eng, tmp_path):
    cfg = eval_common.build_config(
        {
            **ui_values(),
            "audio_folders": f"{tmp_path / 'a'}\n\naudio:{tmp_path / 'b'}\n",
            "sim_encoder": "xtts",
            "mos": [],
        }
    )
    assert cfg.models == ("tiny", f"audio:{tmp_path / 'a'}", f"audio:{tmp_path / 'b'}")
    assert cfg.sim_encoder == "xtts" and cfg.mos == ()
    assert cfg.executor == "local" and not cfg.pipeline
    assert eval_common.build_config({**ui_values(), "executor": "pipeline"}).pipeline
    assert eval_common.build_config({**ui_values(), "executor": "ray"}).executor == "ray"
    # folders alone need no voice; a TTS model without one still does
    alone = eval_common.build_config({**ui_values(models=(), voices=()), "audio_folders": str(tmp_path / "a")})
    assert alone.models == (f"audio:{tmp_path / 'a'}",) and alone.voices == ()
    with pytest.raises(Exception, match="at least one reference voice"):
        eval_common.build_config({**ui_values(voices=()), "audio_folders": str(tmp_path / "a")})


def test_an_exposed_app_reads_audio_folders_only_under_the_allowed_roots(eng, tmp_path):
    exposed = Engines.create(dataclasses.replace(eng.settings, host="0.0.0.0"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    message = gr_error(lambda: eval_run.run_callback(exposed, {**ui_values(), "audio_folders": str(outside)}))
    assert "server_folders" in message
