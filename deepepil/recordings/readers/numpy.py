"""NumPy recordings: a ``.npz`` or a folder of ``.npy`` files, and :func:`write_numpy`.

* ``recording.npz`` with arrays ``rgb`` (T,H,W,3 uint8), ``ir`` and ``depth`` (T,H,W uint16),
  optional ``time_seconds`` (or ``time_seconds_<stream>``), ``fps``, and the JSON strings
  ``calibration_json`` and ``meta_json``. Frames are streamed out of the zip member one at
  a time (stored or deflated), never the whole array.
* a folder with ``rgb.npy``, ``ir.npy``, ``depth.npy`` (memory-mapped), optional
  ``time_seconds.npy`` / ``time_seconds_<stream>.npy``, ``calibration.json`` and
  ``meta.json`` (``{"fps": 30, "attrs": {...}}``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from deepepil.errors import CorruptSourceError, FrameMismatchError
from deepepil.recordings.readers._common import (
    LazyTimestamps,
    calibration_or_default,
    check_timestamps,
    checked_fps,
    common_fps,
    discard,
    dumps,
    frames_checked,
    merged_attrs,
    publish,
    read_json_object,
    refuse_existing,
    staging_path,
    validate_source_for_writing,
)
from deepepil.recordings.readers.base import Reader
from deepepil.recordings.source import STREAM_NAMES, Frame, RecordingSource, StreamInfo

__all__ = ["NumpyReader", "NumpySource", "write_numpy"]

DEFAULT_FPS = 30.0
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError)


class NumpyReader(Reader):
    """``.npz`` files and folders of ``rgb.npy`` / ``ir.npy`` / ``depth.npy``."""

    name = "numpy"
    description = "NumPy .npz with rgb/ir/depth arrays, or a folder of rgb.npy/ir.npy/depth.npy"
    url = "https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html"

    def guess_can_open(self, path: str | os.PathLike) -> bool:
        try:
            p = Path(path)
            if p.is_dir():
                return any((p / f"{s}.npy").is_file() for s in STREAM_NAMES)
            return p.is_file() and p.suffix.lower() == ".npz"
        except (TypeError, ValueError, OSError):
            return False

    def open(self, path: str | os.PathLike) -> NumpySource:
        return NumpySource(os.fspath(path), self.name)


def _read_header(f: BinaryIO, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        return np.lib.format.read_array_header_2_0(f)
    except (ValueError, OSError, EOFError, *_ZIP_ERRORS) as exc:
        raise CorruptSourceError(f"not a readable .npy array: {exc}", path=where) from None


def _stream_spec(stream: str, shape: tuple[int, ...], fortran: bool, dtype: np.dtype, where: str) -> StreamInfo:
    want_ndim = 4 if stream == "rgb" else 3
    if len(shape) != want_ndim or (stream == "rgb" and shape[-1] != 3):
        expected = "(T, H, W, 3)" if stream == "rgb" else "(T, H, W)"
        raise FrameMismatchError(f"{stream} array has shape {shape}; expected {expected}", path=where)
    allowed = ("uint8",) if stream == "rgb" else ("uint16", "uint8")
    if dtype.name not in allowed:
        raise FrameMismatchError(
            f"{stream} array is {dtype}; expected {allowed[0]} (convert with .astype('{allowed[0]}'))", path=where
        )
    if fortran:
        raise FrameMismatchError(f"{stream} array is Fortran-ordered; save it with np.ascontiguousarray",
                                 path=where)
    return StreamInfo(stream, tuple(shape[1:]), "uint8" if stream == "rgb" else "uint16", shape[0], DEFAULT_FPS)


class NumpySource(RecordingSource):
    """An ``.npz`` or ``.npy`` folder opened lazily (headers only at open)."""

    def __init__(self, path: str, reader_name: str = "numpy") -> None:
        self.path = path
        self._layout: dict[str, tuple[str, np.dtype, int]] = {}  # stream -> (file or member, dtype, data offset)
        p = Path(path)
        if p.is_dir():
            specs, extras = self._open_folder(p)
        else:
            specs, extras = self._open_npz(p)
        if not specs:
            raise CorruptSourceError(f"holds no array named {', '.join(STREAM_NAMES)}", path=path)
        fps = extras.get("fps")
        times = extras["times"]
        if fps is None:
            ref = next((t for t in times.values() if len(t) > 1), None)
            step = float(np.median(np.diff(ref))) if ref is not None else 0.0
            fps = 1.0 / step if step > 0 else DEFAULT_FPS  # bad timestamps are reported below
        self.streams = {s: StreamInfo(s, i.frame_shape, i.dtype, i.num_frames, fps) for s, i in specs.items()}
        resolved: dict[str, np.ndarray] = {}
        for stream, info in self.streams.items():
            t = times.get(stream, times.get(""))
            if t is None:
                t = np.arange(info.num_frames or 0) / fps
            elif len(t) != info.num_frames:
                raise FrameMismatchError(
                    f"{len(t)} timestamps for {info.num_frames} {stream} frames", path=path
                )
            else:
                check_timestamps(t, fps, path, stream)
            resolved[stream] = t
        self.timestamps_seconds = LazyTimestamps(self.streams, resolved.__getitem__)
        self.calibration = calibration_or_default(extras.get("calibration"), self.streams)
        meta = extras.get("meta") or {}
        self.attrs = merged_attrs(reader_name, meta.get("attrs") if isinstance(meta, dict) else None,
                                  layout="npz" if not p.is_dir() else "npy folder")
        if extras.get("fps") is None:
            self.attrs["fps_from_timestamps" if times else "fps_assumed"] = True

    def _open_folder(self, folder: Path) -> tuple[dict[str, StreamInfo], dict[str, Any]]:
        specs: dict[str, StreamInfo] = {}
        for stream in STREAM_NAMES:
            file = folder / f"{stream}.npy"
            if not file.is_file():
                continue
            with open(file, "rb") as f:
                shape, fortran, dtype = _read_header(f, str(file))
                offset = f.tell()
            info = _stream_spec(stream, shape, fortran, dtype, str(file))
            frame_bytes = int(np.prod(info.frame_shape)) * dtype.itemsize
            size = file.stat().st_size
            if size < offset + frame_bytes * shape[0]:
                complete = max(0, (size - offset) // frame_bytes) if frame_bytes else 0
                raise CorruptSourceError(
                    f"header promises {shape[0]} {stream} frames but the file holds {complete} complete"
                    f" ({size} of {offset + frame_bytes * shape[0]} bytes); it is truncated",
                    path=str(file), frame_index=complete,
                )
            specs[stream] = info
            self._layout[stream] = (str(file), dtype, offset)
        meta = read_json_object(folder / "meta.json") if (folder / "meta.json").is_file() else {}
        times: dict[str, np.ndarray] = {}
        for key in ["", *STREAM_NAMES]:
            file = folder / (f"time_seconds_{key}.npy" if key else "time_seconds.npy")
            if file.is_file():
                times[key] = self._load_small(lambda f=file: np.load(f, allow_pickle=False), str(file))
        cal = folder / "calibration.json"
        return specs, {
            "fps": checked_fps(meta["fps"], folder / "meta.json") if "fps" in meta else None,
            "times": times, "meta": meta, "calibration": read_json_object(cal) if cal.is_file() else None,
        }

    def _open_npz(self, file: Path) -> tuple[dict[str, StreamInfo], dict[str, Any]]:
        specs: dict[str, StreamInfo] = {}
        extras: dict[str, Any] = {"times": {}, "fps": None}
        try:
            with zipfile.ZipFile(file) as zf:
                members = {Path(n).stem: zf.getinfo(n) for n in zf.namelist() if n.endswith(".npy")}
                for stream in STREAM_NAMES:
                    member = members.get(stream)
                    if member is None:
                        continue
                    where = f"{file}:{member.filename}"
                    with zf.open(member) as f:
                        shape, fortran, dtype = _read_header(f, where)
                        offset = f.tell()
                    info = _stream_spec(stream, shape, fortran, dtype, where)
                    frame_bytes = int(np.prod(info.frame_shape)) * dtype.itemsize
                    if member.file_size < offset + frame_bytes * shape[0]:
                        complete = max(0, (member.file_size - offset) // frame_bytes) if frame_bytes else 0
                        raise CorruptSourceError(
                            f"{member.filename} header promises {shape[0]} frames but holds {complete}",
                            path=str(file), frame_index=complete,
                        )
                    specs[stream] = info
                    self._layout[stream] = (member.filename, dtype, offset)
                for name, member in members.items():
                    if name == "time_seconds" or name.startswith("time_seconds_"):
                        key = name.removeprefix("time_seconds").removeprefix("_")
                        extras["times"][key] = self._member(zf, member, file)
                    elif name == "fps":
                        extras["fps"] = checked_fps(self._member(zf, member, file), f"{file}:fps.npy")
                    elif name in ("calibration_json", "meta_json"):
                        text = str(self._member(zf, member, file))
                        try:
                            extras[name.removesuffix("_json")] = json.loads(text)
                        except ValueError:
                            raise CorruptSourceError(f"{name} is not JSON", path=str(file)) from None
        except _ZIP_ERRORS as exc:
            raise CorruptSourceError(f"cannot read the .npz (zip) file: {exc}; it is truncated or corrupt",
                                     path=str(file)) from None
        return specs, extras

    @staticmethod
    def _member(zf: zipfile.ZipFile, member: zipfile.ZipInfo, file: Path) -> np.ndarray:
        with zf.open(member) as f:
            return NumpySource._load_small(lambda: np.lib.format.read_array(f, allow_pickle=False),
                                           f"{file}:{member.filename}")

    @staticmethod
    def _load_small(load: Any, where: str) -> np.ndarray:
        try:
            return load()
        except (ValueError, *_ZIP_ERRORS) as exc:
            raise CorruptSourceError(f"cannot read array: {exc}", path=where) from None

    def iter_frames(self, stream: str) -> Iterator[Frame]:
        info = self.streams[stream]
        times = self.timestamps_seconds[stream]
        name, dtype, offset = self._layout[stream]
        if Path(self.path).is_dir():
            array = np.memmap(name, dtype=dtype, mode="r", offset=offset,
                              shape=(info.num_frames, *info.frame_shape))
            try:
                for i in range(array.shape[0]):
                    yield Frame(i, float(times[i]), np.array(array[i], dtype=info.dtype))
            finally:
                del array
            return
        frame_bytes = int(np.prod(info.frame_shape)) * dtype.itemsize
        i = 0
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(name) as f:
                f.read(offset)
                for i in range(info.num_frames or 0):
                    buf = f.read(frame_bytes)
                    if len(buf) != frame_bytes:
                        raise CorruptSourceError(f"{name} ends inside {stream} frame {i}", path=self.path,
                                                 frame_index=i)
                    data = np.frombuffer(buf, dtype=dtype).reshape(info.frame_shape).astype(info.dtype)
                    yield Frame(i, float(times[i]), data)
        except _ZIP_ERRORS as exc:
            raise CorruptSourceError(f"cannot read {stream} frame from {name}: {exc}", path=self.path,
                                     frame_index=i) from None


def write_numpy(source: RecordingSource, path: str | os.PathLike, *, compress: bool = False) -> Path:
    """Write ``source`` as an ``.npz`` (when ``path`` ends in .npz) or a folder of ``.npy`` files.

    Frames are streamed one at a time into the arrays; a stream whose frame count is not
    known up front is spooled to a temporary file first.

    Parameters
    ----------
    source : RecordingSource
    path : path
        ``*.npz`` or a folder to create; refused when it exists.
    compress : bool
        Deflate the ``.npz`` members (ignored for folders).

    Returns
    -------
    pathlib.Path
    """
    validate_source_for_writing(source)
    path = refuse_existing(path)
    fps = common_fps(source)
    staged = staging_path(path)
    times: dict[str, list[float]] = {}
    meta = {"format": "deepepil.numpy", "version": 1, "fps": fps, "attrs": dict(source.attrs)}
    try:
        if path.suffix.lower() == ".npz":
            mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            with zipfile.ZipFile(staged, "w", compression=mode, allowZip64=True) as zf:
                for stream in source.streams:
                    with zf.open(f"{stream}.npy", "w", force_zip64=True) as f:
                        times[stream] = _write_stream(source, stream, f, staged.parent)
                for key, value in _time_arrays(times).items():
                    _write_member(zf, key, value)
                _write_member(zf, "fps", np.float64(fps))
                _write_member(zf, "meta_json", np.array(dumps(meta)))
                if source.calibration:
                    _write_member(zf, "calibration_json", np.array(dumps(source.calibration)))
        else:
            staged.mkdir()
            for stream in source.streams:
                with open(staged / f"{stream}.npy", "wb") as f:
                    times[stream] = _write_stream(source, stream, f, staged)
            for key, value in _time_arrays(times).items():
                np.save(staged / f"{key}.npy", value)
            (staged / "meta.json").write_text(dumps(meta), encoding="utf-8")
            if source.calibration:
                (staged / "calibration.json").write_text(dumps(source.calibration), encoding="utf-8")
    except BaseException:
        discard(staged)
        raise
    return publish(staged, path)


def _write_member(zf: zipfile.ZipFile, name: str, value: Any) -> None:
    with zf.open(f"{name}.npy", "w") as f:
        np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)


def _time_arrays(times: dict[str, list[float]]) -> dict[str, np.ndarray]:
    names = list(times)
    reference = times[names[0]]
    out = {"time_seconds": np.asarray(reference, dtype="float64")}
    for stream in names[1:]:
        if times[stream] != reference:
            out[f"time_seconds_{stream}"] = np.asarray(times[stream], dtype="float64")
    return out


def _header(info: StreamInfo, n: int) -> dict[str, Any]:
    return {"descr": np.lib.format.dtype_to_descr(np.dtype(info.dtype)), "fortran_order": False,
            "shape": (n, *info.frame_shape)}


def _write_stream(source: RecordingSource, stream: str, f: BinaryIO, tmp_dir: Path) -> list[float]:
    """Write one stream as an .npy to ``f``, frame by frame; return its timestamps."""
    info = source.streams[stream]
    times: list[float] = []
    if info.num_frames is not None:
        np.lib.format.write_array_header_2_0(f, _header(info, info.num_frames))
        for frame in frames_checked(source, stream):
            if len(times) == info.num_frames:
                raise FrameMismatchError(f"the source yields more than the {info.num_frames} {stream} frames"
                                         " it announced", path=source.path, frame_index=len(times))
            f.write(np.ascontiguousarray(frame.data).tobytes())
            times.append(frame.pts_seconds)
        if len(times) != info.num_frames:
            raise FrameMismatchError(f"the source announced {info.num_frames} {stream} frames but yielded"
                                     f" {len(times)}", path=source.path, frame_index=len(times))
        return times
    with tempfile.TemporaryFile(dir=tmp_dir) as spool:
        for frame in frames_checked(source, stream):
            spool.write(np.ascontiguousarray(frame.data).tobytes())
            times.append(frame.pts_seconds)
        np.lib.format.write_array_header_2_0(f, _header(info, len(times)))
        spool.seek(0)
        shutil.copyfileobj(spool, f, 1 << 22)
    return times
