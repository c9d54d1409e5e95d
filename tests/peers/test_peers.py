"""The peers' client suites against the tiny app: only when PEER_SUITES_DIR names their checkouts.

A normal ``pytest`` run skips this (the checkouts are not part of the repo and a full run takes ~15
minutes). With them: fails when any peer test fails for a reason classed OURS or not yet classed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PEERS = os.environ.get("PEER_SUITES_DIR")
pytestmark = pytest.mark.skipif(not PEERS, reason="PEER_SUITES_DIR not set (see tests/peers/README.md)")


def test_peer_suites_fail_only_on_their_own_extensions(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "peers.md"
    run = subprocess.run(
        [sys.executable, "-m", "tests.peers.run_peers", "--peers-dir", str(PEERS), "--out", str(out)],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, f"{run.stderr[-3000:]}\n{out.read_text() if out.is_file() else ''}"
