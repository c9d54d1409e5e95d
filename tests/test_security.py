"""What the app reads and serves, and to whom: server folders, the login gate, the login throttle, the Host
header, zip budgets and leftover staging folders (issue 10, "Security")."""

from __future__ import annotations

import dataclasses
import http.cookiejar
import logging
import os
import subprocess
import time
import types
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import gradio as gr
import pytest

from engines import Engines
from engines.datasets import DatasetEngine, DatasetOptions, DatasetReport
from engines.datasets.ingest import expand_inputs
from pages import finetune_dataset as page
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, launched_app, tiny_settings

USER, PASSWORD = "ann", "correct-horse"


def build_values(folder: str, name: str = "voices", **changes) -> dict:
    """The Build form's values by name (see tests/test_finetune_dataset_page.py)."""
    values = {"files": None, "folder": folder, "transcripts": None, "name": name, "language": "en"}
    return {**values, **changes}


def request(url: str, path: str = "/", *, headers: dict | None = None, data: dict | None = None, opener=None):
    """(status, body) of one request; HTTP errors are answers too."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=body, headers=headers or {})
    try:
        with (opener or urllib.request.build_opener()).open(req, timeout=60) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


# ----------------------------------------------------------------- server folders


def test_server_folder_outside_the_allowed_roots_is_refused(engines, tmp_path) -> None:
    """/etc used to give a per-file report of every file there (stored in dataset.json); / a PermissionError."""
    roots = engines.datasets.server_roots
    assert roots == (engines.settings.path("datasets_dir").resolve(), engines.settings.workspace_dir.resolve())
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for folder in ["/etc", "/", str(outside), "../../etc", "~", "~nobody-here/x", "a\0b", str(tmp_path / "nowhere")]:
        with pytest.raises(gr.Error) as err:
            page.build_callback(engines, build_values(folder))
        assert "Folder not found in the allowed server folders" in str(err.value), folder
        assert str(roots[0]) in str(err.value) and "server_folders" in str(err.value)
    assert not engines.settings.path("datasets_dir").joinpath("voices").exists()

    # a folder inside the workspace that is a link to the outside is outside too
    link = engines.settings.workspace_dir / "linked"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(gr.Error, match="not found in the allowed server folders"):
        page.build_callback(engines, build_values("linked"))


def test_server_folder_inside_a_root_reads_only_what_stays_inside(engines, speak, tmp_path) -> None:
    """A relative path is taken under the roots; a link to a file outside is listed and not copied."""
    recordings = engines.settings.workspace_dir / "recordings"
    recordings.mkdir()
    wav = speak("The quick brown fox jumps over the lazy dog.", "en", "wav", name="fox")
    (recordings / "fox.wav").write_bytes(wav.read_bytes())
    secret = tmp_path / "private" / "secret.wav"
    secret.parent.mkdir()
    secret.write_bytes(speak("This file is not yours.", "en", "wav", name="secret").read_bytes())
    (recordings / "stolen.wav").symlink_to(secret)
    (recordings / "private").symlink_to(secret.parent, target_is_directory=True)
    transcripts = tmp_path / "list.txt"
    transcripts.write_text("fox.wav|The quick brown fox jumps over the lazy dog.\n", encoding="utf-8")

    report, *_ = page.build_callback(engines, build_values("recordings", transcripts=str(transcripts)))
    rows = report.set_index("source")
    assert rows.loc["fox.wav", "status"] == "kept"
    assert rows.loc["stolen.wav", "status"] == "skipped"
    assert "leads outside the folder" in rows.loc["stolen.wav", "detail"]  # the table shows the detail
    assert "leads outside the folder" in rows.loc["private", "detail"] and "private/secret.wav" not in rows.index
    wavs = list(engines.settings.path("datasets_dir").joinpath("voices", "wavs").glob("*.wav"))
    assert [w.name for w in wavs] == ["fox.wav"]


def test_server_folders_setting_and_exposed_apps(settings, tmp_path) -> None:
    """Exposed (--host beyond loopback, --share), the feature is off unless server_folders names folders."""
    extra = tmp_path / "recordings"
    extra.mkdir()
    exposed = Engines.create(dataclasses.replace(settings, host="0.0.0.0"))
    assert exposed.datasets.server_roots == ()
    with pytest.raises(gr.Error, match="Server folders are off"):
        page.build_callback(exposed, build_values(str(settings.workspace_dir)))
    with gr.Blocks():
        page.build(exposed)
        box = next(b for b in gr.context.Context.root_block.blocks.values() if b.elem_id == "ft-folder")
    assert box.interactive is False and "server_folders" in box.info

    shared = Engines.create(dataclasses.replace(settings, share=True, server_folders=(str(extra),)))
    assert extra.resolve() in shared.datasets.server_roots
    assert shared.datasets.server_folder(str(extra)) == extra.resolve()
    local = Engines.create(dataclasses.replace(settings, server_folders=(str(extra),)))
    (extra / "day1").mkdir()
    assert local.datasets.server_folder("day1") == (extra / "day1").resolve()  # relative: under each root in turn
    with gr.Blocks():
        page.build(local)
        box = next(b for b in gr.context.Context.root_block.blocks.values() if b.elem_id == "ft-folder")
    assert box.interactive is not False and str(extra.resolve()) in box.info


def test_unreadable_files_and_folders_are_listed_not_raised(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "in"
    (folder / "locked").mkdir(parents=True)
    (folder / "locked" / "a.wav").write_bytes(b"RIFF")
    (folder / "ok.wav").write_bytes(b"RIFF")
    (folder / "mine.wav").write_bytes(b"RIFF")
    # root reads everything, so the permissions are simulated where os.walk and the access check look
    real_scandir, real_access = os.scandir, os.access

    def scandir(path="."):
        if Path(path) == folder / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p).name != "mine.wav" and real_access(p, mode))
    report = DatasetReport(name="x", path=tmp_path, language="en")
    sources = expand_inputs([folder], tmp_path / "staging", DatasetOptions(), report, max_upload_mb=1)
    assert [s.name for s in sources] == ["ok.wav"]
    assert {(f.source, f.reason) for f in report.files} == {("locked", "unreadable"), ("mine.wav", "unreadable")}


# ----------------------------------------------------------------- zips and staging


def test_zips_of_one_build_share_one_unpack_budget(tmp_path) -> None:
    """Each zip used to get max_upload_mb x 4 of its own: ten zips, ten times the disk."""
    zips = []
    for i in range(3):
        path = tmp_path / f"part{i}.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"take{i}.wav", b"\0" * (3 * 2**20))  # 3 MB each; the budget is 1 MB x 4 in all
        zips.append(path)
    staging = tmp_path / "staging"
    report = DatasetReport(name="x", path=tmp_path, language="en")
    sources = expand_inputs(zips, staging, DatasetOptions(), report, max_upload_mb=1)
    assert [s.name for s in sources] == ["part0.zip/take0.wav"]
    refused = {f.source: f for f in report.files}
    assert set(refused) == {"part1.zip", "part2.zip"}
    assert all(f.reason == "too large" and "for the zips of one build" in f.detail for f in refused.values())
    assert "3 MB of it already used" in refused["part1.zip"].detail
    written = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    assert written <= 4 * 2**20


def test_staging_folders_of_killed_builds_are_removed_at_start(settings) -> None:
    cache = settings.workspace_sub("cache", "datasets")
    dead = subprocess.Popen(["true"])
    dead.wait()
    killed = cache / f"incoming-{dead.pid}-abc"
    old_style = cache / "incoming-k3j2h1"
    ours = cache / f"incoming-{os.getpid()}-xyz"
    for folder in (killed, old_style, ours):
        (folder / "0").mkdir(parents=True)
        (folder / "0" / "a.wav").write_bytes(b"\0" * 1024)
    DatasetEngine(settings, asr_engine=None)
    assert not killed.exists() and not old_style.exists()
    assert ours.exists()  # a build of this process may be running


# ----------------------------------------------------------------- the launched app


@pytest.fixture(scope="module")
def auth_app(tmp_path_factory, tiny_models):
    """The tiny app launched with a login, through the launcher's own launch arguments."""
    settings = dataclasses.replace(
        tiny_settings(tmp_path_factory.mktemp("auth-app"), tiny_models), auth=(f"{USER}:{PASSWORD}",)
    )
    settings.path("datasets_dir").joinpath("secret-dataset-name").mkdir(parents=True)
    with launched_app(settings) as (demo, url):
        yield demo, url


def login(url: str):
    """An opener holding the session cookie of a successful login."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    status, _ = request(url, "/login", data={"username": USER, "password": PASSWORD}, opener=opener)
    assert status == 200
    return opener


def test_nothing_of_the_app_before_login(auth_app) -> None:
    """GET / used to embed the API description: every endpoint, every dropdown's choices."""
    _, url = auth_app
    status, body = request(url, "/")
    assert status == 200 and "window.gradio_api_info = null;" in body
    for secret in ("tts_generate", "ft_build", "secret-dataset-name", "named_endpoints"):
        assert secret not in body
    for path in ("/gradio_api/runs", "/gradio_api/info", "/config", "/gradio_api/openapi.json", "/monitoring"):
        status, body = request(url, path)
        assert status == 401 and "secret-dataset-name" not in body, path

    opener = login(url)
    status, body = request(url, "/", opener=opener)
    assert status == 200 and "tts_generate" in body and "window.gradio_api_info = null;" not in body
    assert request(url, "/gradio_api/info", opener=opener)[0] == 200


def test_failed_logins_slow_down_and_are_logged(auth_app, caplog) -> None:
    """30 wrong passwords took 0.31 s; now the fourth and later attempts wait 0.5 s, 1 s, 2 s, ..."""
    _, url = auth_app
    with caplog.at_level(logging.INFO, logger="xtts_lab"):
        start = time.monotonic()
        for _ in range(6):
            status, _ = request(url, "/login", data={"username": "mallory", "password": "guess-123"})
            assert status == 400
        elapsed = time.monotonic() - start
        assert elapsed >= 3.0  # 0 + 0 + 0 + 0.5 + 1 + 2 s
        login(url)  # the right password still works (after its wait) and starts the count over
    failures = [r for r in caplog.records if r.getMessage().startswith("Failed login")]
    assert len(failures) == 6 and "'mallory'" in failures[-1].getMessage()
    assert "6 in a row" in failures[-1].getMessage()
    assert "guess-123" not in caplog.text and PASSWORD not in caplog.text
    assert any(f"Login: user '{USER}'" in r.getMessage() for r in caplog.records)


def test_host_header_is_checked(auth_app) -> None:
    """A DNS-rebinding page reaches the app under its own domain name: that name is refused."""
    _, url = auth_app
    port = urllib.parse.urlparse(url).port
    status, body = request(url, "/", headers={"Host": f"attacker.example:{port}"})
    assert status == 400 and "allowed_hosts" in body
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"192.168.1.20:{port}"):
        assert request(url, "/", headers={"Host": host})[0] == 200, host


def test_allowed_hosts_setting(settings) -> None:
    from web_guard import WebGuard, allowed_hosts

    names = allowed_hosts(
        dataclasses.replace(settings, host="lab.internal", allowed_hosts=("Lab.Example.org", ".corp"))
    )
    guard = WebGuard(app=None, hosts=names)
    assert guard.host_allowed("lab.internal", None) and guard.host_allowed("lab.example.org", None)
    assert guard.host_allowed("voice.corp", None) and guard.host_allowed("10.0.0.7", None)
    assert not guard.host_allowed("attacker.example", None) and not guard.host_allowed("corp.evil", None)
    # a share link's requests carry the link's host (frp keeps it): allowed once the tunnel is up
    shared = types.SimpleNamespace(get_blocks=lambda: types.SimpleNamespace(share_url="https://a1b2c3.gradio.live"))
    assert guard.host_allowed("a1b2c3.gradio.live", shared) and not guard.host_allowed("x9.gradio.live", shared)


@pytest.mark.browser
def test_login_page_in_a_browser(auth_app, artifacts) -> None:
    """The login form works through the gate, and the page before login holds no API description."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium chromium-driver)")
    _, url = auth_app
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page()
            tab.set_default_timeout(60_000)
            tab.goto(url)
            tab.get_by_role("button", name="Login").wait_for()
            assert tab.evaluate("() => window.gradio_api_info") is None
            assert "secret-dataset-name" not in tab.content()
            tab.locator("input").first.fill(USER)
            tab.locator("input[type=password]").fill(PASSWORD)
            tab.get_by_role("button", name="Login").click()
            tab.get_by_role("tab", name="Finetune").wait_for()
            assert tab.evaluate("() => window.gradio_api_info !== null")
            tab.screenshot(path=str(artifacts / "after-login.png"))
        finally:
            browser.close()
