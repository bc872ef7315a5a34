"""Run the hub (``jupyterhub -f jupyterhub_config.py``) as a child process, on free ports.

Used by ``deepepil demo``, the real-hub tests and the hub benchmark. The hub runs in its own
session with its own environment (the settings of :mod:`hub.settings`); :meth:`HubProcess.stop`
sends it SIGTERM, on which JupyterHub stops every user server and the proxy it started, and
kills what is left only if that does not finish in time. The hub also stops itself when its
parent dies (``DEEPEPIL_HUB_PARENT_PID``, see :func:`hub.config.configure`): a killed demo or test
run leaves no hub behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from deepepil.processes import free_port, stop_process_group
from hub.settings import REPO_ROOT

__all__ = ["HubProcess", "CONFIG_FILE"]

#: The deployment config the hub runs with.
CONFIG_FILE = REPO_ROOT / "jupyterhub_config.py"


def _default_sigint() -> None:
    # a hub started from a background job inherits SIGINT ignored, and so would its services and
    # servers: JupyterHub stops them with SIGINT first, and would wait out its timeouts
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class HubProcess:
    """A JupyterHub process with the DeepEpil config.

    Parameters
    ----------
    state_dir : Path
        The hub's state folder (its database, cookie secret, log ``jupyterhub.log``).
    env : mapping
        Settings (``DEEPEPIL_*``) on top of the current environment.
    port : int, optional
        The public port (default: a free one); the hub API and proxy API ports are free ones.
    """

    def __init__(self, state_dir: Path, env: Mapping[str, str], *, port: int | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.port = port or free_port()
        self.env = {
            **os.environ,
            "DEEPEPIL_HUB_STATE_DIR": str(self.state_dir),
            "DEEPEPIL_HUB_IP": "127.0.0.1",
            "DEEPEPIL_HUB_PORT": str(self.port),
            "DEEPEPIL_HUB_API_PORT": str(free_port()),
            "DEEPEPIL_PROXY_API_PORT": str(free_port()),
            "DEEPEPIL_HUB_PARENT_PID": str(os.getpid()),
            **env,
        }
        self.log_path = self.state_dir / "jupyterhub.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The hub's public URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_seconds: float = 120.0) -> HubProcess:
        """Start the hub and wait until it answers; raise RuntimeError with its log when it does not."""
        import urllib.request

        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)], cwd=self.state_dir, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_default_sigint,
        )
        log.close()
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited with status {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/hub/api", timeout=5) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the hub did not answer on {self.url} within {timeout_seconds:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        """The end of the hub's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait(self) -> int:
        """Wait for the hub to exit; return its status."""
        assert self.process is not None
        return self.process.wait()

    def stop(self, timeout_seconds: float = 60.0) -> None:
        """Stop the hub (and through it the servers and the proxy); kill what is left after the timeout."""
        if self.process is None:
            return
        stop_process_group(self.process, timeout_seconds)
