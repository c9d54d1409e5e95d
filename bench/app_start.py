"""App start: import time of main_launcher, time until the page answers, idle memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from bench.common import ROOT, Row


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (MB)."""
    import psutil

    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def run(repeats: int = 3) -> list[Row]:
    rows: list[Row] = []
    code = "import time; t=time.perf_counter(); import main_launcher; print(time.perf_counter()-t)"
    imports = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        imports.append(float(out.stdout.strip().splitlines()[-1]))
    rows.append(
        Row(
            "start",
            "import main_launcher (median)",
            sorted(imports)[len(imports) // 2],
            "s",
            f"{repeats} fresh processes; target < 5 s",
        )
    )

    # Real models, not tiny: tiny mode builds its models on first start, which is not app start.
    port = _free_port()
    with tempfile.TemporaryDirectory() as workspace:
        env = dict(os.environ, XTTSLAB_WORKSPACE=workspace, GRADIO_ANALYTICS_ENABLED="False")
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "main_launcher.py", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        answered = None
        try:
            while time.perf_counter() - start < 120 and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                        if resp.status == 200:
                            answered = time.perf_counter() - start
                            break
                except OSError:
                    time.sleep(0.1)
            time.sleep(2.0)  # let start-up settle before reading idle memory
            idle = _rss_mb(proc.pid) if proc.poll() is None else None
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    rows.append(
        Row("start", "launch until page answers HTTP 200", answered, "s", "python main_launcher.py; target < 10 s")
    )
    rows.append(Row("start", "idle memory, no model loaded (RSS)", idle, "MB", "target < 1024 MB"))
    return rows
