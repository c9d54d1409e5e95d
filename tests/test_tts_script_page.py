"""The Script / retakes / pronunciation page functions, called directly (issue 22)."""

from __future__ import annotations

import json

import pytest

from engines.core.errors import InputError
from pages import tts, tts_script


def form_values(engines, **extra):
    values = {
        "text": "I like SQL.",
        "language": "en",
        "files": None,
        "recording": None,
        "voice": tts.NONE,
        "speaker": engines.tts.speakers("tiny")[0],
        "model": "tiny",
        "max_tokens": 8,
        "seed": 5,
    }
    values.update(extra)
    return values


@pytest.mark.parametrize(("value", "takes"), [(0, None), (None, None), ("", None), (3, 3), ("2", 2)])
def test_the_retakes_box(value, takes):
    options = tts_script.retake_options(value)
    assert (options.takes if options else None) == takes


@pytest.mark.parametrize("value", [-1, 11, 2.5, "many"])
def test_a_bad_retakes_box_is_refused(value):
    with pytest.raises(InputError, match="whole number from 0"):
        tts_script.retake_options(value)


def test_generate_with_retakes_and_the_pronunciation_map(engines):
    tts_script.save_pronunciation(engines, json.dumps({"en": [{"match": "SQL", "say": "sequel"}]}))
    path, files, stats, _notices = tts.generate(engines, form_values(engines, retakes=2))
    sidecar = json.loads(open(next(f for f in files if f.endswith(".json"))).read())
    assert sidecar["pronunciation"]["spoken_text"] == "I like sequel."
    assert sidecar["retakes"]["options"]["takes"] == 2 and len(sidecar["retakes"]["sentences"]) == 1
    assert "Retakes" in stats
    with pytest.raises(InputError, match="not a valid regex"):
        tts_script.save_pronunciation(engines, '{"en": [{"match": "(", "say": "x", "regex": true}]}')


def test_create_list_edit_a_project_from_the_form(engines):
    values = form_values(
        engines,
        script_name="page-talk",
        script="Ann: One.\nTwo.",
        voices=f"Ann = speaker:{engines.tts.speakers('tiny')[0]}\n* = speaker:{engines.tts.speakers('tiny')[1]}",
        gap=0.2,
        script_retakes=0,
        overwrite=False,
    )
    assert tts_script.create_project(engines, values) == "page-talk"
    rows = tts_script.line_rows(engines, "page-talk")
    assert [r[1] for r in rows] == ["L0001", "L0002"] and {r[5] for r in rows} == {"to generate"}
    assert "0/2 line(s) done" in tts_script.project_status(engines, "page-talk")
    with pytest.raises(InputError, match="name"):
        tts_script.create_project(engines, {**values, "script_name": " "})


def test_stop_ends_a_generation_and_generate_resumes(engines, monkeypatch):
    """Script generation could only be stopped by closing the page; Stop now ends it, keeping what is done."""
    import threading

    values = form_values(
        engines,
        script_name="stop-talk",
        script="One.\nTwo.\nThree.\nFour.",
        voices=f"* = speaker:{engines.tts.speakers('tiny')[0]}",
        gap=0.2,
        script_retakes=0,
        overwrite=False,
    )
    tts_script.create_project(engines, values)
    assert tts_script.stop_callback(engines, "stop-talk") == "Nothing is generating for this project."
    spoken, second_started = [], threading.Event()
    original = engines.tts.synthesize

    def synthesize(text, **kwargs):
        spoken.append(text)
        if len(spoken) == 2:
            second_started.set()
            assert kwargs["cancel"].wait(30)  # the Stop reaches the line being spoken
        return original(text, **kwargs)

    monkeypatch.setattr(engines.tts, "synthesize", synthesize)
    result = {}
    worker = threading.Thread(target=lambda: result.update(views=tts_script.generate_callback(engines, "stop-talk")))
    worker.start()
    assert second_started.wait(60)
    assert "Stopping" in tts_script.stop_callback(engines, "stop-talk")
    worker.join(60)
    assert "views" in result  # a Stop is not an error
    assert "1/4 line(s) done" in tts_script.project_status(engines, "stop-talk")
    monkeypatch.undo()
    tts_script.generate_callback(engines, "stop-talk")
    assert "4/4 line(s) done" in tts_script.project_status(engines, "stop-talk")
