"""``deepepil demo``: the one command from a clean clone, run as a user runs it, stopped with Ctrl+C."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from deepepil.labels import admin
from hub.accounts import list_accounts
from hub.client import HubClient
from deepepil.processes import free_port

pytestmark = pytest.mark.timeout(900)

ARGS = ("--patients", "2", "--seconds", "1", "--size", "tiny")


def _clean_env() -> dict[str, str]:
    # the demo must not pick up a database the developer configured
    return {k: v for k, v in os.environ.items() if not k.startswith("DEEPEPIL_")}


def _demo(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepepil.cli", "demo", *args], capture_output=True, text=True,
                          timeout=600, env=_clean_env(), **kwargs)


@pytest.mark.slow
def test_the_demo_prepares_clinics_accounts_and_recordings_once(tmp_path):
    work = tmp_path / "demo"
    out = _demo("--dir", str(work), *ARGS, "--no-start")
    assert out.returncode == 0, out.stderr
    url = f"sqlite:///{work / 'labels.sqlite'}"
    assert set(admin.list_clinics(url=url)["name"]) == {"North", "South"}
    users = admin.list_users(url=url).set_index("username")
    assert users.loc["ana", "role"] == "clinician" and users.loc["ana", "clinic"] == "North"
    assert users.loc["ben", "clinic"] == "South" and users.loc["dana", "role"] == "data_scientist"
    assert users.loc["alex", "role"] == "admin"
    from deepepil.labels.catalog import catalog

    recordings = catalog(url, user="alex")
    assert sorted(recordings["clinic"]) == ["North", "South"]
    hub_db = f"sqlite:///{work / 'hub' / 'jupyterhub.sqlite'}"
    assert list_accounts(hub_db_url=hub_db) == [("alex", True), ("ana", True), ("ben", True), ("dana", True)]
    passwords_file = work / "hub" / "demo-accounts.json"
    assert stat.S_IMODE(passwords_file.stat().st_mode) == 0o600
    passwords = json.loads(passwords_file.read_text())
    again = _demo("--dir", str(work), *ARGS, "--no-start")
    assert again.returncode == 0, again.stderr
    assert "ingesting" not in again.stdout and json.loads(passwords_file.read_text()) == passwords
    assert len(catalog(url, user="alex")) == 2


def _processes_under(folder: Path) -> set[int]:
    """Processes whose working directory is in ``folder`` (the hub, the servers, their kernels)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(Path(os.readlink(entry / "cwd"))).startswith(str(folder)):
                    found.add(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.slow
def test_the_demo_hub_serves_the_printed_accounts_and_ctrl_c_stops_everything(tmp_path):
    work, port = tmp_path / "demo", free_port()
    demo = subprocess.Popen([sys.executable, "-m", "deepepil.cli", "demo", "--dir", str(work), *ARGS,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_clean_env())
    try:
        lines = []
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            assert line, "the demo exited early:\n" + "".join(lines)
            lines.append(line)
            if "Ctrl+C stops" in line:
                break
        printed = "".join(lines)
        assert f"http://127.0.0.1:{port}" in printed
        rows = {m[1]: m[2] for m in re.finditer(r"^(\w+)\s+(\S+)\s+(clinician|data_scientist|admin)", printed, re.M)}
        assert set(rows) == {"ana", "ben", "dana", "alex"}
        client = HubClient(f"http://127.0.0.1:{port}")
        client.login("ana", rows["ana"])
        assert client.logged_in
        client.start_server()
        with client.kernel() as kernel:
            assert kernel.execute("print(1 + 1)")["stdout"].strip() == "2"
        running = _processes_under(work)
        assert len(running) >= 2  # the hub and ana's server at least

        demo.send_signal(signal.SIGINT)  # what Ctrl+C in the terminal does
        assert demo.wait(timeout=120) == 0
        rest = demo.stdout.read()
        assert "stopping the hub" in rest
        time.sleep(1)
        assert not (_processes_under(work) & running), "hub, proxy or servers left running"
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/hub/api", timeout=10)
    finally:
        if demo.poll() is None:
            demo.kill()
