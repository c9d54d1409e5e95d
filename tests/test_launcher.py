"""The launcher: flags, --auth, exposure warnings, cheap import, build_app in tiny mode."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import types

import pytest

import main_launcher
import web_guard
from config import ROOT


@pytest.fixture()
def no_my_config(monkeypatch: pytest.MonkeyPatch):
    """Defaults as shipped, whatever the developer's my_config.py says."""
    module = types.ModuleType("my_config")
    module.OVERRIDES = {}
    monkeypatch.setitem(sys.modules, "my_config", module)


def settings_for(argv: list[str], env: dict[str, str] | None = None):
    return main_launcher.settings_from_args(main_launcher.parse_args(argv), env=env or {})


def test_defaults_are_loopback_7860(no_my_config):
    s = settings_for([])
    assert (s.host, s.port) == ("127.0.0.1", 7860)
    assert not (s.share or s.inbrowser or s.tiny_models or s.auth)
    kwargs = main_launcher.launch_kwargs(s)
    assert kwargs["server_name"] == "127.0.0.1" and kwargs["server_port"] == 7860
    assert kwargs["auth"] is None and kwargs["share"] is False
    assert kwargs["max_file_size"] == "500mb"


def test_flags_parse(no_my_config, tmp_path):
    argv = "--host 0.0.0.0 --port 9001 --share --inbrowser --tiny-models --device cpu --auth ann:pw".split()
    s = settings_for([*argv, "--workspace", str(tmp_path)])
    assert (s.host, s.port, s.share, s.inbrowser, s.tiny_models, s.device) == ("0.0.0.0", 9001, True, True, True, "cpu")
    assert s.workspace_dir == tmp_path
    assert s.auth == ("ann:pw",)


def test_flags_beat_environment(no_my_config):
    s = settings_for(["--port", "9001"], env={"XTTSLAB_PORT": "9002", "XTTSLAB_SHARE": "1"})
    assert s.port == 9001
    assert s.share is True  # not given on the command line: the environment's value stands


def test_auth_repeatable_and_from_file(no_my_config, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("# team logins\ncarol:secret:with:colons\n\n  dave:pw4  \n", encoding="utf-8")
    s = settings_for(["--auth", "ann:pw1", "--auth", str(users), "--auth", "bob:pw2"])
    assert s.auth == ("ann:pw1", "carol:secret:with:colons", "dave:pw4", "bob:pw2")
    kwargs = main_launcher.launch_kwargs(s)
    assert kwargs["auth"] == [("ann", "pw1"), ("carol", "secret:with:colons"), ("dave", "pw4"), ("bob", "pw2")]


@pytest.mark.parametrize("value", ["no-colon-and-no-file", ":pw", "user:"])
def test_bad_auth_exits_with_a_message(no_my_config, value):
    with pytest.raises(SystemExit, match="user:password"):
        settings_for(["--auth", value])


def test_bad_auth_line_in_file(no_my_config, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("ann:pw1\njustaname\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="justaname"):
        settings_for(["--auth", str(users)])


def test_share_without_auth_warns(no_my_config, caplog):
    with caplog.at_level(logging.WARNING, logger="xtts_lab"):
        kwargs = main_launcher.launch_kwargs(settings_for(["--share"]))
    assert kwargs["share"] is True
    assert "--share without --auth" in caplog.text


def test_share_with_auth_and_loopback_do_not_warn(no_my_config, caplog):
    shared = settings_for(["--share"], env={"XTTSLAB_AUTH": "ann:pw"})  # a password in argv warns of its own
    with caplog.at_level(logging.WARNING, logger="xtts_lab"):
        main_launcher.launch_kwargs(shared)
        main_launcher.launch_kwargs(settings_for([]))
    assert caplog.text == ""


def test_network_host_without_auth_warns(no_my_config, caplog):
    with caplog.at_level(logging.WARNING, logger="xtts_lab"):
        main_launcher.launch_kwargs(settings_for(["--host", "0.0.0.0"]))
    assert "0.0.0.0 without --auth" in caplog.text


def test_allowed_paths_are_the_project_folders(no_my_config, tmp_path):
    kwargs = main_launcher.launch_kwargs(settings_for(["--workspace", str(tmp_path)]))
    assert kwargs["allowed_paths"] == [str(tmp_path), str(ROOT / "samples"), str(ROOT / "datasets")]


def test_import_is_cheap():
    """A fresh interpreter imports main_launcher quickly and loads no ML stack."""
    code = (
        "import json, sys, time; t = time.perf_counter(); import main_launcher; "
        "print(json.dumps({'seconds': time.perf_counter() - t, 'modules': sorted(sys.modules)}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["seconds"] < 5.0
    heavy = {"torch", "whisper", "TTS", "gradio", "numpy"} & set(report["modules"])
    assert not heavy, f"importing main_launcher pulled in {sorted(heavy)}"


def top_level_tabs(demo) -> list[str]:
    """Labels of the app's own tabs (not the sub-tabs inside a page)."""
    import gradio as gr

    return [
        b.label
        for b in demo.blocks.values()
        if isinstance(b, gr.Tab) and isinstance(b.parent, gr.Tabs) and b.parent.parent is demo
    ]


def test_build_app_tiny_has_the_tabs_and_loads_no_model(settings):
    import gradio as gr

    demo = main_launcher.build_app(settings, tiny_models=True)
    assert isinstance(demo, gr.Blocks)
    assert top_level_tabs(demo) == ["TTS", "ASR", "Finetune", "Eval"]
    banners = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "tiny-banner"]
    assert len(banners) == 1
    named = {fn.api_name for fn in demo.fns.values() if fn.api_name}
    assert {"tts_generate", "asr_transcribe"} <= named
    # Nothing loads until a user asks: both holders are still empty after the build.
    assert demo.engines.tts.holder.loaded is None and demo.engines.tts.holder.model is None
    assert demo.engines.asr.holder.loaded is None and demo.engines.asr.holder.model is None


def test_build_app_without_tiny_has_no_banner(settings):

    demo = main_launcher.build_app(settings, tiny_models=False)
    assert not [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "tiny-banner"]
    assert top_level_tabs(demo) == ["TTS", "ASR", "Finetune", "Eval"]
    assert demo.engines.tts.holder.loaded is None


def test_main_launches_with_the_flags(settings, monkeypatch, no_my_config):
    """main() end to end, with the real app built and only the blocking server call replaced."""
    import gradio as gr

    calls = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: calls.append((self, kwargs)))
    monkeypatch.setenv("XTTSLAB_DATASETS_DIR", str(settings.path("datasets_dir")))
    argv = ["--tiny-models", "--device", "cpu", "--workspace", str(settings.workspace_dir), "--port", "7999"]
    assert main_launcher.main([*argv, "--auth", "ann:pw"]) == 0
    ((demo, kwargs),) = calls
    assert kwargs["server_port"] == 7999 and kwargs["auth"] == [("ann", "pw")]
    assert demo.engines.settings.tiny_models is True


@pytest.mark.parametrize("flags", [["--host", "0.0.0.0"], ["--share"], ["--host", "192.168.1.5", "--share"]])
def test_exposed_without_auth_refuses_to_start(settings, monkeypatch, no_my_config, flags):
    """Exposing the app without a login used to start with a console warning only."""
    import gradio as gr

    calls = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: calls.append((self, kwargs)))
    monkeypatch.setenv("XTTSLAB_DATASETS_DIR", str(settings.path("datasets_dir")))
    argv = ["--tiny-models", "--device", "cpu", "--workspace", str(settings.workspace_dir), *flags]
    with pytest.raises(SystemExit, match="without --auth.*Not starting.*--allow-public-without-auth"):
        main_launcher.main(argv)
    assert calls == []

    # said explicitly: it starts, and the page says what is wrong at the top
    assert main_launcher.main([*argv, "--allow-public-without-auth"]) == 0
    ((demo, kwargs),) = calls
    banners = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "exposed-warning"]
    assert len(banners) == 1 and "without --auth" in banners[0].value
    assert main_launcher.main([*argv, "--auth", "ann:pw"]) == 0  # a login: no question asked


def test_loopback_without_auth_has_no_exposure_banner(settings):
    demo = main_launcher.build_app(settings)
    assert not [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "exposed-warning"]
    assert main_launcher.exposure_warning(settings) is None


def test_security_settings_follow_the_conventions(no_my_config):
    env = {
        "XTTSLAB_SERVER_FOLDERS": "/data/recordings, /srv/audio",
        "XTTSLAB_ALLOWED_HOSTS": "lab.example.org,.corp",
        "XTTSLAB_ALLOW_PUBLIC_WITHOUT_AUTH": "yes",
    }
    s = settings_for(["--host", "0.0.0.0"], env=env)
    assert s.server_folders == ("/data/recordings", "/srv/audio")
    assert s.allowed_hosts == ("lab.example.org", ".corp") and s.allow_public_without_auth is True
    assert s.exposed and not settings_for([]).exposed and settings_for(["--share"]).exposed
    assert not settings_for(["--host", "localhost"]).exposed and not settings_for(["--host", "127.0.0.5"]).exposed
    defaults = settings_for([])
    assert defaults.server_folders == () and defaults.allowed_hosts == () and not defaults.allow_public_without_auth


def test_launch_kwargs_install_the_web_guard(no_my_config):
    kwargs = main_launcher.launch_kwargs(settings_for(["--host", "lab.internal", "--auth", "ann:pw"]))
    (middleware,) = kwargs["app_kwargs"]["middleware"]
    assert middleware.cls is web_guard.WebGuard
    assert "lab.internal" in middleware.kwargs["hosts"]


def test_password_on_the_command_line_warns_and_env_or_file_do_not(no_my_config, tmp_path, caplog):
    """--auth user:pass is visible in ps: warned; XTTSLAB_AUTH and an auth file (XTTSLAB_AUTH_FILE) are the quiet ways."""
    with caplog.at_level(logging.WARNING, logger="xtts_lab"):
        settings_for(["--auth", "ann:pw1"])
    assert any("command line" in r.getMessage() and "XTTSLAB_AUTH" in r.getMessage() for r in caplog.records)
    caplog.clear()
    users = tmp_path / "users.txt"
    users.write_text("bob:pw2\n", encoding="utf-8")
    users.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="xtts_lab"):
        s = settings_for([], env={"XTTSLAB_AUTH": "ann:pw1", "XTTSLAB_AUTH_FILE": str(users)})
        assert s.auth == ("ann:pw1", "bob:pw2")
        assert settings_for(["--auth", str(users)]).auth == ("bob:pw2",)
    assert not caplog.records
    users.chmod(0o644)  # readable by everyone: said so
    with caplog.at_level(logging.WARNING, logger="xtts_lab"):
        settings_for([], env={"XTTSLAB_AUTH_FILE": str(users)})
    assert any("chmod 600" in r.getMessage() for r in caplog.records)
    with pytest.raises(SystemExit, match="no such file"):
        settings_for([], env={"XTTSLAB_AUTH_FILE": str(tmp_path / "missing.txt")})


def _torch_save_fails(monkeypatch, exc: BaseException) -> None:
    import torch

    def save(*args, **kwargs):
        raise exc

    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize(
    "exc",
    [
        OSError(28, "No space left on device"),  # errno.ENOSPC from a plain write or mkdir
        # torch's zip writer loses the errno: only this is left (the disk check below decides)
        RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 6336 vs 6224"),
    ],
    ids=["enospc", "torch-writer"],
)
def test_startup_on_a_full_disk_exits_with_the_disk_full_message(tmp_path, monkeypatch, no_my_config, exc):
    """Building the tiny models on a full disk died with torch's raw RuntimeError and a traceback."""
    import shutil

    import gradio as gr

    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: pytest.fail("launched on a full disk"))
    _torch_save_fails(monkeypatch, exc)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1024))
    monkeypatch.setenv("XTTSLAB_DATASETS_DIR", str(tmp_path / "datasets"))
    workspace = tmp_path / "ws"
    argv = ["--tiny-models", "--device", "cpu", "--workspace", str(workspace)]
    with pytest.raises(SystemExit) as info:
        main_launcher.main(argv)
    message = str(info.value.code)
    assert message.startswith("The disk is full") and str(workspace) in message and "Free some space" in message


def test_startup_errors_that_are_not_a_full_disk_still_raise(tmp_path, monkeypatch, no_my_config):
    """A torch failure with free space left is a bug, not a full disk: it is not dressed up as one."""
    import gradio as gr

    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: pytest.fail("launched"))
    _torch_save_fails(monkeypatch, RuntimeError("something else broke"))
    monkeypatch.setenv("XTTSLAB_DATASETS_DIR", str(tmp_path / "datasets"))
    with pytest.raises(RuntimeError, match="something else broke"):
        main_launcher.main(["--tiny-models", "--device", "cpu", "--workspace", str(tmp_path / "ws")])
