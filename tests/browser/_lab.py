"""Real parts for the browser tests and the UI benchmark: data, a JupyterLab server, Chromium, Lab helpers.

* :func:`build_store` makes a small synthetic cohort and ingests it (a recording store folder);
* :func:`populate_label_db` makes a label database for it: clinics ``North`` and ``South``, a
  clinician ``clinician`` of North, ``carl`` of South, a data scientist ``ds`` and an admin
  ``root``; the first recording in North, the second in South; one model suggestion on the
  North recording;
* :class:`LabServer` runs ``jupyter lab`` as a subprocess with a fresh home, settings and
  workspace, on a free port with a token;
* :func:`open_lab`, :func:`open_notebook`, :func:`run_all_cells`, :func:`cell_count` drive
  JupyterLab through ``window.jupyterapp`` (the server runs with ``expose_app_in_browser``).

Also used by ``bench/bench_ui.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from deepepil.processes import die_with_parent, free_port, stop_process_group

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
NOTEBOOKS = ROOT / "notebooks"

#: The browser page size of every test, in CSS pixels.
VIEWPORT = {"width": 1600, "height": 1000}

CLINICIAN = "clinician"
#: The model suggestion put on the North recording: region, label, frames [start, end).
SUGGESTION = {"region": "head/face", "label": "head version", "laterality": "left",
              "start_frame": 30, "end_frame": 75, "score": 0.87, "model_version": "moi-test:1"}


@dataclasses.dataclass(frozen=True)
class Cohort:
    """The ingested synthetic recordings: ``stores[0]`` goes to clinic North, ``stores[1]`` to South."""

    store: Path
    stores: tuple[Path, ...]
    fps: float
    n_frames: int


def build_store(workdir: Path, *, seconds: float = 6.0, size: str = "small", seed: int = 3) -> Cohort:
    """Synthesize two patients (one recording each, MKV) and ingest them into ``workdir/store``."""
    import deepepil
    from deepepil.recordings.ingest import ingest
    from deepepil.synthetic.cohort import synthesize_cohort

    mkvs = synthesize_cohort(workdir / "raw", patients=2, seconds=seconds, seed=seed, size=size,
                             formats=("mkv",), progress=False)
    stores = tuple(ingest(mkv, workdir / "store", progress=False) for mkv in sorted(mkvs))
    ds = deepepil.open_recording(stores[0])
    return Cohort(store=workdir / "store", stores=stores, fps=float(ds.attrs["fps"]), n_frames=int(ds.sizes["time"]))


@dataclasses.dataclass(frozen=True)
class LabelIds:
    """Ids in a populated label database."""

    recording: int         # North, visible to ``clinician``
    other_recording: int   # South, not visible to ``clinician``
    suggestion: int        # pending suggestion on ``recording`` (:data:`SUGGESTION`)
    patient_code: str      # of ``recording``
    other_patient_code: str


def populate_label_db(url: str, cohort: Cohort) -> LabelIds:
    """Upgrade an empty database at ``url`` and fill it (see the module docstring)."""
    from deepepil.labels import admin, catalog, schema
    from deepepil.labels.service import connect

    schema.upgrade(url)
    admin.add_clinic("North", url=url)
    admin.add_clinic("South", url=url)
    admin.add_user(CLINICIAN, "clinician", "North", url=url)
    admin.add_user("carl", "clinician", "South", url=url)
    admin.add_user("ds", "data_scientist", url=url)
    admin.add_user("root", "admin", url=url)
    codes = [path.stem.split("_")[0] for path in cohort.stores]  # SYN-XXXXXX_S01 -> SYN-XXXXXX
    rec = catalog.register_recording(cohort.stores[0], "North", codes[0], url, user="root")
    other = catalog.register_recording(cohort.stores[1], "South", codes[1], url, user="root")
    with connect(url, user="ds") as store:
        suggestion = store.add_suggestion(rec, **SUGGESTION)
    return LabelIds(recording=rec, other_recording=other, suggestion=suggestion.id,
                    patient_code=codes[0], other_patient_code=codes[1])


# JupyterLab user settings: no news, no update check, no popups that would cover the app.
_LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/apputils-extension/announcements.jupyterlab-settings": {},
}


class LabServer:
    """``jupyter lab`` in a subprocess, on 127.0.0.1, a free port and a random token.

    Parameters
    ----------
    workdir : Path
        Holds the server's root folder (``workdir/root``, where notebooks are copied), a fresh
        home, Jupyter config, runtime, settings and workspaces folders, and ``lab.log``.
    env : dict
        Extra environment for the server and its kernels (``DEEPEPIL_DATABASE_URL``, ...).
    """

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = Path(workdir)
        self.root_dir = self.workdir / "root"
        self.log_path = self.workdir / "lab.log"
        self.extra_env = dict(env)
        self.port = 0
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_notebook(self, source: Path, name: str | None = None) -> str:
        """Copy a notebook into the root folder; return its path relative to the root."""
        self.root_dir.mkdir(parents=True, exist_ok=True)
        target = self.root_dir / (name or source.name)
        shutil.copyfile(source, target)
        return target.name

    def start(self, timeout_seconds: float = 180.0) -> "LabServer":
        """Start the server and wait until its REST API answers; raise with the log's tail when it does not."""
        for sub in ("root", "home", "config", "data", "runtime", "workspaces", "settings", "ipython"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        settings = self.workdir / "settings"
        for rel, value in _LAB_SETTINGS.items():
            path = settings / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
        env.update(
            HOME=str(self.workdir / "home"), JUPYTER_CONFIG_DIR=str(self.workdir / "config"),
            JUPYTER_DATA_DIR=str(self.workdir / "data"), JUPYTER_RUNTIME_DIR=str(self.workdir / "runtime"),
            JUPYTERLAB_WORKSPACES_DIR=str(self.workdir / "workspaces"),
            JUPYTERLAB_SETTINGS_DIR=str(settings), IPYTHONDIR=str(self.workdir / "ipython"),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        self.port = free_port()
        cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
            f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.port_retries=0", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={self.workdir / 'workspaces'}",
            "--ServerApp.open_browser=False",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.root_dir, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.api("GET", "/api/status")
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer within {timeout_seconds:.0f} s:\n{self.log_tail()}")

    def api(self, method: str, path: str, body: Any = None, timeout_seconds: float = 30.0) -> Any:
        """Call the server's REST API; return the decoded JSON (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def shutdown_kernels(self) -> None:
        """Shut down every kernel session (a test's kernels do not outlive it)."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def log_tail(self, n_chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-n_chars:] if self.log_path.exists() else ""

    def stop(self, timeout_seconds: float = 30.0) -> None:
        """Stop the server (SIGTERM: it shuts its kernels down), then kill its process group if it lingers."""
        if self.proc is None:
            return
        stop_process_group(self.proc, timeout_seconds)  # kernels go with the server's process group
        self._log.close()
        self.proc = None

    def __enter__(self) -> "LabServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- JupyterLab, driven through window.jupyterapp --------------------------------------------------

def open_lab(page: Any, server: LabServer, timeout_ms: float = 120_000) -> None:
    """Load JupyterLab with a reset workspace and wait until it is restored."""
    page.goto(f"{server.url}/lab?reset&token={server.token}", timeout=timeout_ms)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=timeout_ms)
    page.evaluate("() => { window.__bt_restored = false; "
                  "window.jupyterapp.restored.then(() => { window.__bt_restored = true; }); }")
    page.wait_for_function("() => window.__bt_restored === true", timeout=timeout_ms)


def open_notebook(page: Any, path: str, timeout_ms: float = 120_000) -> None:
    """Open a notebook (path relative to the server root) and wait until its kernel is idle."""
    page.evaluate(
        """(path) => { window.__bt_open_error = null;
            window.jupyterapp.commands.execute('docmanager:open', {path, factory: 'Notebook'})
                .then(panel => window.jupyterapp.shell.activateById(panel.id))
                .catch(err => { window.__bt_open_error = String(err); }); }""",
        path,
    )
    page.wait_for_function(
        """(path) => { if (window.__bt_open_error) throw new Error(window.__bt_open_error);
                   const w = window.jupyterapp.shell.currentWidget;
                   const k = w && w.context && w.context.path === path && w.sessionContext.session
                             && w.sessionContext.session.kernel;
                   return k && k.connectionStatus === 'connected' && k.status === 'idle'; }""",
        arg=path, timeout=timeout_ms, polling=200,
    )


def run_all_cells(page: Any, timeout_ms: float = 180_000) -> None:
    """Run every cell of the current notebook and wait until the kernel has run them all."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    wait_notebook_ran(page, timeout_ms)


def wait_notebook_ran(page: Any, timeout_ms: float = 180_000) -> None:
    """Wait until no cell of the current notebook is queued or running, and its kernel is idle."""
    page.wait_for_function(
        """() => { const w = window.jupyterapp.shell.currentWidget;
                   if (!w || !w.content) return false;
                   const k = w.sessionContext.session && w.sessionContext.session.kernel;
                   const busy = w.content.widgets.some(c => c.model.type === 'code'
                        && (c.model.executionState === 'running' || c.promptNode?.textContent.includes('*')));
                   const unrun = w.content.widgets.some(c => c.model.type === 'code' && !c.model.executionCount
                        && c.model.sharedModel.getSource().trim() !== '');
                   return k && k.status === 'idle' && !busy && !unrun; }""",
        timeout=timeout_ms, polling=200,
    )


def cell_count(page: Any) -> int:
    """Number of cells in the current notebook."""
    return page.evaluate("() => window.jupyterapp.shell.currentWidget.content.model.cells.length")


def notebook_outputs_text(page: Any) -> str:
    """The text of every rendered output of the current notebook."""
    return page.evaluate(
        "() => Array.from(window.jupyterapp.shell.currentWidget.node.querySelectorAll('.jp-OutputArea-output'))"
        ".map(n => n.innerText).join('\\n')"
    )


def notebook_errors(page: Any) -> list[str]:
    """``ename: evalue`` of every error output in the current notebook."""
    return page.evaluate(
        """() => window.jupyterapp.shell.currentWidget.content.widgets
              .filter(c => c.model.type === 'code')
              .flatMap(c => c.model.outputs.toJSON())
              .filter(o => o.output_type === 'error')
              .map(o => `${o.ename}: ${o.evalue}`)"""
    )
