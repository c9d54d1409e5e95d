"""The dependency locks: complete, consistent with the hand-edited requirements, and checked at startup."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from engines.core import provenance

ROOT = Path(__file__).resolve().parents[1]


def _direct(path: Path) -> list[Requirement]:
    """The requirements of a hand-edited file, following ``-r`` includes."""
    out: list[Requirement] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            out += _direct(path.parent / line[3:].strip())
            continue
        out.append(Requirement(line))
    return out


@pytest.mark.parametrize(
    ("source", "lock"), [("requirements.txt", "requirements.lock"), ("requirements-dev.txt", "requirements-dev.lock")]
)
def test_lock_satisfies_every_direct_requirement(source: str, lock: str) -> None:
    locked = provenance.locked_versions(ROOT / lock)
    for req in _direct(ROOT / source):
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is in {source} but not in {lock}: run make lock"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"{source} asks {req}, {lock} has {locked[name]}: run make lock"
        )


def test_lock_pins_transformers_below_the_breaking_release() -> None:
    # transformers 5.24 breaks XTTS inference; the lock must never drift back to it silently.
    locked = provenance.locked_versions()
    assert locked["transformers"] == "5.23.0"
    assert len(locked) > 150  # every transitive package, not only the direct ones


def test_dev_lock_agrees_with_app_lock() -> None:
    app = provenance.locked_versions(ROOT / "requirements.lock")
    dev = provenance.locked_versions(ROOT / "requirements-dev.lock")
    assert set(app) <= set(dev)
    assert {k: dev[k] for k in app} == app


def test_installed_versions_match_the_lock() -> None:
    # The suite runs in the venv `make test` built from the lock, so nothing may drift here.
    assert provenance.version_drift() == []


def test_drift_is_named_in_log_page_and_system_panel(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, settings, engines
) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "torch==0.0.1\n    # via x\ntransformers==5.23.0 ; python_version >= '3.11'\ncoqui-tts[codec]==0.28.0\n"
    )
    drift = provenance.version_drift(lock)
    assert [d.package for d in drift] == ["torch"]
    assert drift[0].tested == "0.0.1" and drift[0].installed
    message = provenance.drift_message(drift)
    assert "torch" in message and "tested: 0.0.1" in message

    from main_launcher import build_app
    from pages import system

    assert "Warning" not in system.system_info(engines)
    monkeypatch.setattr(provenance, "LOCK_FILE", lock)
    with caplog.at_level(logging.WARNING):
        assert provenance.warn_on_drift() == message
    assert "torch" in caplog.text and "tested: 0.0.1" in caplog.text
    assert "tested: 0.0.1" in system.system_info(engines)
    demo = build_app(settings, engines=engines)
    banners = [b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) == "version-warning"]
    assert len(banners) == 1 and "tested: 0.0.1" in banners[0]


def test_local_build_suffix_is_not_drift(tmp_path: Path) -> None:
    installed = provenance.installed_version("torch")
    lock = tmp_path / "lock"
    lock.write_text(f"torch=={installed.split('+', 1)[0]}+cu130\n")
    assert provenance.version_drift(lock, ("torch",)) == []
    lock.write_text("torch==1.0\n")
    assert [d.describe() for d in provenance.version_drift(lock, ("torch",))] == [f"torch {installed} (tested: 1.0)"]
    lock.write_text("not-a-package-xyz==1.0\n")
    assert provenance.version_drift(lock, ("not-a-package-xyz",))[0].installed is None
