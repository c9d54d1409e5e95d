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


def test_bad_input_raises_gr_error(engines, speak, tmp_path) -> None:
    wav = speak(TEXTS[0], "en", "wav", name="one")
    with pytest.raises(gr.Error, match="No input files"):
        call_build(engines, [], "", None, "empty")
    with pytest.raises(gr.Error, match="Folder not found"):
        call_build(engines, [], str(tmp_path / "nowhere"), None, "x")
    for bad in ["../x", "/tmp/x", "a/b", ""]:
        with pytest.raises(gr.Error):
            call_build(engines, [str(wav)], "", None, bad)
    with pytest.raises(gr.Error, match="XTTS"):
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
    assert Path(page.play_callback(engines, "voices", table.iloc[0]["clip"])).is_file()

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
