"""One rule for folder names, voice names and XTTS language codes, shared by every engine."""

from __future__ import annotations

import pytest

from engines import datasets
from engines.core import names
from engines.core.errors import InputError
from engines.training import base, checks, export, runs
from engines.tts import voices as tts


def test_every_engine_uses_the_same_folder_name_rule() -> None:
    assert all(m.check_name is names.check_name for m in (runs, base, checks, export))  # run, model, dataset
    long_name = "voice-" + "x" * 88 + "-step1"  # 100 characters: a generated export name of a long dataset
    for check in (datasets.check_name, lambda n: names.check_name(n, "model")):
        assert check(long_name) == long_name
        with pytest.raises(InputError, match="1-100 characters"):
            check(long_name + "x")
        for bad in ("../x", "/etc", "a/b", "a\\b", "x..y", ".hidden", "a b", ""):
            with pytest.raises(InputError):
                check(bad)
    with pytest.raises(InputError, match="Invalid run name '../x': it is a path"):
        names.check_name("../x", "run")


def test_voice_names_and_languages() -> None:
    assert tts.check_voice_name is names.check_voice_name
    assert names.check_voice_name(" Ann (calm) ") == "Ann (calm)"
    with pytest.raises(InputError, match="not allowed"):
        names.check_voice_name("../ann")
    assert datasets.check_language("ZH") == names.xtts_language("zh-CN") == "zh-cn"
    with pytest.raises(InputError, match="not supported by XTTS v2"):
        names.xtts_language("xx")
    # a dataset may be in any ISO 639 code (a language to teach XTTS, issue 21): one rule, speech_language
    assert datasets.check_language("VI") == names.speech_language("vi") == "vi"
    with pytest.raises(InputError, match="not a language code"):
        datasets.check_language("x")
