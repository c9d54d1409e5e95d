"""Run folders under workspace/reports/<run-id>/: ids, listing, status, and reading a run back.

A run folder holds ``config.json`` (everything needed to resume), ``status.json``, ``sentences.csv``,
``results.csv``, ``summary.json``, ``report.html``, ``audio/``, ``refs/`` and ``listening/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Settings
from engines.core.audio import write_json
from engines.core.errors import InputError
from engines.core.names import ID_MAX, shown_id, slug
from engines.core.provenance import name_stamp, utc_now
from engines.eval.results import read_results

RUN_STATES = ("running", "stopped", "failed", "done")


@dataclass
class RunProgress:
    """What a running evaluation reports after each batch."""

    run_id: str
    folder: Path
    done: int  # utterances finished (including ones from before a resume)
    total: int
    state: str  # one of RUN_STATES
    message: str = ""
    summary: dict[str, Any] | None = None  # filled when the run ends

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass
class RunInfo:
    """A past run, for the run list."""

    run_id: str
    folder: Path
    name: str
    created: str
    state: str  # RUN_STATES, or "interrupted": "running" on disk but no live process writes it
    done: int
    total: int
    sentences: str
    systems: list[str]
    has_report: bool
    message: str = ""  # status.json's message: why it failed or stopped


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


class RunStore:
    """The run folders of one workspace (it knows nothing of models)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def reports_dir(self) -> Path:
        return self.settings.workspace_sub("reports")  # (re)created when missing

    def run_dir(self, run_id: str) -> Path:
        """The folder of an existing run.

        Raises:
            InputError: unknown or unsafe run id.
        """
        run_id = (run_id or "").strip()
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith(".") or len(run_id) > ID_MAX:
            raise InputError(f"Run id {shown_id(run_id)} is not allowed.")
        folder = self.reports_dir / run_id
        if not (folder / "config.json").is_file():
            known = ", ".join(r.run_id for r in self.list_runs()[:10]) or "none yet"
            # no folder in the message: behind a share link it would tell strangers the server's paths
            raise InputError(f"No eval run {run_id!r} (eval_runs lists them). Recent runs: {known}.")
        return folder

    def new_folder(self, run_id: str | None, name: str) -> Path:
        """A new run's folder (created): ``run_id`` as given, else a timestamp + the run's name.

        Raises:
            InputError: a run with that id exists.
        """
        if not run_id:
            base = f"{name_stamp()}-{slug(name, 32)}" if name else name_stamp()
            run_id, n = base, 2
            while (self.reports_dir / run_id).exists():
                run_id, n = f"{base}-{n}", n + 1
        folder = self.reports_dir / slug(run_id, 120)
        if (folder / "config.json").exists():
            raise InputError(f"Run {folder.name!r} already exists; resume it or pick another id.")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def list_runs(self, live: str | None = None) -> list[RunInfo]:
        """Past and current runs, newest first; ``live`` is the run this process is writing now."""
        runs = []
        for folder in self.reports_dir.iterdir():
            cfg_path = folder / "config.json"
            if not folder.is_dir() or not cfg_path.is_file():
                continue
            try:
                cfg = _json(cfg_path)
                status = _json(folder / "status.json")
            except (OSError, json.JSONDecodeError):
                continue
            state = status.get("state", "unknown")
            if state == "running" and live != folder.name:
                state = "interrupted"  # no live process is writing it: crashed or killed
            runs.append(
                RunInfo(
                    run_id=folder.name,
                    folder=folder,
                    name=cfg.get("config", {}).get("name", ""),
                    created=cfg.get("created", ""),
                    state=state,
                    done=int(status.get("done", 0)),
                    total=int(status.get("total", 0)),
                    sentences=cfg.get("config", {}).get("sentences", ""),
                    systems=[s["name"] for s in cfg.get("systems", [])],
                    has_report=(folder / "report.html").is_file(),
                    message=str(status.get("message", "")),
                )
            )
        runs.sort(key=lambda r: (r.created, r.run_id), reverse=True)
        return runs

    def meta(self, run_id: str) -> dict[str, Any]:
        """A run's config.json."""
        return _json(self.run_dir(run_id) / "config.json")

    def status(self, run_id: str) -> dict[str, Any]:
        """A run's status.json."""
        return _json(self.run_dir(run_id) / "status.json")

    def load_run(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
        """(config.json, results rows, summary.json or None) of a run."""
        folder = self.run_dir(run_id)
        summary_path = folder / "summary.json"
        summary = _json(summary_path) if summary_path.is_file() else None
        return _json(folder / "config.json"), read_results(folder / "results.csv"), summary


def write_status(folder: Path, state: str, done: int, total: int, message: str = "") -> RunProgress:
    """Record a run's state in status.json and return it as progress."""
    write_json(
        folder / "status.json",
        {"state": state, "done": done, "total": total, "updated": utc_now(), "message": message},
    )
    return RunProgress(folder.name, folder, done, total, state, message)
