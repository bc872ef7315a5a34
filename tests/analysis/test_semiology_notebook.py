"""notebooks/semiology.ipynb runs end to end, shows its figures and tables, and its accuracy table holds."""

from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

import deepepil
from deepepil.synthetic import make_cohort_profiles, make_recording

ROOT = Path(__file__).resolve().parents[2]


def test_semiology_notebook_runs_and_matches_the_truth(tmp_path, monkeypatch):
    store = tmp_path / "store"
    deepepil.ingest(make_recording(make_cohort_profiles(1, seed=4)[0], 0, seconds=1.0, size="tiny", seed=4), store,
                    progress=False)
    monkeypatch.setenv("DEEPEPIL_STORE", str(store))
    nb = nbformat.read(ROOT / "notebooks" / "semiology.ipynb", as_version=4)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    elapsed = time.perf_counter() - t0

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, errors
    assert elapsed < 60, f"the notebook took {elapsed:.0f} s"
    figures = [o for o in outputs if {"image/png", "application/vnd.jupyter.widget-view+json"} & set(o.get("data", {}))]
    assert len(figures) >= 4, "point cloud, version, trajectory and spectrum figures"
    text = "".join(o.get("text", "") for o in outputs)
    assert re.search(r"frame \d+: \d+ points in", text)
    assert "points (2 cm voxels) from the store" in text
    tables = [o["data"]["text/plain"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("extent_mm" in t and "frequency_hz" in t for t in tables), "the per-MOI table"

    accuracy = tables[-1]
    rows = {}
    for line in accuracy.splitlines():
        match = re.match(r"(.+?)\s+(-?[\d.]+)\s+(-?[\d.]+)$", line.strip())
        if match:
            rows[match[1]] = (float(match[2]), float(match[3]))  # (clicks, exact joints)
    assert set(rows) == {
        "clonic frequency error (Hz)", "manual automatism frequency error (Hz)",
        "version episode, sustained angle error (deg)", "version onset error (frames)",
        "version, 95th percentile abs error (deg)", "version, median abs error (deg)"}
    for name, (clicks, exact) in rows.items():
        limit = {"(Hz)": 0.2, "(deg)": 10.0, "(frames)": 5}[name.rsplit(" ", 1)[1]]
        assert abs(clicks) <= limit and abs(exact) <= limit, (name, clicks, exact)
    assert abs(rows["version, 95th percentile abs error (deg)"][1]) < 2.5  # exact joints: within a few degrees
