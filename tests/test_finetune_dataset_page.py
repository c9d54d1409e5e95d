"""Finetune tab, "1. Dataset": layout, and the callbacks called directly (bad input -> gr.Error)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from engines.datasets import DatasetOptions
from pages import finetune
from pages import finetune_dataset as page

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "Every morning the baker opens his shop early.",
]
ELEM_IDS = ["ft-upload", "ft-name", "ft-language", "ft-build", "ft-report", "ft-table", "ft-save", "ft-datasets"]
DEFAULTS = dict(
    model_id="tiny-random",
    speaker="",
    speaker_from_folder=False,
    overwrite=False,
    min_clip=1.0,
    max_clip=11.0,
    silence_db=-50.0,
    pad_ms=150,
    eval_share=0.15,
    target="dominant",
    reference_clips=None,
    quality_action="drop",
    min_similarity=DatasetOptions().min_similarity,
    min_bak=DatasetOptions().min_bak,
    min_sig=DatasetOptions().min_sig,
    min_ovrl=DatasetOptions().min_ovrl,
    dnsmos_min_seconds=DatasetOptions().dnsmos_min_seconds,
    cps_ratio=DatasetOptions().cps_ratio,
)


def build_values(files, folder, transcripts, name, language="en", **changes) -> dict:
    """The Build button's inputs by name, as the page's form hands them to the callback."""
    sources = {"files": files, "folder": folder, "transcripts": transcripts, "name": name, "language": language}
    return {**sources, **DEFAULTS, **changes}


def call_build(engines, files, folder, transcripts, name, language="en", **changes):
    return page.build_callback(engines, build_values(files, folder, transcripts, name, language, **changes))


@pytest.fixture()
def recordings(speak, tmp_path) -> tuple[Path, Path]:
    """A server folder with two speaker subfolders, and a transcripts list for it."""
    folder = tmp_path / "workspace" / "recordings"  # inside an allowed server-folder root
    rows = []
    for i, text in enumerate(TEXTS):
        speaker = "anna" if i < 2 else "ben"
        (folder / speaker).mkdir(parents=True, exist_ok=True)
        wav = speak(text, "en", "wav", name=f"rec{i}")
        target = folder / speaker / wav.name
        target.write_bytes(wav.read_bytes())
        rows.append(f"{speaker}/{wav.name}|{text}")
    (folder / "notes.md").write_text("not audio")
    transcripts = tmp_path / "transcripts.txt"
    transcripts.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder, transcripts


def test_tab_layout_and_train_fallback(engines, monkeypatch) -> None:
    with gr.Blocks() as demo:
        finetune.build(engines)
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert set(ELEM_IDS) <= ids
    tabs = [block.label for block in demo.blocks.values() if isinstance(block, gr.Tab)]
    assert tabs == ["1. Dataset", "2. Train"]
    # The dataset page's API is ft_build and ft_save; ft_build's positional order is the form's order.
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert {"ft_build", "ft_save"} <= public and not any(name.startswith(("on_", "_", "lambda")) for name in public)
    build = next(fn for fn in demo.fns.values() if fn.api_name == "ft_build")
    assert [block.elem_id for block in build.inputs] == [
        "ft-upload",
        "ft-folder",
        "ft-transcripts",
        "ft-name",
        "ft-language",
        "ft-whisper",
        "ft-speaker",
        "ft-speaker-folders",
        "ft-overwrite",
        "ft-min-clip",
        "ft-max-clip",
        "ft-silence",
        "ft-pad",
        "ft-eval-share",
        "ft-target",
        "ft-reference",
        "ft-quality-action",
        "ft-build-min-similarity",
        "ft-build-min-bak",
        "ft-build-min-sig",
        "ft-build-min-ovrl",
        "ft-build-dnsmos-min-seconds",
        "ft-build-cps-ratio",
        "ft-separate",
        "ft-denoise",
    ]
    assert list(build_values(None, "", None, "x")) == ["files", "folder", "transcripts", "name", "language", *DEFAULTS]

    # without the training page the dataset tab still builds, and says why training is missing
    monkeypatch.setitem(sys.modules, "pages.finetune_train", None)
    with gr.Blocks() as demo:
        finetune.build(engines)
    notes = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown) and "not available" in str(b.value)]
    assert len(notes) == 1 and "Training is not available" in notes[0]


def test_build_options_by_name() -> None:
    options = page.build_options(build_values(None, "", None, "x", speaker="Anna\nb.zip = Bob", pad_ms="", max_clip=9))
    assert options.speaker == "Anna" and options.speakers == (("b.zip", "Bob"),)
    assert options.max_clip == 9 and options.pad_ms == DatasetOptions().pad_ms and options.model_id == "tiny-random"
    assert page.build_options({}) == DatasetOptions()  # names left out keep the defaults
    # screening: radio labels or values, uploaded reference clips, thresholds (empty = default)
    options = page.build_options(
        build_values(
            None,
            "",
            None,
            "x",
            target="The voice of my reference clips",
            reference_clips=["/tmp/a.wav", "/tmp/b.wav"],
            quality_action="Flag only",
            min_bak="",
            min_ovrl=2.5,
            min_similarity=0.8,
        )
    )
    assert options.target == "reference" and options.reference_clips == ("/tmp/a.wav", "/tmp/b.wav")
    assert options.quality_action == "flag" and options.min_ovrl == 2.5 and options.min_similarity == 0.8
    assert options.min_bak == DatasetOptions().min_bak
    assert page.build_options({"target": "all", "quality_action": "drop"}).target == "all"


def test_bad_input_raises_gr_error(engines, speak, tmp_path) -> None:
    wav = speak(TEXTS[0], "en", "wav", name="one")
    with pytest.raises(gr.Error, match="No input files"):
        call_build(engines, [], "", None, "empty")
    with pytest.raises(gr.Error, match="Folder not found"):
        call_build(engines, [], str(tmp_path / "nowhere"), None, "x")
    for bad in ["../x", "/tmp/x", "a/b", ""]:
        with pytest.raises(gr.Error):
            call_build(engines, [str(wav)], "", None, bad)
    with pytest.raises(gr.Error, match="Whisper does not know the language 'xx'"):  # any code needs a transcript
        call_build(engines, [str(wav)], "", None, "ok", language="xx")
    with pytest.raises(gr.Error, match="Max clip"):
        call_build(engines, [str(wav)], "", None, "ok", max_clip=60)
    with pytest.raises(gr.Error, match="Pick a dataset"):
        page.save_callback(engines, None, None)
    with pytest.raises(gr.Error, match="No dataset named"):
        page.review_callback(engines, "missing")
    engines.settings.path("datasets_dir").joinpath("ghost").mkdir(parents=True)
    with pytest.raises(gr.Error, match="confirm"):
        page.delete_callback(engines, "ghost", False)


def test_build_review_edit_delete(engines, recordings) -> None:
    folder, transcripts = recordings
    with pytest.raises(gr.Error, match="file name = speaker"):
        call_build(engines, None, str(folder), str(transcripts), "voices", speaker="= nobody")
    report, summary, review_pick, datasets, _ = call_build(
        engines, None, str(folder), str(transcripts), "voices", speaker_from_folder=True, speaker="rec2.wav = carl"
    )
    assert isinstance(report, pd.DataFrame) and list(report.columns) == page.REPORT_COLUMNS
    by_source = report.set_index("source")
    assert by_source.loc["notes.md", "status"] == "skipped"
    assert (by_source.loc[["anna/rec0.wav", "anna/rec1.wav", "ben/rec2.wav"], "status"] == "kept").all()
    assert "3 clips" in summary and review_pick["value"] == "voices"
    assert datasets.set_index("name").loc["voices", "clips"] == 3

    table, stats, histogram, clip_pick, player = page.review_callback(engines, "voices")
    assert list(table.columns) == page.TABLE_COLUMNS and len(table) == 3
    assert dict(zip(table["clip"], table["speaker"])) == {"rec0.wav": "anna", "rec1.wav": "anna", "rec2.wav": "carl"}
    assert set(table["text"]) == set(TEXTS)
    assert "3 clips" in stats and "Only" in stats  # well under two minutes: the warning shows
    assert histogram["clips"].sum() == 3 and clip_pick["value"] == table.iloc[0]["clip"]
    played, original = page.play_callback(engines, "voices", table.iloc[0]["clip"])
    assert Path(played).is_file() and original is None  # no clean-up ran: nothing to compare with

    # edit one text, drop one row, save: the CSVs change and the dropped wav is gone
    edited = table.copy()
    edited.loc[0, "text"] = "Edited in the table."
    dropped = edited.iloc[1]["clip"]
    edited = edited.drop(index=1)
    message, table2, *_ = page.save_callback(engines, "voices", edited)
    assert "1 edited, 1 deleted, 2 clips left" in message and len(table2) == 2
    root = engines.datasets.dataset_dir("voices")
    assert not (root / "wavs" / dropped).exists()
    rows = []
    for split in ("train", "eval"):
        with open(root / f"metadata_{split}.csv", encoding="utf-8", newline="") as fh:
            rows += list(csv.DictReader(fh, delimiter="|"))
    assert {r["text"] for r in rows} == {"Edited in the table.", *[t for t in TEXTS if t in set(table2["text"])]}

    bad = table2.copy()
    bad.loc[0, "text"] = ""
    with pytest.raises(gr.Error, match="empty"):
        page.save_callback(engines, "voices", bad)
    with pytest.raises(gr.Error, match="nothing to re-cut"):
        page.recut_callback(engines, "voices", table2.iloc[0]["clip"], 11)
    with pytest.raises(gr.Error, match="Pick the clip"):
        page.delete_clip_callback(engines, "voices", None, table2)
    with pytest.raises(gr.Error, match="Pick the mismatched clip"):
        page.choice_callback(engines, {"name": "voices", "clip": None, "choice": "keep original", "text": ""})

    # validation with the tiny Whisper: every clip gets compared; the table shows the flags
    mismatches, message, mm_pick, table3, *_ = page.validate_callback(engines, "voices", "tiny-random", 0.3)
    assert "Re-transcribed 2 clips" in message
    assert len(mismatches) == sum("ASR mismatch" in f for f in table3["flags"])

    # the list, then delete (confirm required)
    listed, *_ = page.list_callback(engines)
    assert "voices" in set(listed["name"])
    with pytest.raises(gr.Error, match="confirm"):
        page.delete_callback(engines, "voices", False)
    message, listed, *_ = page.delete_callback(engines, "voices", True)
    assert "Deleted" in message and "voices" not in set(listed["name"]) and not root.exists()


def _parts(result: tuple) -> tuple:
    """An edit callback's (message, review values (table first), screening values (dropped table first))."""
    return result[0], result[1:6], result[6:]


def test_screening_review_drop_restore_thresholds_histogram(engines, recordings) -> None:
    """Every automatic decision is visible (reason and score), reversible, and re-made by new thresholds."""
    folder, transcripts = recordings
    call_build(engines, None, str(folder), str(transcripts), "screened", speaker="one")
    table, *_ = page.review_callback(engines, "screened")
    assert len(table) == 3 and table["bak"].notna().all() and table["sim"].notna().all()
    dropped, pick, scores, sim, bak, sig, ovrl, short, cps, action = page.screening_callback(
        engines, "screened", "ovrl"
    )
    assert list(dropped.columns) == page.DROPPED_COLUMNS and dropped.empty and pick["choices"] == []
    assert list(scores.columns) == ["score", "clips"] and scores["clips"].sum() == 3
    assert (sim, bak, action) == (DatasetOptions().min_similarity, DatasetOptions().min_bak, "drop")
    with pytest.raises(gr.Error, match="column"):
        page.screening_callback(engines, "screened", "loudness")

    # drop by hand, then restore: the dropped list says why; the clip comes back, and as the user's decision no
    # threshold drops or flags it again (the clip with the best BAK, so the lower ones stay to be judged below)
    clip = table.loc[table["bak"].idxmax(), "clip"]
    message, (table2, *_), (dropped, pick, *_) = _parts(page.drop_clip_callback(engines, "screened", clip, "sim"))
    assert clip in message and clip not in set(table2["clip"]) and len(table2) == 2
    assert dict(zip(dropped["clip"], dropped["reason"])) == {clip: "dropped by hand"} and pick["choices"] == [clip]
    with pytest.raises(gr.Error, match="Pick the dropped"):
        page.restore_callback(engines, "screened", [], "sim")
    message, (table3, *_), (dropped, *_) = _parts(page.restore_callback(engines, "screened", [clip], "sim"))
    assert "Restored" in message and clip in set(table3["clip"]) and dropped.empty

    # thresholds in one step: a BAK limit between the clips' scores drops the lower ones, with the score; these
    # espeak clips are short (under 3.5 s), where DNSMOS only flags unless the user lowers that length
    assert (table3["duration"] < DatasetOptions().dnsmos_min_seconds).all(), table3[["clip", "duration"]]
    short_clips = {"name": "screened", "min_bak": 4.5, "column": "bak"}
    message, (table_s, *_), (dropped, *_) = _parts(page.thresholds_callback(engines, short_clips))
    flags = dict(zip(table_s["clip"], table_s["flags"]))
    assert dropped.empty and "DNSMOS" not in flags.pop(clip)
    assert all("DNSMOS is unreliable" in f for f in flags.values()), flags
    baks = sorted(table3["bak"])
    limit = round((baks[0] + baks[-1]) / 2, 3)
    if baks[0] == baks[-1]:
        pytest.fail(f"the three clips scored the same BAK {baks}: no threshold between them")
    values = {"name": "screened", "min_bak": limit, "dnsmos_min_seconds": 0, "column": "bak"}
    message, _, (dropped, pick, scores, _s, bak, *_) = _parts(page.thresholds_callback(engines, values))
    low = {c for c, b in zip(table3["clip"], table3["bak"]) if b < limit}
    assert set(dropped["clip"]) == low and f"{len(low)} dropped" in message and bak == limit
    assert all(r.startswith("noisy or music (DNSMOS BAK") for r in dropped["reason"])
    assert scores["clips"].sum() == 3  # the histogram counts kept and dropped clips
    # flag instead of drop: all back in the lists, the flags column says why
    flag = {**values, "quality_action": "Flag only"}
    message, (table5, *_), (dropped, *_) = _parts(page.thresholds_callback(engines, flag))
    assert dropped.empty and len(table5) == 3
    assert sum("DNSMOS BAK" in f for f in table5["flags"]) == len(low)
    # a limit no clip meets drops all but the clip the user restored: that decision stands
    strict = {"name": "screened", "min_ovrl": 4.99, "dnsmos_min_seconds": 0, "quality_action": "drop"}
    message, (table_x, *_), (dropped, *_) = _parts(page.thresholds_callback(engines, strict))
    assert list(table_x["clip"]) == [clip] and len(dropped) == 2 and "1 clips in the training lists" in message
    message, (table6, *_), (dropped, *_) = _parts(
        page.thresholds_callback(
            engines,
            {
                "name": "screened",
                "min_bak": DatasetOptions().min_bak,
                "min_ovrl": DatasetOptions().min_ovrl,
                "dnsmos_min_seconds": DatasetOptions().dnsmos_min_seconds,
                "quality_action": "drop",
            },
        )
    )
    assert dropped.empty and len(table6) == 3 and "0 dropped" in message


@pytest.mark.browser
def test_dataset_tab_in_a_browser(tmp_path, tiny_models, speak, artifacts) -> None:
    """Upload recordings and a transcripts file, build, review the table, delete a clip."""
    playwright = pytest.importorskip("playwright.sync_api")
    from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, launched_app, tiny_settings

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    files = [speak(text, "en", "wav", name=f"web{i}") for i, text in enumerate(TEXTS)]
    transcripts = tmp_path / "list.txt"
    transcripts.write_text("".join(f"{f.name}|{t}\n" for f, t in zip(files, TEXTS)), encoding="utf-8")
    settings = tiny_settings(tmp_path, tiny_models)
    with launched_app(settings) as (demo, url), playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_context(viewport={"width": 1400, "height": 2400}).new_page()
            tab.goto(url)
            tab.get_by_role("tab", name="Finetune").click()
            tab.locator("#ft-build").wait_for(timeout=30_000)
            tab.locator("#ft-upload input[type=file]").set_input_files([str(f) for f in files])
            tab.locator("#ft-transcripts input[type=file]").set_input_files(str(transcripts))
            tab.locator("#ft-name input, #ft-name textarea").first.fill("web-voice")
            tab.locator("#ft-upload").get_by_text("web2", exact=True).wait_for(timeout=30_000)
            tab.locator("#ft-build").click()
            tab.locator("#ft-summary").get_by_text("3 clips").wait_for(timeout=120_000)
            report = tab.locator("#ft-report").inner_text()
            assert all(f.name in report for f in files) and "kept" in report
            tab.locator("#ft-table").get_by_text("web1.wav").first.wait_for(timeout=30_000)
            assert TEXTS[1] in tab.locator("#ft-table").inner_text()
            assert "3 clips" in tab.locator("#ft-stats").inner_text()
            assert "web-voice" in tab.locator("#ft-datasets").inner_text()
            tab.screenshot(path=str(artifacts / "finetune-dataset.png"), full_page=True)

            # pick a clip and delete it: the table and the CSVs lose it
            tab.locator("#ft-clip input").first.click()
            tab.get_by_role("option", name="web1.wav").click()
            tab.locator("#ft-delete-clip").click()
            tab.locator("#ft-edit-status").get_by_text("Deleted web1.wav").wait_for(timeout=30_000)
            assert "web1.wav" not in tab.locator("#ft-table").inner_text()
        finally:
            browser.close()
    root = settings.path("datasets_dir") / "web-voice"
    assert not (root / "wavs" / "web1.wav").exists()
    written = (root / "metadata_train.csv").read_text() + (root / "metadata_eval.csv").read_text()
    assert "web1.wav" not in written and "web0.wav" in written


def test_clean_up_choices_are_checked_before_any_work(engines, monkeypatch) -> None:
    """No step chosen: no clean-up. A step that cannot run here (Demucs not downloaded) is refused before any file
    is read, with the reason; a runnable one becomes the builder's hook, named after its steps."""
    from engines.core.errors import MissingWeightsError

    assert page.source_cleaner(engines, {"separate": False, "denoise": False}) is None
    with pytest.raises(MissingWeightsError, match="Demucs"):
        page.source_cleaner(engines, {"separate": True})
    monkeypatch.setattr(engines.cleanup, "available", lambda: {"separate": None, "denoise": None})
    cleaner = page.source_cleaner(engines, {"separate": True, "denoise": True})
    assert cleaner is not None and cleaner.name == "separate+denoise"
