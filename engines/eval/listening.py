"""Blind listening tests on a run's audio: A/B preference and/or 1-5 MOS, answers saved per trial.

A test lives in ``<run>/listening/<test-id>/``: ``plan.json`` (trials, sides shuffled by seed),
``answers.json`` and ``answers.csv`` (one row per listener and trial) and ``summary.json``.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from engines.core.audio import write_json, write_text
from engines.core.errors import InputError
from engines.core.names import ID_MAX, shown_id, slug
from engines.core.provenance import name_stamp, utc_now
from engines.eval.store import RunStore
from engines.scoring import metrics


class ListeningTests:
    """The listening tests of the runs in one store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def _dir(self, run_id: str, test_id: str) -> Path:
        folder = self.store.run_dir(run_id) / "listening"
        if not test_id or "/" in test_id or "\\" in test_id or test_id.startswith(".") or len(test_id) > ID_MAX:
            raise InputError(f"Listening test id {shown_id(test_id)} is not allowed.")
        return folder / test_id

    def test_ids(self, run_id: str) -> list[str]:
        folder = self.store.run_dir(run_id) / "listening"
        return sorted(p.name for p in folder.iterdir() if (p / "plan.json").is_file()) if folder.is_dir() else []

    def create(
        self, run_id: str, system_a: str, system_b: str, *, mode: str = "ab+mos", max_items: int = 20, seed: int = 0
    ) -> str:
        """A blind test: the same sentences from two systems, in random order, sides shuffled per trial.

        Args:
            run_id: the eval run with both systems' audio.
            system_a: a system name (may be "ground truth").
            system_b: another system name.
            mode: "ab" (preference), "mos" (1-5 ratings of both clips) or "ab+mos".
            max_items: trials (sentences) at most.
            seed: order and side shuffling.

        Returns:
            The test id (folder under the run's listening/).

        Raises:
            InputError: same system twice, unknown system, or no sentence both systems have.
        """
        if mode not in ("ab", "mos", "ab+mos"):
            raise InputError(f"Mode must be 'ab', 'mos' or 'ab+mos', got {mode!r}.")
        if system_a == system_b:
            raise InputError("Pick two different systems for a listening test.")
        _, rows, _ = self.store.load_run(run_id)
        systems = sorted({r["system"] for r in rows})
        for s in (system_a, system_b):
            if s not in systems:
                raise InputError(f"System {s!r} is not in run {run_id}. Systems: {', '.join(systems)}.")
        clips: dict[str, dict[str, dict]] = {system_a: {}, system_b: {}}
        for r in rows:
            if r["system"] in clips and r["repeat"] == 0:
                clips[r["system"]][r["sentence_id"]] = r
        common = sorted(set(clips[system_a]) & set(clips[system_b]))
        if not common:
            raise InputError(f"{system_a!r} and {system_b!r} share no sentence in run {run_id}.")
        rng = random.Random(seed)
        rng.shuffle(common)
        trials = []
        for i, sid in enumerate(common[: max(1, int(max_items))]):
            pair = [system_a, system_b]
            rng.shuffle(pair)
            trials.append(
                {
                    "index": i,
                    "sentence_id": sid,
                    "text": clips[system_a][sid]["ref_text"],
                    "clip1": clips[pair[0]][sid]["audio_file"],
                    "clip2": clips[pair[1]][sid]["audio_file"],
                    "system1": pair[0],
                    "system2": pair[1],
                }
            )
        test_id = f"{name_stamp()}-{slug(system_a, 16)}-vs-{slug(system_b, 16)}"
        folder = self._dir(run_id, test_id)
        n = 2
        while folder.exists():
            folder = self._dir(run_id, f"{test_id}-{n}")
            n += 1
        write_json(
            folder / "plan.json",
            {
                "run_id": run_id,
                "test_id": folder.name,
                "created": utc_now(),
                "mode": mode,
                "seed": seed,
                "system_a": system_a,
                "system_b": system_b,
                "trials": trials,
            },
        )
        return folder.name

    def plan(self, run_id: str, test_id: str) -> dict[str, Any]:
        path = self._dir(run_id, test_id) / "plan.json"
        if not path.is_file():
            raise InputError(f"No listening test {test_id!r} in run {run_id!r}.")
        return json.loads(path.read_text(encoding="utf-8"))

    def answers(self, run_id: str, test_id: str) -> list[dict[str, Any]]:
        path = self._dir(run_id, test_id) / "answers.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []

    def record(
        self,
        run_id: str,
        test_id: str,
        index: int,
        *,
        preference: str | None = None,
        mos1: float | None = None,
        mos2: float | None = None,
        listener: str = "",
    ) -> dict[str, Any]:
        """Save one trial's answer (answers.json and answers.csv, rewritten atomically).

        Args:
            run_id: the eval run.
            test_id: the listening test.
            index: trial index.
            preference: "1" / "2" (the clip as played) or "same"; required in "ab" modes.
            mos1: 1-5 rating of clip 1; required in "mos" modes.
            mos2: 1-5 rating of clip 2.
            listener: optional name.

        Returns:
            The stored answer (with the system each clip was, unblinded).

        Raises:
            InputError: unknown trial, or a missing/out-of-range answer for the test's mode.
        """
        plan = self.plan(run_id, test_id)
        trials = plan["trials"]
        if not 0 <= int(index) < len(trials):
            raise InputError(f"Trial {index} does not exist (the test has {len(trials)}).")
        trial = trials[int(index)]
        mode = plan["mode"]
        if "ab" in mode and preference not in ("1", "2", "same"):
            raise InputError("Choose which clip sounds better (clip 1, clip 2 or about the same).")
        if "mos" in mode:
            for label, v in (("clip 1", mos1), ("clip 2", mos2)):
                if v is None or not 1 <= float(v) <= 5:
                    raise InputError(f"Rate {label} from 1 (bad) to 5 (excellent).")
        preferred = None
        if preference in ("1", "2"):
            preferred = trial[f"system{preference}"]
        elif preference == "same":
            preferred = "same"
        answer = {
            "index": int(index),
            "sentence_id": trial["sentence_id"],
            "listener": listener,
            "preference": preference or "",
            "preferred_system": preferred or "",
            "system1": trial["system1"],
            "system2": trial["system2"],
            "mos1": float(mos1) if mos1 is not None else None,
            "mos2": float(mos2) if mos2 is not None else None,
            "time": utc_now(),
        }
        answers = [
            a
            for a in self.answers(run_id, test_id)
            if not (a["index"] == answer["index"] and a.get("listener", "") == listener)
        ]
        answers.append(answer)
        answers.sort(key=lambda a: (a.get("listener", ""), a["index"]))
        folder = self._dir(run_id, test_id)
        write_json(folder / "answers.json", answers)
        buf = io.StringIO()
        fields = [
            "index",
            "sentence_id",
            "listener",
            "preference",
            "preferred_system",
            "system1",
            "system2",
            "mos1",
            "mos2",
            "time",
        ]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for a in answers:
            writer.writerow({k: "" if a.get(k) is None else a.get(k) for k in fields})
        write_text(folder / "answers.csv", buf.getvalue())
        write_json(folder / "summary.json", self.summary(run_id, test_id))
        return answer

    def summary(self, run_id: str, test_id: str, n_boot: int = 1000) -> dict[str, Any]:
        """Preference shares (with CIs) and MOS +- CI per system, from the saved answers."""
        plan = self.plan(run_id, test_id)
        answers = self.answers(run_id, test_id)
        a, b = plan["system_a"], plan["system_b"]
        seed = int(plan.get("seed", 0))
        prefs = [x for x in answers if x.get("preferred_system")]
        out: dict[str, Any] = {
            "test_id": test_id,
            "mode": plan["mode"],
            "system_a": a,
            "system_b": b,
            "answered": len(answers),
            "trials": len(plan["trials"]),
        }
        if prefs:
            out["preference"] = {
                name: metrics.bootstrap(
                    [1.0 if x["preferred_system"] == name else 0.0 for x in prefs], np.mean, n_boot, seed
                ).as_dict()
                for name in (a, b, "same")
            }
        mos: dict[str, list[float]] = {a: [], b: []}
        for x in answers:
            for k in ("1", "2"):
                v = x.get(f"mos{k}")
                if v is not None:
                    mos[x[f"system{k}"]].append(float(v))
        if any(mos.values()):
            out["mos"] = {name: metrics.bootstrap(vals, np.mean, n_boot, seed).as_dict() for name, vals in mos.items()}
        return out


# --------------------------------------------------------------------------- headless command
