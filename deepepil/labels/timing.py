"""The time rule of the exchange formats: frame index <-> milliseconds <-> seconds.

Labels are stored as frame indices (exact); files carry milliseconds (ELAN) or seconds
(CSV, NWB). The rule, with rounding half up (``floor(x + 0.5)``, the same in every
language, unlike Python's ``round`` which rounds half to even)::

    ms    = floor(frame * 1000 / fps + 0.5)
    frame = floor(ms * fps / 1000 + 0.5)

Every frame survives ``frame -> ms -> frame`` for any ``fps`` below 1000: the rounding to
milliseconds moves a time by at most 0.5 ms, which is at most ``0.5 * fps / 1000`` (< 0.5)
of a frame, so rounding back lands on the same frame. The tests check every frame of a
day at 25, 29.97 and 30 fps. Seconds are not rounded: ``seconds = frame / fps``; reading
seconds back uses ``frame = floor(seconds * fps + 0.5)``.
"""

from __future__ import annotations

import math
from typing import overload

import numpy as np

__all__ = ["MAX_FPS", "check_fps", "frame_to_ms", "ms_to_frame", "frame_to_seconds", "seconds_to_frame"]

#: Frame rates at or above this break the exact millisecond round trip.
MAX_FPS = 1000.0


def check_fps(fps: float) -> float:
    """``fps`` as a float if ``0 < fps < 1000``; else ValueError naming the allowed range."""
    fps = float(fps)
    if not (math.isfinite(fps) and 0.0 < fps < MAX_FPS):
        raise ValueError(f"fps must be in (0, {MAX_FPS:g}) for exact millisecond times, got {fps!r}")
    return fps


def _round_half_up(x):
    """``floor(x + 0.5)``: an int for a scalar, an int64 array for an array."""
    out = np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.int64)
    return int(out) if out.ndim == 0 else out


@overload
def frame_to_ms(frame: int, fps: float) -> int: ...
@overload
def frame_to_ms(frame: np.ndarray, fps: float) -> np.ndarray: ...
def frame_to_ms(frame, fps):
    """Milliseconds of frame index ``frame``: ``floor(frame * 1000 / fps + 0.5)`` (int or int64 array)."""
    return _round_half_up(np.asarray(frame, dtype=np.float64) * 1000.0 / check_fps(fps))


@overload
def ms_to_frame(ms: int, fps: float) -> int: ...
@overload
def ms_to_frame(ms: np.ndarray, fps: float) -> np.ndarray: ...
def ms_to_frame(ms, fps):
    """Frame index at ``ms`` milliseconds: ``floor(ms * fps / 1000 + 0.5)`` (int or int64 array)."""
    return _round_half_up(np.asarray(ms, dtype=np.float64) * check_fps(fps) / 1000.0)


def frame_to_seconds(frame: int, fps: float) -> float:
    """Seconds of frame index ``frame``: ``frame / fps`` (not rounded)."""
    return int(frame) / check_fps(fps)


def seconds_to_frame(seconds: float, fps: float) -> int:
    """Frame index at ``seconds``: ``floor(seconds * fps + 0.5)``."""
    return _round_half_up(float(seconds) * check_fps(fps))
