"""Hub benchmarks: login to a ready labeling notebook, and many users logging in and spawning at once.

    python bench/bench_hub.py                   # 20 users at once; 3 login-to-notebook runs
    python bench/bench_hub.py --users 5 --runs 1  # a quick smoke run

A real hub (``jupyterhub_config.py``: NativeAuthenticator, configurable-http-proxy, one
JupyterLab server per user) runs on 127.0.0.1 with an SQLite label database and a tiny
synthetic cohort, as ``deepepil demo`` does. Every step goes through the public URL as a
browser would: the login form (with its XSRF token), the spawn, a kernel session for
``labeling.ipynb`` over the kernel websocket, and the notebook's cells executed there.

ready     login -> server ready -> kernel idle -> labeling notebook executed, for fresh users
          one at a time. Against: a plain ``jupyter lab`` started by hand (``deepepil demo --lab``):
          process start -> server answering -> kernel idle -> the same notebook executed.
spawn     ``--users`` users log in and spawn at the same moment (one thread each); each user's
          latency from login to server ready, and the wall time until all are ready. Against:
          the same users logging in and spawning one after another.

Results print as markdown (``--out`` also writes them to a file).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent

from _measure import Table, machine  # noqa: E402

from deepepil.demo import (  # noqa: E402
    DEMO_ACCOUNTS,
    NOTEBOOKS_DIR,
    DemoAccount,
    hub_environment,
    prepare_demo_data,
    prepare_hub_accounts,
    prepare_label_database,
)
from hub.client import HubClient, RemoteKernel  # noqa: E402
from deepepil.processes import free_port  # noqa: E402
from hub.launcher import HubProcess  # noqa: E402

LABELING = NOTEBOOKS_DIR / "labeling.ipynb"


def _read_notebook() -> dict:
    import json

    return json.loads(LABELING.read_text())


def _check_outputs(outputs: list[list[dict]]) -> None:
    errors = [o for cell in outputs for o in cell if o["output_type"] == "error"]
    if errors:
        raise RuntimeError(f"the labeling notebook failed: {errors[0].get('ename')}: {errors[0].get('evalue')}")


def login_to_notebook(url: str, username: str, password: str) -> dict[str, float]:
    """Seconds of each step from the login form to an executed labeling notebook in the user's server."""
    t0 = time.perf_counter()
    client = HubClient(url, timeout_seconds=300)
    client.login(username, password)
    if not client.logged_in:
        raise RuntimeError(f"login of {username} failed")
    t_login = time.perf_counter()
    client.start_server(timeout_seconds=600)
    t_spawn = time.perf_counter()
    notebook = client.read_notebook("labeling.ipynb")
    with client.kernel("labeling.ipynb", timeout_seconds=600) as kernel:
        t_kernel = time.perf_counter()
        _check_outputs(kernel.run_notebook(notebook))
        t_done = time.perf_counter()
    return {"login": t_login - t0, "spawn": t_spawn - t_login, "kernel": t_kernel - t_spawn,
            "notebook": t_done - t_kernel, "total": t_done - t0}


def plain_lab_to_notebook(workdir: Path, label_url: str, store: Path) -> dict[str, float]:
    """The same, with a plain ``jupyter lab`` started by hand in a folder holding the notebook."""
    root = workdir / f"plain-{time.monotonic_ns()}"
    root.mkdir()
    shutil.copy(LABELING, root / "labeling.ipynb")
    port, token = free_port(), "bench-token"
    env = {**os.environ, "DEEPEPIL_DATABASE_URL": label_url, "DEEPEPIL_STORE": str(store), "DEEPEPIL_USER": "ana",
           "HOME": str(root)}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"token {token}"}
    try:
        while True:
            try:
                if requests.get(f"{base}/api/status", headers=headers, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("jupyter lab exited")
            time.sleep(0.1)
        t_up = time.perf_counter()
        model = {"path": "labeling.ipynb", "type": "notebook", "name": "labeling.ipynb", "kernel": {"name": "python3"}}
        session = requests.post(f"{base}/api/sessions", headers=headers, timeout=60, json=model).json()
        kernel = RemoteKernel(f"ws://127.0.0.1:{port}/api/kernels/{session['kernel']['id']}/channels", token,
                              timeout_seconds=600)
        try:
            kernel.wait_idle()
            t_kernel = time.perf_counter()
            _check_outputs(kernel.run_notebook(_read_notebook()))
            t_done = time.perf_counter()
        finally:
            kernel.close()
    finally:
        proc.terminate()
        proc.wait(60)
    return {"login": 0.0, "spawn": t_up - t0, "kernel": t_kernel - t_up, "notebook": t_done - t_kernel,
            "total": t_done - t0}


def login_and_spawn(url: str, username: str, password: str) -> float:
    """Seconds from submitting the login form to the user's server being ready."""
    t0 = time.perf_counter()
    client = HubClient(url, timeout_seconds=600)
    client.login(username, password)
    if not client.logged_in:
        raise RuntimeError(f"login of {username} failed")
    client.start_server(timeout_seconds=900)
    return time.perf_counter() - t0


def stop_all(url: str, accounts: list[str], passwords: dict[str, str]) -> None:
    def stop(name: str) -> None:
        client = HubClient(url, timeout_seconds=300)
        client.login(name, passwords[name])
        client.stop_server(timeout_seconds=300)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(stop, accounts))


def server_rss_mib(homes: Path) -> float:
    """Mean resident memory (MiB) of the processes running in the users' homes (servers, kernels)."""
    total, servers = 0, 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not os.readlink(entry / "cwd").startswith(str(homes)):
                continue
            cmdline = (entry / "cmdline").read_bytes()
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            servers += b"jupyterhub-singleuser" in cmdline
        except OSError:
            continue
    return total / 1024 / max(servers, 1)


def summary(seconds: list[float]) -> tuple[float, float, float]:
    p50, p95 = np.percentile(seconds, [50, 95])
    return float(p50), float(p95), float(max(seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20, help="users spawning at once (default 20)")
    parser.add_argument("--runs", type=int, default=3, help="login-to-notebook runs (default 3)")
    parser.add_argument("--only", choices=("ready", "spawn"), help="run one section")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    if not LABELING.exists():
        raise SystemExit(f"{LABELING} is missing: the benchmark runs the labeling notebook")

    work = Path(tempfile.mkdtemp(prefix="deepepil-bench-hub-"))
    tables: list[Table] = []
    try:
        store = prepare_demo_data(work / "cohort", patients=2, seconds=2, size="tiny", seed=5)
        label_url = f"sqlite:///{work / 'labels.sqlite'}"
        ready_users = [DemoAccount(f"r{i:02d}", "clinician", ("North", "South")[i % 2]) for i in range(args.runs)]
        crowd = [DemoAccount(f"u{i:02d}", "clinician", ("North", "South")[i % 2]) for i in range(args.users)]
        accounts = DEMO_ACCOUNTS + tuple(ready_users) + tuple(crowd)
        prepare_label_database(label_url, store, accounts)
        state = work / "hub"
        passwords = prepare_hub_accounts(f"sqlite:///{state / 'jupyterhub.sqlite'}", state / "accounts.json", accounts)
        hub = HubProcess(state, hub_environment(work, label_url, store, DEEPEPIL_SPAWN_TIMEOUT_SECONDS="900",
                                                DEEPEPIL_CULL_IDLE_SECONDS="0"))
        t0 = time.perf_counter()
        hub.start(timeout_seconds=300)
        print(f"hub up in {time.perf_counter() - t0:.1f} s at {hub.url}", file=sys.stderr)
        try:
            if args.only in (None, "ready"):
                tables.append(_ready_table(hub.url, ready_users, passwords, work, label_url, store))
                print(tables[-1].markdown(), flush=True)
                stop_all(hub.url, [u.username for u in ready_users], passwords)
            if args.only in (None, "spawn"):
                tables.append(_spawn_table(hub.url, [u.username for u in crowd], passwords, work / "home"))
                print(tables[-1].markdown(), flush=True)
        finally:
            hub.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    facts = machine()
    text = "\n".join(t.markdown() for t in tables) + "\nmachine: " + ", ".join(
        f"{k} {facts[k]}" for k in ("nproc", "cpu", "ram", "python") if k in facts) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


def _ready_table(url, users, passwords, work, label_url, store) -> Table:
    hub_runs = [login_to_notebook(url, u.username, passwords[u.username]) for u in users]
    plain_runs = [plain_lab_to_notebook(work, label_url, store) for _ in users]
    table = Table(f"Login to a ready labeling notebook ({len(users)} run(s) each, median seconds)",
                  ["path", "login", "server ready", "kernel idle", "notebook executed", "total", "vs plain lab"])
    plain_total = float(np.median([r["total"] for r in plain_runs]))
    for name, runs in (("hub: login form -> own server -> labeling.ipynb", hub_runs),
                       ("plain `jupyter lab` started by hand (no login, no isolation)", plain_runs)):
        med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        table.add(name, med["login"], med["spawn"], med["kernel"], med["notebook"], med["total"],
                  f"{med['total'] / plain_total:.2f}x")
    table.notes.append("Each hub run is a fresh user: provisioning of the home is included in 'server ready'.")
    return table


def _spawn_table(url, names, passwords, homes) -> Table:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(names)) as pool:
        together = list(pool.map(lambda n: login_and_spawn(url, n, passwords[n]), names))
    wall_together = time.perf_counter() - t0
    rss = server_rss_mib(homes)
    stop_all(url, names, passwords)
    t0 = time.perf_counter()
    one_by_one = [login_and_spawn(url, n, passwords[n]) for n in names]
    wall_sequential = time.perf_counter() - t0
    stop_all(url, names, passwords)
    table = Table(f"{len(names)} users log in and spawn (seconds from login form to server ready)",
                  ["how", "p50", "p95", "max", "all ready after", "vs one after another"])
    for name, lat, wall in (("all at once", together, wall_together),
                            ("one after another", one_by_one, wall_sequential)):
        table.add(name, *summary(lat), wall, f"{wall / wall_sequential:.2f}x")
    table.notes.append(f"Mean resident memory per running server (JupyterLab server, no kernel): {rss:.0f} MiB.")
    return table


if __name__ == "__main__":
    raise SystemExit(main())
