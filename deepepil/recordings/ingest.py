"""Ingest: turn an acquisition export into a published, checksummed recording store.

The store is written aside (``.NAME.zarr.partial``), every frame is checked (shape,
dtype, timestamps, stream lengths), a checksum manifest is written, and only then is
the folder renamed to ``NAME.zarr``. A crash or a kill leaves only the ``.partial``
folder, which never opens as a recording; rerunning the same ingest removes it and
starts over. Many recordings ingest in parallel with :func:`ingest_many` on Dask
distributed.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import itertools
import os
import shutil
import socket
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm.auto import tqdm

import deepepil
from deepepil.errors import (
    DeepEpilError,
    FrameMismatchError,
    IncompleteStoreError,
    OutOfSpaceError,
    StoreExistsError,
    TimestampError,
)
from deepepil.recordings.readers import Reader, open_source
from deepepil.recordings.source import STREAM_NAMES, Frame, RecordingSource
from deepepil.recordings.store import (
    DEFAULT_LAYOUT,
    FORMAT_VERSION,
    PARTIAL_SUFFIX,
    StoreLayout,
    create_stream_array,
    create_time_array,
    write_manifest,
)

__all__ = ["ingest", "ingest_many", "recording_name_for", "hash_source"]

#: A gap between consecutive timestamps above this many frame intervals means missing frames.
MAX_GAP_FRAMES = 1.5
#: The depth display range ends this far behind the median depth of the image centre.
DEPTH_DISPLAY_BEHIND_MM = 250.0
_END = object()


def recording_name_for(source_path: str | os.PathLike) -> str:
    """Default recording name: the file stem or folder name of the source."""
    p = Path(source_path)
    name = p.name if p.is_dir() else p.stem
    if not name or name.startswith("."):
        raise ValueError(f"cannot derive a recording name from {source_path!s}; pass name=")
    return name


def hash_source(path: str | os.PathLike, block_bytes: int = 1 << 22) -> tuple[str, int]:
    """sha256 and total size in bytes of a source file, or of a folder's files in sorted order."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    digest = hashlib.sha256()
    total = 0
    for f in files:
        if p.is_dir():
            digest.update(f.relative_to(p).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(block_bytes):
                digest.update(chunk)
                total += len(chunk)
    return digest.hexdigest(), total


class _HashThread(threading.Thread):
    """Hashes the source beside the ingest, so it costs no extra wall time on idle cores."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(daemon=True, name="deepepil-hash-source")
        self.path = path
        self.result: tuple[str, int] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = hash_source(self.path)
        except BaseException as exc:  # reported by the ingest thread
            self.error = exc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim(partial: Path, lock: Path) -> None:
    """Take the lock for a recording; clear a stale partial left by a dead ingest."""
    me = f"{socket.gethostname()} {os.getpid()}\n"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                host, pid = lock.read_text().split()
                if host == socket.gethostname() and _pid_alive(int(pid)):
                    raise IncompleteStoreError(
                        f"{partial.name}: another ingest (pid {pid}) is writing this recording now; "
                        f"wait for it to finish"
                    )
            except ValueError:
                pass  # unreadable lock: the writer died while creating it
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        if partial.exists():
            shutil.rmtree(partial)
        return
    raise IncompleteStoreError(f"{lock}: could not take the ingest lock")


def _reference_stream(streams: Sequence[str], path: str) -> str:
    for name in ("depth", "ir", "rgb"):
        if name in streams:
            return name
    raise FrameMismatchError(f"has no stream among {STREAM_NAMES}", path=path)


def _select_streams(source: RecordingSource, wanted: Sequence[str] | None) -> list[str]:
    present = [s for s in STREAM_NAMES if s in source.streams]
    if wanted is None:
        return present
    unknown = [s for s in wanted if s not in present]
    if unknown or not wanted:
        raise ValueError(
            f"{source.path}: cannot ingest stream(s) {unknown or list(wanted)}; the source has "
            f"{', '.join(present)}"
        )
    return [s for s in present if s in wanted]


class _FrameChecker:
    """Checks every frame against the stream metadata and the timestamps against each other."""

    def __init__(self, source: RecordingSource, streams: list[str]) -> None:
        self.source = source
        self.reference = _reference_stream(streams, source.path)
        self.fps = source.streams[self.reference].fps
        self.interval = 1.0 / self.fps
        self.offsets: dict[str, float] = {}
        self.last_pts: dict[str, float] = {}

    def check(self, stream: str, expected_index: int, frame: Frame) -> None:
        info = self.source.streams[stream]
        where = dict(path=self.source.path, frame_index=expected_index)
        if frame.index != expected_index:
            raise FrameMismatchError(f"{stream}: frame index {frame.index} out of order", **where)
        data = frame.data
        if tuple(data.shape) != tuple(info.frame_shape) or str(data.dtype) != info.dtype:
            raise FrameMismatchError(
                f"{stream}: frame is {data.dtype} {tuple(data.shape)}, but the stream is "
                f"{info.dtype} {tuple(info.frame_shape)} (all frames of a stream must match)", **where
            )
        pts = float(frame.pts_seconds)
        if not np.isfinite(pts):
            raise TimestampError(f"{stream}: timestamp is {pts}", **where)
        if stream in self.last_pts:
            gap = pts - self.last_pts[stream]
            if gap <= 0:
                raise TimestampError(
                    f"{stream}: timestamps must increase; {pts:.6f} s follows {self.last_pts[stream]:.6f} s",
                    **where,
                )
            if gap > MAX_GAP_FRAMES * self.interval:
                raise TimestampError(
                    f"{stream}: {gap:.4f} s since the previous frame at {self.fps:g} fps: about "
                    f"{round(gap * self.fps) - 1} frame(s) missing before this one", **where
                )
        self.last_pts[stream] = pts

    def check_sync(self, frames: dict[str, Frame], index: int) -> None:
        ref = frames[self.reference].pts_seconds
        for stream, frame in frames.items():
            offset = frame.pts_seconds - ref
            first = self.offsets.setdefault(stream, offset)
            if abs(offset - first) > 0.5 * self.interval:
                raise TimestampError(
                    f"{stream} drifts {offset - first:+.4f} s from {self.reference} (more than half a "
                    f"frame): streams are out of sync or one dropped frames", path=self.source.path,
                    frame_index=index,
                )


def _write_batch(arrays: dict[str, zarr.Array], batch: dict[str, list[np.ndarray]], start: int) -> None:
    for stream, frames in batch.items():
        if frames:
            arrays[stream][start : start + len(frames)] = np.stack(frames)
            frames.clear()


def _display_ranges(arrays: dict[str, zarr.Array], num_frames: int, samples: int = 8) -> dict[str, Any]:
    """Robust display ranges from a few frames spread over the recording (read back, so decoded)."""
    picks = np.unique(np.linspace(0, num_frames - 1, samples).round().astype(int))
    ranges: dict[str, Any] = {}
    if "depth" in arrays:
        d = np.stack([arrays["depth"][int(i)] for i in picks])
        valid = d[d > 0]
        if valid.size:
            # near end: the nearest surfaces; far end: just behind what fills the middle of the
            # image (the bed, seen from above), so floor and walls do not squash the contrast
            h, w = d.shape[1:3]
            centre = d[:, h // 4 : h - h // 4, w // 4 : w - w // 4]
            centre = centre[centre > 0]
            lo, hi = np.percentile(valid, [1, 99])
            if centre.size:
                hi = min(hi, float(np.median(centre)) + DEPTH_DISPLAY_BEHIND_MM)
            pad = max(25.0, 0.05 * (hi - lo))
            ranges["depth_range_mm"] = [float(max(lo - pad, 0)), float(hi + pad)]
    if "ir" in arrays:
        ir = np.stack([arrays["ir"][int(i)] for i in picks])
        hi = float(np.percentile(ir, 99.5))
        ranges["ir_range"] = [0.0, max(hi, 1.0)]
    for s, a in arrays.items():
        if s not in ("depth", "ir"):
            a[int(picks[-1])]  # decodes
    return ranges


def _write_store(
    source: RecordingSource, partial: Path, name: str, layout: StoreLayout, progress: bool,
    streams: list[str],
) -> dict[str, Any]:
    checker = _FrameChecker(source, streams)
    ref_info = source.streams[checker.reference]
    expected = ref_info.num_frames
    capacity = expected if expected else layout.frames_per_shard

    group = zarr.open_group(zarr.storage.LocalStore(partial), mode="w-", zarr_format=3)
    arrays = {
        s: create_stream_array(
            group, s, capacity, tuple(source.streams[s].frame_shape), source.streams[s].dtype, layout
        )
        for s in streams
    }
    iterators = {s: source.iter_frames(s) for s in streams}
    batch: dict[str, list[np.ndarray]] = {s: [] for s in streams}
    times: list[float] = []
    batch_start = 0
    bar = tqdm(total=expected, unit="frame", desc=f"ingest {name}", disable=not progress, leave=False)
    try:
        for index in itertools.count():
            frames = {s: next(it, _END) for s, it in iterators.items()}
            ended = [s for s, f in frames.items() if f is _END]
            if ended:
                if len(ended) != len(streams):
                    longer = sorted(set(streams) - set(ended))
                    raise FrameMismatchError(
                        f"stream(s) {', '.join(ended)} end after {index} frames but "
                        f"{', '.join(longer)} continue(s): streams must have the same number of frames",
                        path=source.path, frame_index=index,
                    )
                break
            for s, frame in frames.items():
                checker.check(s, index, frame)  # type: ignore[arg-type]
                batch[s].append(frame.data)  # type: ignore[union-attr]
            checker.check_sync(frames, index)  # type: ignore[arg-type]
            times.append(float(frames[checker.reference].pts_seconds))  # type: ignore[union-attr]
            if len(times) > capacity:
                capacity += layout.frames_per_shard
                for a in arrays.values():
                    a.resize((capacity, *a.shape[1:]))
            if len(batch[streams[0]]) == layout.frames_per_shard:
                _write_batch(arrays, batch, batch_start)
                batch_start = len(times)
            bar.update(1)
        _write_batch(arrays, batch, batch_start)
    finally:
        bar.close()
    num_frames = len(times)
    if num_frames == 0:
        raise FrameMismatchError("has no frames", path=source.path)
    if expected is not None and num_frames != expected:
        raise FrameMismatchError(
            f"the source promised {expected} frames but {num_frames} could be read",
            path=source.path, frame_index=num_frames,
        )
    if capacity != num_frames:
        for a in arrays.values():
            a.resize((num_frames, *a.shape[1:]))
    t = np.asarray(times, dtype="float64")
    create_time_array(group, num_frames)[:] = t - t[0]
    duration = float(t[-1] - t[0] + 1.0 / checker.fps)
    group.attrs.update(
        {
            "deepepil": {"kind": "recording", "format_version": FORMAT_VERSION},
            "name": name,
            "fps": checker.fps,
            "num_frames": num_frames,
            "duration_seconds": duration,
            "streams": streams,
            "start_pts_seconds": float(t[0]),
            "stream_offsets_seconds": {s: float(o) for s, o in checker.offsets.items()},
            "calibration": source.calibration,
            "layout": layout.describe(),
        }
    )
    group.attrs["display"] = _display_ranges(arrays, num_frames)
    return {"num_frames": num_frames, "duration_seconds": duration}


def ingest(
    source: str | os.PathLike | RecordingSource,
    store: str | os.PathLike,
    *,
    name: str | None = None,
    reader: str | Reader | None = None,
    layout: StoreLayout = DEFAULT_LAYOUT,
    streams: Sequence[str] | None = None,
    progress: bool = True,
) -> Path:
    """Ingest one recording into the store folder ``store``.

    Parameters
    ----------
    source : path-like or RecordingSource
        An acquisition export (Azure Kinect MKV, video file, frame folder, NumPy arrays),
        or an already opened source (e.g. a synthetic recording).
    store : path-like
        Folder holding recording stores; created when missing.
    name : str, optional
        Recording name; default the source's file stem or folder name.
    reader : str or Reader, optional
        Reader to use; default: guessed (see :func:`deepepil.list_readers`).
    layout : StoreLayout
        Chunking and codecs.
    streams : sequence of str, optional
        Ingest only these streams (e.g. ``["ir", "depth"]``); default all.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        The published store ``store/NAME.zarr``.

    Raises
    ------
    StoreExistsError
        ``store/NAME.zarr`` exists already.
    UnknownFormatError, CorruptSourceError, FrameMismatchError, TimestampError
        The source cannot be read; the message names the file and the frame.
    OutOfSpaceError
        The disk filled up; the partial store is removed.
    """
    opened = source if isinstance(source, RecordingSource) else None
    source = Path(opened.path if opened is not None else source)
    name = name or recording_name_for(source)
    store = Path(store)
    target = store / f"{name}.zarr"
    if target.exists():
        raise StoreExistsError(
            f"{target} exists already; recordings are never overwritten. Remove it or ingest "
            f"under another name (--name)"
        )
    store.mkdir(parents=True, exist_ok=True)
    partial = store / f".{name}.zarr{PARTIAL_SUFFIX}"
    lock = store / f".{name}.zarr.lock"

    src = opened if opened is not None else open_source(source, reader)
    try:
        selected = _select_streams(src, streams)
    except ValueError:
        if opened is None:
            src.close()
        raise
    hasher = _HashThread(source) if source.exists() else None
    _claim(partial, lock)
    try:
        if hasher is not None:
            hasher.start()
        stats = _write_store(src, partial, name, layout, progress, selected)
        sha256, size_bytes = None, None
        if hasher is not None:
            hasher.join()
            if hasher.error is not None:
                raise hasher.error
            sha256, size_bytes = hasher.result  # type: ignore[misc]
        group = zarr.open_group(zarr.storage.LocalStore(partial), mode="r+")
        group.attrs["provenance"] = {
            "source_name": source.name,
            "source_format": src.attrs.get("source_format", type(src).__name__),
            "source_size_bytes": size_bytes,
            "source_sha256": sha256,
            "source_attrs": {k: v for k, v in src.attrs.items() if k != "source_format"},
            "ingested_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "deepepil_version": deepepil.__version__,
            **stats,
        }
        write_manifest(partial)
        if target.exists():
            raise StoreExistsError(f"{target} appeared while ingesting; the new copy was discarded")
        os.rename(partial, target)
        dir_fd = os.open(store, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) and not isinstance(exc, DeepEpilError):
            raise OutOfSpaceError(
                f"{target}: ran out of disk space while writing ({exc.strerror}); nothing was published "
                f"and the partial store was removed. Free space and rerun"
            ) from exc
        raise
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        if opened is None:
            src.close()
        lock.unlink(missing_ok=True)
    return target


def _ingest_task(source: str, store: str, kwargs: dict[str, Any]) -> str:
    return str(ingest(source, store, progress=False, **kwargs))


def ingest_many(
    sources: Iterable[str | os.PathLike],
    store: str | os.PathLike,
    *,
    scheduler_address: str | None = None,
    n_workers: int | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> list[Path]:
    """Ingest many recordings in parallel on Dask distributed.

    Parameters
    ----------
    sources : iterable of path-like
        One acquisition export per recording.
    store : path-like
        Folder holding recording stores (must be reachable by every worker).
    scheduler_address : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); default a
        :class:`distributed.LocalCluster` on this machine, one process per core.
    n_workers : int, optional
        Workers of the local cluster (default: the number of cores).
    progress : bool
        Show a progress bar over recordings.
    **kwargs
        Passed to :func:`ingest` (``reader``, ``layout``).

    Returns
    -------
    list of pathlib.Path
        The published stores, in the order of ``sources``.

    Raises
    ------
    DeepEpilError
        After every recording was tried, when any failed; the message lists each failure.
    """
    from deepepil.batch import run_on_dask

    sources = [str(s) for s in sources]
    results = run_on_dask(_ingest_task, sources, str(store), kwargs, what="ingest", progress=progress,
                          scheduler_address=scheduler_address, n_workers=n_workers or os.cpu_count() or 1)
    return [Path(r) for r in results]
