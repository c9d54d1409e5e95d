"""examples/xtts_lab_tour.ipynb runs headless from top to bottom (nbclient), in a fresh workspace.

The kernel is this interpreter (a kernelspec written for the test, not whatever "python3" a machine has), its
working directory and workspace are temporary folders, and a failing cell fails the test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "xtts_lab_tour.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_notebook_runs_headless(tmp_path, tiny_models):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    workspace = tmp_path / "workspace"
    (workspace / "tiny-models").mkdir(parents=True)
    for item in (tiny_models.xtts_dir, tiny_models.whisper_path):  # reuse the session's tiny models
        (workspace / "tiny-models" / item.name).symlink_to(item, target_is_directory=item.is_dir())
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    kernels = tmp_path / "kernels"
    (kernels / "xttslab").mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "XTTS Lab (test)",
        "language": "python",
        "env": {
            "XTTSLAB_WORKSPACE": str(workspace),
            "XTTSLAB_DATASETS_DIR": str(tmp_path / "datasets"),
            "XTTSLAB_DEVICE": "cpu",
            "XTTSLAB_REPO": str(ROOT),
            "MPLBACKEND": "Agg",
            "OMP_WAIT_POLICY": "PASSIVE",
        },
    }
    (kernels / "xttslab" / "kernel.json").write_text(json.dumps(spec))
    km = KernelManager(kernel_name="xttslab", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError naming the cell when one fails

    assert km.kernel_spec.argv[0] == sys.executable
    outputs = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    assert f"workspace: {workspace}" in outputs  # the kernel used the test's workspace, not the user's
    wavs = sorted((workspace / "outputs" / "tts").glob("*.wav"))
    assert len(wavs) == 2  # the plain and the streamed synthesis
    sidecars = [json.loads(p.with_suffix(".json").read_text()) for p in wavs]
    assert sorted(s["streamed"] for s in sidecars) == [False, True]
    figure = workspace / "notebook_tour.png"
    assert figure.is_file() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "done 4/4 utterances" in outputs  # 2 sentences x 2 speakers
    assert not list(workdir.iterdir())  # nothing written to the working directory
