"""notebooks/train.ipynb runs end to end on the tiny cohort: train, metrics, plots, MLflow, registry, Grad-CAM."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]


def test_train_notebook_runs(cohort, tmp_path, monkeypatch):
    shutil.copyfile(cohort.url.split("sqlite:///", 1)[1], tmp_path / "labels.sqlite")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("DEEPEPIL_DATABASE_URL", f"sqlite:///{tmp_path / 'labels.sqlite'}")
    monkeypatch.setenv("DEEPEPIL_USER", cohort.admin)
    monkeypatch.setenv("DEEPEPIL_SNAPSHOT", "ml-tests")
    monkeypatch.setenv("DEEPEPIL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel shares the machine's cores
    nb = nbformat.read(ROOT / "notebooks" / "train.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / "train.executed.ipynb")  # to look at when this fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "refused: unknown key 'trian'" in text and "did you mean 'train'" in text
    assert "balanced_accuracy" in text and "registered syndrome-notebook:1 with alias candidate" in text
    assert "snapshot ml-tests " + cohort.snapshot.content_hash[:32] in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # confusion matrix, ROC, Grad-CAM
    from deepepil.ml.tracking import resolve_ref

    assert resolve_ref("syndrome-notebook@candidate", tracking).version == "1"
    assert list((tmp_path / "runs").glob("*/explanations/*.npz"))
