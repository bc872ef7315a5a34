"""Per-user GPU assignment on a shared GPU server.

Each server gets one GPU of ``DEEPEPIL_GPUS`` through ``CUDA_VISIBLE_DEVICES``: the least
used one, ties broken round-robin, so users spread over the devices. A user keeps their GPU
while their server runs (a re-spawn of a running or pending server gets the same device) and
gives it back when it stops. On Kubernetes the device plugin does this instead
(``nvidia.com/gpu`` limits in the profiles of ``hub/k8s/values.yaml``).
"""

from __future__ import annotations

import threading

__all__ = ["GpuAssigner"]


class GpuAssigner:
    """Assign GPUs to servers: least-used first, round-robin among equals, stable while running.

    Parameters
    ----------
    devices : sequence of str
        The GPUs to share (indices or UUIDs, as ``CUDA_VISIBLE_DEVICES`` takes them).
    """

    def __init__(self, devices: tuple[str, ...] | list[str]) -> None:
        self.devices = tuple(devices)
        self._holders: dict[str, str] = {}  # server key -> device
        self._next = 0
        self._lock = threading.Lock()

    def assign(self, key: str) -> str | None:
        """The device for the server ``key`` (e.g. ``"ann/"``); None when there are no GPUs."""
        if not self.devices:
            return None
        with self._lock:
            if key in self._holders:
                return self._holders[key]
            load = self.load()
            fewest = min(load.values())
            n = len(self.devices)
            for step in range(n):
                candidate = self.devices[(self._next + step) % n]
                if load[candidate] == fewest:
                    break
            self._next = (self.devices.index(candidate) + 1) % n
            self._holders[key] = candidate
            return candidate

    def release(self, key: str) -> str | None:
        """Give back the device of server ``key``; return it (None when it held none)."""
        with self._lock:
            return self._holders.pop(key, None)

    def load(self) -> dict[str, int]:
        """How many servers hold each device."""
        counts = dict.fromkeys(self.devices, 0)
        for device in self._holders.values():
            counts[device] += 1
        return counts
