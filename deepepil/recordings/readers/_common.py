"""Helpers shared by the built-in readers and writers (private)."""

from __future__ import annotations

import heapq
import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepepil.errors import CorruptSourceError, FrameMismatchError, TimestampError
from deepepil.recordings.calibration import default_calibration
from deepepil.recordings.source import STREAM_DTYPES, STREAM_NAMES, Frame, RecordingSource, StreamInfo

__all__ = [
    "GAP_TOLERANCE_INTERVALS",
    "LazyTimestamps",
    "TimestampChecker",
    "calibration_or_default",
    "check_frame",
    "check_timestamps",
    "checked_fps",
    "common_fps",
    "discard",
    "dumps",
    "frames_checked",
    "interleave",
    "merged_attrs",
    "publish",
    "read_json",
    "read_json_object",
    "refuse_existing",
    "snap_fps",
    "source_timestamps",
    "staging_path",
    "validate_source_for_writing",
]

#: A step between consecutive timestamps longer than this many frame intervals means
#: frames are missing.
GAP_TOLERANCE_INTERVALS = 1.5


def calibration_or_default(
    calibration: Mapping[str, Any] | None, streams: Mapping[str, StreamInfo]
) -> dict[str, Any]:
    """``calibration`` when the source has one, else the default scaled to the frame sizes."""
    if calibration:
        return dict(calibration)
    depth = streams.get("depth") or streams.get("ir")
    rgb = streams.get("rgb")
    return default_calibration(
        depth_size=(depth.frame_shape[1], depth.frame_shape[0]) if depth else None,
        rgb_size=(rgb.frame_shape[1], rgb.frame_shape[0]) if rgb else None,
    )


def merged_attrs(reader_name: str, stored: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Attributes of an opened source: what the file stored, then what the reader found."""
    attrs = dict(stored or {})
    previous = attrs.pop("source_format", None)
    if previous is not None and previous != reader_name:
        attrs.setdefault("written_from_format", previous)
    attrs["source_format"] = reader_name
    attrs.update(extra)
    return attrs


def snap_fps(fps: float) -> float:
    """Round a frame rate read back from a container to the nominal one (30, 29.97, ...)."""
    for nominal in (round(fps), round(fps * 1.001) / 1.001):
        if nominal > 0 and abs(fps - nominal) <= 1e-5 * nominal:
            return float(nominal)
    return float(fps)


def check_frame(data: np.ndarray, info: StreamInfo, path: str, index: int, where: str | None = None) -> None:
    """Raise :class:`FrameMismatchError` when a frame's shape or dtype is not the stream's."""
    if tuple(data.shape) != tuple(info.frame_shape) or str(data.dtype) != info.dtype:
        raise FrameMismatchError(
            f"{info.name} frame is {data.dtype} {tuple(data.shape)}, but the stream's frames are "
            f"{info.dtype} {tuple(info.frame_shape)}" + (f" ({where})" if where else ""),
            path=path, frame_index=index,
        )


def check_timestamps(times: np.ndarray, fps: float, path: str, stream: str) -> None:
    """Raise :class:`TimestampError` at the first repeated, decreasing or missing-frame step."""
    checker = TimestampChecker(path, stream, fps)
    for i, t in enumerate(np.asarray(times, dtype="float64")):
        checker.check(i, float(t))


class TimestampChecker:
    """Checks timestamps one frame at a time (for containers, whose times come with the frames)."""

    def __init__(self, path: str, stream: str, fps: float) -> None:
        self.path, self.stream, self.fps = path, stream, fps
        self._previous: float | None = None

    def check(self, index: int, time_seconds: float) -> None:
        if not math.isfinite(time_seconds):
            raise TimestampError(f"{self.stream} timestamp is {time_seconds}", path=self.path, frame_index=index)
        previous, self._previous = self._previous, time_seconds
        if previous is None:
            return
        step = time_seconds - previous
        if step <= 0:
            raise TimestampError(
                f"{self.stream} timestamp {time_seconds:.6f} s is not after the previous frame's "
                f"{previous:.6f} s; timestamps must increase", path=self.path, frame_index=index,
            )
        if step > GAP_TOLERANCE_INTERVALS / self.fps:
            raise TimestampError(
                f"{self.stream} frames are missing: {step:.4f} s since the previous frame "
                f"({step * self.fps:.1f} frame intervals at {self.fps:g} fps; at most "
                f"{GAP_TOLERANCE_INTERVALS} allowed)", path=self.path, frame_index=index,
            )


class LazyTimestamps(Mapping[str, np.ndarray]):
    """Per-stream timestamps in seconds, computed on first access and then kept."""

    def __init__(self, streams: Mapping[str, Any], compute: Callable[[str], np.ndarray]) -> None:
        self._names = list(streams)
        self._compute = compute
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, stream: str) -> np.ndarray:
        if stream not in self._names:
            raise KeyError(stream)
        if stream not in self._cache:
            self._cache[stream] = np.asarray(self._compute(stream), dtype="float64")
        return self._cache[stream]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"<timestamps_seconds for {', '.join(self._names)} (computed on access)>"


def source_timestamps(source: RecordingSource, stream: str) -> np.ndarray | None:
    """The timestamps a source exposes for ``stream`` without decoding, if any."""
    ts = getattr(source, "timestamps_seconds", None)
    if ts is None:
        return None
    if isinstance(ts, Mapping):
        return np.asarray(ts[stream], dtype="float64") if stream in ts else None
    n = source.streams[stream].num_frames
    return np.asarray(ts, dtype="float64")[:n]


def interleave(source: RecordingSource, order: tuple[str, ...] = STREAM_NAMES) -> Iterator[tuple[str, Frame]]:
    """All frames of all streams of ``source`` merged by time (ties in ``order``), lazily."""
    names = [s for s in order if s in source.streams]

    def keyed(rank: int, name: str) -> Iterator[tuple[float, int, int, str, Frame]]:
        for frame in source.iter_frames(name):
            yield frame.pts_seconds, rank, frame.index, name, frame

    merged = heapq.merge(*(keyed(r, n) for r, n in enumerate(names)), key=lambda item: item[:3])
    for _, _, _, name, frame in merged:
        yield name, frame


def frames_checked(source: RecordingSource, stream: str) -> Iterator[Frame]:
    """``source.iter_frames(stream)``, checking every frame against the stream's metadata."""
    info = source.streams[stream]
    for frame in source.iter_frames(stream):
        data = np.asarray(frame.data)
        check_frame(data, info, source.path, frame.index)
        yield frame


def validate_source_for_writing(source: RecordingSource) -> None:
    """Refuse streams with unknown names or dtypes before anything is written."""
    for name, info in source.streams.items():
        if name not in STREAM_NAMES:
            raise ValueError(f"stream {name!r} cannot be written; valid streams: {STREAM_NAMES}")
        if info.dtype != STREAM_DTYPES[name]:
            raise FrameMismatchError(
                f"stream {name!r} is {info.dtype}; it must be {STREAM_DTYPES[name]}", path=source.path
            )
    if not source.streams:
        raise ValueError(f"{source.path}: the source has no streams to write")


def refuse_existing(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path, raising FileExistsError when something is already there."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise FileExistsError(f"{path}: already exists; remove it or choose another target")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such folder to write {path.name} into")
    return path


def staging_path(path: Path) -> Path:
    """A sibling of ``path`` to write into before publishing it with :func:`publish`."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")


def publish(staged: Path, path: Path) -> Path:
    """Move a finished ``staged`` file or folder to ``path`` (refusing to replace anything)."""
    if path.exists():
        discard(staged)
        raise FileExistsError(f"{path}: appeared while writing; the new copy was discarded")
    os.replace(staged, path)
    return path


def discard(staged: Path) -> None:
    """Remove a partly written file or folder."""
    if staged.is_dir():
        shutil.rmtree(staged, ignore_errors=True)
    else:
        staged.unlink(missing_ok=True)


def read_json(path: Path) -> Any:
    """Load a JSON side file, turning a broken one into :class:`CorruptSourceError`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptSourceError(f"cannot read JSON: {exc}", path=str(path)) from None


def checked_fps(value: Any, where: str | os.PathLike) -> float:
    """A frame rate read from a side file, or :class:`CorruptSourceError` naming the file."""
    try:
        fps = float(value)
    except (TypeError, ValueError):
        fps = float("nan")
    if not 0 < fps < 100_000:
        raise CorruptSourceError(f"fps is {value!r}; expected a number > 0", path=os.fspath(where))
    return fps


def read_json_object(path: Path) -> dict[str, Any]:
    """:func:`read_json` for side files that must hold a JSON object."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise CorruptSourceError(f"holds a JSON {type(value).__name__}; expected an object {{...}}", path=str(path))
    return value


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars and arrays in calibration and attrs."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=json_default)


def common_fps(source: RecordingSource) -> float:
    """The source's frame rate (the first stream's; streams share one in practice)."""
    return next(iter(source.streams.values())).fps
