"""The hub started by ``HubProcess`` never outlives what started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

STARTER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from deepepil.demo import hub_environment, prepare_label_database
    from hub.launcher import HubProcess
    root = Path(sys.argv[1])
    url = f"sqlite:///{root / 'labels.sqlite'}"
    prepare_label_database(url, None)
    hub = HubProcess(root / "hub", hub_environment(root, url, root / "store")).start()
    print(hub.process.pid, flush=True)
    time.sleep(600)
''')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_a_killed_starter_takes_the_hub_and_its_proxy_with_it(tmp_path):
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
    try:
        hub_pid = int(starter.stdout.readline())
        proxy_pid = int((tmp_path / "hub" / "jupyterhub-proxy.pid").read_text())
        assert _alive(hub_pid) and _alive(proxy_pid)
        starter.send_signal(signal.SIGKILL)  # no cleanup code of the starter runs
        starter.wait()
        deadline = time.monotonic() + 60
        while (_alive(hub_pid) or _alive(proxy_pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(hub_pid) and not _alive(proxy_pid)
        assert "...done" in (tmp_path / "hub" / "jupyterhub.log").read_text()  # a clean shutdown
    finally:
        if starter.poll() is None:
            starter.kill()
