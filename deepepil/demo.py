"""The demo: a synthetic cohort, ingested, opened in JupyterLab on 127.0.0.1.

``deepepil demo`` (what the README's first command runs) generates the cohort once,
ingests every recording that is not in the store yet (so a rerun is quick), and starts
JupyterLab on ``notebooks/explore.ipynb`` with ``DEEPEPIL_STORE`` pointing at the store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["prepare_demo_data", "run_demo"]

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def prepare_demo_data(
    workdir: Path, *, patients: int = 4, seconds: float = 20.0, size: str = "small", seed: int = 0
) -> Path:
    """Generate (once) and ingest (what is missing) a synthetic cohort; return the store folder."""
    from deepepil.recordings.ingest import ingest
    from deepepil.synthetic.cohort import synthesize_cohort

    raw = workdir / "raw"
    store = workdir / "store"
    if not (raw / "cohort.csv").exists():
        if raw.exists():
            shutil.rmtree(raw)  # an interrupted generation: start it again
        print(f"generating {patients} synthetic patients ({seconds:g} s each, size {size}) in {raw}")
        synthesize_cohort(raw, patients=patients, seconds=seconds, seed=seed, size=size, formats=("mkv",))
    for mkv in sorted(raw.glob("*.mkv")):
        if not (store / f"{mkv.stem}.zarr").exists():
            print(f"ingesting {mkv.name}")
            ingest(mkv, store)
    return store


def run_demo(
    workdir: Path, *, port: int = 8888, patients: int = 4, seconds: float = 20.0, size: str = "small",
    open_lab: bool = True,
) -> int:
    """Prepare the demo data and run JupyterLab on 127.0.0.1 until interrupted."""
    workdir = workdir.resolve()
    store = prepare_demo_data(workdir, patients=patients, seconds=seconds, size=size)
    print(f"recording store ready: {store}")
    if not open_lab:
        return 0
    env = dict(os.environ, DEEPEPIL_STORE=str(store))
    cmd = [
        sys.executable, "-m", "jupyterlab", "--ip=127.0.0.1", f"--port={port}", "--no-browser",
        f"--ServerApp.root_dir={NOTEBOOKS_DIR.parent}", "--LabApp.default_url=/lab/tree/notebooks/explore.ipynb",
        # clinic networks are closed: no news feed, no update checks
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    print(f"starting JupyterLab on http://127.0.0.1:{port}/lab/tree/notebooks/explore.ipynb (Ctrl+C stops it)")
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
