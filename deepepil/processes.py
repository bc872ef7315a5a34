"""Child processes of the hub, the demo and the tests: free ports, tied lifetimes, clean stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

__all__ = ["free_port", "die_with_parent", "stop_process_group"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """``preexec_fn`` for a child that must get SIGTERM when its parent dies (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_process_group(process: subprocess.Popen, timeout_seconds: float) -> None:
    """Stop ``process`` (started with ``start_new_session=True``): SIGTERM, wait up to ``timeout_seconds``,
    then SIGKILL whatever is left in its process group (servers, kernels), and reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
