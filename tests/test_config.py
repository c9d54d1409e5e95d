"""Settings: precedence CLI > env > my_config.py > defaults, type coercion, path resolution."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import pytest

from config import ROOT, Settings, load_settings, resolve_path


@pytest.fixture()
def my_config(monkeypatch: pytest.MonkeyPatch):
    """Install a fake my_config module; returns a setter for its OVERRIDES."""
    module = types.ModuleType("my_config")
    module.OVERRIDES = {}
    monkeypatch.setitem(sys.modules, "my_config", module)

    def _set(**overrides):
        module.OVERRIDES = overrides
        return module

    return _set


def test_defaults_without_overrides(my_config):
    my_config()
    s = load_settings(env={})
    assert s == Settings()
    assert (s.host, s.port, s.share, s.tiny_models) == ("127.0.0.1", 7860, False, False)


def test_precedence_cli_over_env_over_my_config_over_defaults(my_config):
    my_config(port=8001, device="cuda:1", asr_model="base", language="de")
    env = {"XTTSLAB_PORT": "8002", "XTTSLAB_DEVICE": "cpu"}
    s = load_settings({"port": 8003}, env=env)
    assert s.port == 8003  # CLI beats env and my_config
    assert s.device == "cpu"  # env beats my_config
    assert s.asr_model == "base"  # my_config beats the default
    assert s.language == "de"
    assert s.temperature == Settings().temperature  # untouched default


def test_cli_none_values_fall_through(my_config):
    my_config(port=8001)
    s = load_settings({"port": None, "host": None}, env={"XTTSLAB_HOST": "0.0.0.0"})
    assert s.port == 8001
    assert s.host == "0.0.0.0"


def test_env_strings_are_coerced(my_config):
    my_config()
    env = {
        "XTTSLAB_SHARE": "yes",
        "XTTSLAB_SPLIT_SENTENCES": "0",
        "XTTSLAB_PORT": "9000",
        "XTTSLAB_TOP_P": "0.5",
        "XTTSLAB_WORKSPACE": "/tmp/elsewhere",
        "XTTSLAB_AUTH": "ann:pw1, bob:pw2,",
        "XTTSLAB_XTTS_CACHE_DIR": "",
    }
    s = load_settings(env=env)
    assert s.share is True and s.split_sentences is False
    assert s.port == 9000 and isinstance(s.port, int)
    assert s.top_p == 0.5 and isinstance(s.top_p, float)
    assert s.workspace == Path("/tmp/elsewhere")
    assert s.auth == ("ann:pw1", "bob:pw2")
    assert s.xtts_cache_dir is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("XTTSLAB_PORT", "eighty"), ("XTTSLAB_SHARE", "maybe"), ("XTTSLAB_TOP_P", "high")],
)
def test_bad_env_value_names_the_setting(my_config, key, value):
    my_config()
    with pytest.raises(ValueError, match=key.removeprefix("XTTSLAB_").lower()):
        load_settings(env={key: value})


def test_unknown_key_raises(my_config):
    my_config()
    with pytest.raises(ValueError, match="Unknown setting 'colour'"):
        load_settings({"colour": "blue"}, env={})
    my_config(prot=1)
    with pytest.raises(ValueError, match="Unknown setting 'prot'"):
        load_settings(env={})


def test_wrong_type_in_my_config_raises(my_config):
    my_config(device=0)
    with pytest.raises(ValueError, match="device"):
        load_settings(env={})


def test_my_config_overrides_must_be_a_dict(my_config):
    my_config().OVERRIDES = [("port", 1)]
    with pytest.raises(TypeError, match="OVERRIDES"):
        load_settings(env={})


def test_unknown_env_variable_is_warned_about(my_config, caplog):
    my_config()
    with caplog.at_level(logging.WARNING, logger="config"):
        s = load_settings(env={"XTTSLAB_DEVIC": "cpu"})
    assert s.device == "auto"
    assert "XTTSLAB_DEVIC" in caplog.text


def test_relative_paths_resolve_against_root_absolute_kept(my_config, tmp_path, monkeypatch):
    my_config(datasets_dir="my-datasets")
    monkeypatch.chdir(tmp_path)  # the current directory must not matter
    s = load_settings({"workspace": str(tmp_path / "ws")}, env={})
    assert s.path("datasets_dir") == ROOT / "my-datasets"
    assert s.path("samples_dir") == ROOT / "samples"
    assert s.path("workspace") == tmp_path / "ws"
    assert s.workspace_dir == tmp_path / "ws"
    assert s.path("xtts_cache_dir") is None
    assert resolve_path("~/x") == Path.home() / "x"


def test_workspace_sub_creates_folders(my_config, tmp_path):
    my_config()
    settings = load_settings({"workspace": tmp_path / "ws"}, env={})
    folder = settings.workspace_sub("outputs", "tts")
    assert folder.is_dir()
    assert folder == settings.workspace_dir / "outputs" / "tts"


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


def test_generation_settings_have_one_definition(my_config):
    from engines.core.options import TTSOptions

    my_config(temperature=0.6, generation={"top_k": 20})
    s = load_settings(env={"XTTSLAB_SPEED": "1.25", "XTTSLAB_SEED": "none", "XTTSLAB_MAX_AUDIO_TOKENS": "16"})
    assert s.generation == TTSOptions(temperature=0.6, top_k=20, speed=1.25, seed=None, max_audio_tokens=16)
    assert Settings().generation == TTSOptions()  # the defaults are TTSOptions' own
    assert (s.temperature, s.language) == (0.6, "en")  # old flat names still read


def test_generation_overrides_are_checked(my_config):
    my_config(generation={"temprature": 0.5})
    with pytest.raises(ValueError, match="temprature"):
        load_settings(env={})
    my_config()
    with pytest.raises(ValueError, match="top_k"):
        load_settings(env={"XTTSLAB_TOP_K": "many"})


def test_generation_override_reaches_tts_engine_default(tmp_path, tiny_models, speak):
    import json

    from engines import Engines

    workspace = tmp_path / "ws"
    (workspace / "tiny-models").mkdir(parents=True)
    for item in (tiny_models.xtts_dir, tiny_models.whisper_path):
        (workspace / "tiny-models" / item.name).symlink_to(item, target_is_directory=item.is_dir())
    s = load_settings(
        {"workspace": workspace, "tiny_models": True, "device": "cpu"},
        env={"XTTSLAB_TEMPERATURE": "0.55", "XTTSLAB_MAX_AUDIO_TOKENS": "8", "XTTSLAB_SEED": "7"},
    )
    result = Engines.create(s).tts.synthesize("Hello there.", reference=[speak("Hello there, my friend.")])
    options = json.loads(result.sidecar.read_text())["options"]
    assert (options["temperature"], options["max_audio_tokens"], options["seed"]) == (0.55, 8, 7)
