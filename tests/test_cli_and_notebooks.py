"""End to end as a user runs it: `deepepil synth` -> `deepepil ingest` -> the explore notebook."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import deepepil

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deepepil.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory) -> Path:
    """A tiny synthetic cohort (2 patients, 2 s), generated and ingested through the command line."""
    work = tmp_path_factory.mktemp("cohort")
    out = run_cli("synth", str(work / "raw"), "--patients", "2", "--seconds", "2", "--seed", "7",
                  "--size", "tiny", "-q")
    assert out.returncode == 0, out.stderr
    mkvs = [Path(line) for line in out.stdout.split()]
    assert len(mkvs) == 2 and all(p.suffix == ".mkv" and p.exists() for p in mkvs)
    rows = list(csv.DictReader(open(work / "raw" / "cohort.csv")))
    assert {r["syndrome"] for r in rows} == {"frontal", "temporal"}
    out = run_cli("ingest", *map(str, mkvs), "--store", str(work / "store"), "--workers", "2", "-q")
    assert out.returncode == 0, out.stderr
    return work / "store"


def test_synth_is_deterministic_for_a_seed(tmp_path):
    a = run_cli("synth", str(tmp_path / "a"), "--patients", "1", "--seconds", "1", "--seed", "11",
                "--size", "tiny", "--formats", "folder", "-q")
    b = run_cli("synth", str(tmp_path / "b"), "--patients", "1", "--seconds", "1", "--seed", "11",
                "--size", "tiny", "--formats", "folder", "-q")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    name = Path(a.stdout.split()[0]).name
    for rel in ("depth/000000.png", "ir/000029.png"):
        assert (tmp_path / "a" / name / rel).read_bytes() == (tmp_path / "b" / name / rel).read_bytes()
    ta = json.loads((tmp_path / "a" / f"{name}.truth.json").read_text())
    tb = json.loads((tmp_path / "b" / f"{name}.truth.json").read_text())
    assert ta == tb


def test_synth_refuses_bad_arguments_with_exit_status():
    out = run_cli("synth", "/tmp/never", "--size", "huge")
    assert out.returncode == 2 and "invalid choice: 'huge'" in out.stderr


def test_ingested_cohort_keeps_ground_truth_frames(tiny_store):
    table = deepepil.list_recordings(tiny_store)
    assert len(table) == 2 and set(table.num_frames) == {60}
    for path in table.path:
        ds = deepepil.open_recording(path)
        assert ds.attrs["calibration"]["device"] == "synthetic_kinect"
        assert ds.attrs["provenance"]["source_format"] == "azure_kinect"
        assert deepepil.verify(path).ok


def test_readers_command_lists_builtins():
    out = run_cli("readers")
    assert out.returncode == 0
    for name in ("azure_kinect", "video", "frames", "numpy"):
        assert name in out.stdout


def test_explore_notebook_runs_and_shows_frames(tiny_store):
    nb = nbformat.read(ROOT / "notebooks" / "explore.ipynb", as_version=4)
    os.environ["DEEPEPIL_STORE"] = str(tiny_store)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        del os.environ["DEEPEPIL_STORE"]
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert html.count("data:image/jpeg;base64,") >= 3, "the notebook must show frames"
    text = "".join(o.get("text", "") for o in outputs)
    assert "60 frames at 30 fps" in text and "frames/s" in text


def test_demo_prepares_store_without_starting_lab(tmp_path):
    out = run_cli("demo", "--dir", str(tmp_path / "demo"), "--patients", "2", "--seconds", "1",
                  "--size", "tiny", "--no-lab")
    assert out.returncode == 0, out.stderr
    assert "recording store ready" in out.stdout
    assert len(deepepil.list_recordings(tmp_path / "demo" / "store")) == 2
    again = run_cli("demo", "--dir", str(tmp_path / "demo"), "--patients", "2", "--seconds", "1",
                    "--size", "tiny", "--no-lab")
    assert again.returncode == 0 and "ingesting" not in again.stdout, "a rerun reuses the data"
