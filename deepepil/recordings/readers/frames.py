"""Folders of numbered frame images, and :func:`write_frames_folder` to make them.

Layout::

    recording/
      rgb/000000.jpg ...     colour frames (JPEG or PNG), or instead a video file rgb.mp4
      ir/000000.png ...      16-bit grey PNG
      depth/000000.png ...   16-bit grey PNG, millimetres
      calibration.json       optional; default intrinsics otherwise
      timestamps.csv         optional: frame_index,time_seconds (default frame_index / fps)
      timestamps_<stream>.csv  optional, for a stream whose times differ
      meta.json              optional: {"fps": 30, "attrs": {...}}

Frames are ordered by the last number in their file name; the numbers must be
consecutive (a gap means a missing frame).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from deepepil.errors import CorruptSourceError, FrameMismatchError, TimestampError
from deepepil.recordings.readers import video as _video
from deepepil.recordings.readers._common import (
    LazyTimestamps,
    calibration_or_default,
    check_frame,
    checked_fps,
    check_timestamps,
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
from deepepil.recordings.source import STREAM_NAMES, Frame, RecordingSource, StreamInfo, frame_shape_for

__all__ = ["FramesReader", "FramesSource", "write_frames_folder", "IMAGE_SUFFIXES", "DEFAULT_FPS"]

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm")
#: Frame rate assumed when neither meta.json nor timestamps say otherwise.
DEFAULT_FPS = 30.0
_NUMBER = re.compile(r"(\d+)(?!.*\d)")
_GREY_MODES = ("I;16", "I;16L", "I;16B", "I", "L")


class FramesReader(Reader):
    """Folders with rgb/, ir/, depth/ subfolders of numbered images (or an rgb video)."""

    name = "frames"
    description = "folder of numbered frame images: rgb/ (JPEG/PNG or rgb.mp4), ir/ and depth/ (16-bit PNG)"
    url = "https://github.com/deepepil/deepepil/blob/main/deepepil/recordings/readers/frames.py"

    def guess_can_open(self, path: str | os.PathLike) -> bool:
        try:
            folder = Path(path)
            if not folder.is_dir():
                return False
            return any(_stream_location(folder, s) is not None for s in STREAM_NAMES)
        except (TypeError, ValueError, OSError):
            return False

    def open(self, path: str | os.PathLike) -> FramesSource:
        return FramesSource(os.fspath(path), self.name)


def _stream_location(folder: Path, stream: str) -> Path | None:
    sub = folder / stream
    if sub.is_dir():
        return sub
    for suffix in _video.VIDEO_SUFFIXES:
        candidate = folder / f"{stream}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _numbered_images(folder: Path, stream: str) -> list[Path]:
    entries = []
    for entry in os.scandir(folder):
        name = entry.name
        if name.startswith(".") or not entry.is_file() or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        match = _NUMBER.search(Path(name).stem)
        if match is None:
            raise CorruptSourceError(
                "frame images need a frame number in their name (e.g. 000012.png)", path=str(folder / name)
            )
        entries.append((int(match.group(1)), name))
    entries.sort()
    for i in range(1, len(entries)):
        (prev, prev_name), (num, name) = entries[i - 1], entries[i]
        if num == prev:
            raise TimestampError(f"{stream} frame number {num} appears twice ({prev_name}, {name})",
                                 path=str(folder), frame_index=i)
        if num != prev + 1:
            raise TimestampError(
                f"{stream} frame {i} is missing: after {prev_name} comes {name} "
                f"({num - prev - 1} frame file(s) missing)", path=str(folder), frame_index=i,
            )
    return [folder / name for _, name in entries]


def _read_times_csv(path: Path, stream: str) -> np.ndarray:
    times: list[float] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if header[:2] != ["frame_index", "time_seconds"]:
                raise CorruptSourceError(
                    f"header is {','.join(header)!r}; expected 'frame_index,time_seconds'", path=str(path)
                )
            for row_number, row in enumerate(reader):
                if not row or not "".join(row).strip():
                    continue
                try:
                    index, t = int(row[0]), float(row[1])
                except (ValueError, IndexError):
                    raise CorruptSourceError(f"row {row_number + 2} is not 'frame_index,time_seconds': {row}",
                                             path=str(path)) from None
                if index != len(times):
                    raise TimestampError(
                        f"{stream} timestamps list frame {index} where frame {len(times)} was expected"
                        " (frames missing or out of order)", path=str(path), frame_index=len(times),
                    )
                times.append(t)
    except OSError as exc:
        raise CorruptSourceError(f"cannot read timestamps: {exc}", path=str(path)) from None
    return np.asarray(times, dtype="float64")


def _grey_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16L"):
        return np.array(img, dtype="<u2")
    array = np.asarray(img)
    if img.mode == "I" and (array.min(initial=0) < 0 or array.max(initial=0) > 65535):
        raise ValueError("32-bit grey values outside 0..65535")
    return array.astype("uint16")


class FramesSource(RecordingSource):
    """A frames folder opened lazily: listing and one header per stream at open."""

    def __init__(self, path: str, reader_name: str = "frames") -> None:
        self.path = path
        folder = Path(path)
        meta = read_json_object(folder / "meta.json") if (folder / "meta.json").is_file() else {}
        fps = checked_fps(meta["fps"], folder / "meta.json") if "fps" in meta else None
        self._files: dict[str, list[Path]] = {}
        self._videos: dict[str, tuple[str, int, str]] = {}  # stream -> (file, track, pix_fmt)
        locations = {s: loc for s in STREAM_NAMES if (loc := _stream_location(folder, s)) is not None}
        if not locations:
            raise CorruptSourceError(f"holds none of {', '.join(STREAM_NAMES)} (folders or videos)", path=path)
        infos: dict[str, StreamInfo] = {}
        for stream, where in locations.items():
            if where.is_file():
                v_infos, v_tracks, _ = _video.probe_tracks(str(where))
                v_name, v_info = next(iter(v_infos.items()))
                stream_fps = fps if "fps" in meta else v_info.fps
                fps = stream_fps if fps is None else fps  # image streams follow the first video
                infos[stream] = StreamInfo(stream, frame_shape_for(stream, *v_info.frame_shape[:2]),
                                           _dtype(stream), v_info.num_frames, stream_fps)
                self._videos[stream] = (str(where), v_tracks[v_name].index, v_tracks[v_name].pix_fmt)
        fps_from = "meta.json" if "fps" in meta else ("video" if self._videos else "assumed")
        fps = DEFAULT_FPS if fps is None else fps
        for stream, where in locations.items():
            if where.is_dir():
                files = _numbered_images(where, stream)
                if not files:
                    raise CorruptSourceError(f"{stream}/ holds no frame images ({', '.join(IMAGE_SUFFIXES)})",
                                             path=str(where))
                self._files[stream] = files
                infos[stream] = StreamInfo(stream, self._first_shape(files[0], stream), _dtype(stream),
                                           len(files), fps)
        self.streams = {s: infos[s] for s in locations}
        self.timestamps_seconds = self._load_timestamps(folder)
        cal_path = folder / "calibration.json"
        self.calibration = calibration_or_default(read_json_object(cal_path) if cal_path.is_file() else None,
                                                  self.streams)
        self.attrs = merged_attrs(reader_name, meta.get("attrs"), layout={
            s: f"video {Path(self._videos[s][0]).name}" if s in self._videos else "images" for s in self.streams
        })
        if fps_from != "meta.json":
            self.attrs["fps_assumed" if fps_from == "assumed" else "fps_from_video"] = True

    @staticmethod
    def _first_shape(file: Path, stream: str) -> tuple[int, ...]:
        try:
            with Image.open(file) as img:
                width, height = img.size
                mode = img.mode
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptSourceError(f"cannot read image header: {exc}", path=str(file), frame_index=0) from None
        if stream != "rgb" and mode not in _GREY_MODES:
            raise FrameMismatchError(f"{stream} frames must be grey images (16-bit PNG), this one is {mode}",
                                     path=str(file), frame_index=0)
        return frame_shape_for(stream, height, width)

    def _load_timestamps(self, folder: Path) -> LazyTimestamps:
        shared = folder / "timestamps.csv"
        shared_times = _read_times_csv(shared, "shared") if shared.is_file() else None
        known: dict[str, np.ndarray] = {}
        for stream, info in self.streams.items():
            own = folder / f"timestamps_{stream}.csv"
            if own.is_file():
                times, source = _read_times_csv(own, stream), own
            elif shared_times is not None:
                times, source = shared_times, shared
            elif stream in self._videos:
                continue  # the video's own timestamps
            else:
                known[stream] = np.arange(info.num_frames or 0) / info.fps
                continue
            if len(times) != info.num_frames:
                raise FrameMismatchError(
                    f"{source.name} lists {len(times)} times but {stream} has {info.num_frames} frames",
                    path=str(source),
                )
            check_timestamps(times, info.fps, str(source), stream)
            known[stream] = times
        self._known_times = known

        def compute(stream: str) -> np.ndarray:
            if stream in known:
                return known[stream]
            path, index, _ = self._videos[stream]
            return _video.demux_times(path, index)

        return LazyTimestamps(self.streams, compute)

    def iter_frames(self, stream: str) -> Iterator[Frame]:
        info = self.streams[stream]
        times = self._known_times.get(stream)
        if stream in self._videos:
            path, index, pix_fmt = self._videos[stream]
            for frame in _video.decode_track(path, index, info, pix_fmt, check_times=times is None):
                yield frame if times is None else Frame(frame.index, float(times[frame.index]), frame.data)
            return
        for i, file in enumerate(self._files[stream]):
            try:
                with Image.open(file) as img:
                    if stream == "rgb":
                        data = np.array(img if img.mode == "RGB" else img.convert("RGB"))
                    elif img.mode in _GREY_MODES:
                        data = _grey_array(img)
                    else:
                        raise FrameMismatchError(f"{stream} frame is a {img.mode} image; expected 16-bit grey",
                                                 path=str(file), frame_index=i)
            except (OSError, SyntaxError, ValueError) as exc:
                if isinstance(exc, CorruptSourceError):
                    raise
                raise CorruptSourceError(f"cannot decode {stream} frame image: {exc}", path=str(file),
                                         frame_index=i) from None
            check_frame(data, info, str(file), i, where=f"the first frame {self._files[stream][0].name} "
                        f"is {info.frame_shape[1]}x{info.frame_shape[0]}")
            yield Frame(i, float(times[i]), data)


def _dtype(stream: str) -> str:
    return "uint8" if stream == "rgb" else "uint16"


def write_frames_folder(
    source: RecordingSource,
    path: str | os.PathLike,
    rgb_as: Literal["mp4", "png", "jpeg"] = "mp4",
    *,
    jpeg_quality: int = 95,
    crf: int = 18,
) -> Path:
    """Write ``source`` as a frames folder, one frame at a time.

    Parameters
    ----------
    source : RecordingSource
    path : path
        Folder to create; refused when it exists (written aside, then renamed into place).
    rgb_as : {"mp4", "png", "jpeg"}
        Colour as an H.264 ``rgb.mp4`` (``crf``), lossless PNGs, or JPEGs (``jpeg_quality``).
        IR and depth are always 16-bit PNG (lossless).

    Returns
    -------
    pathlib.Path
    """
    if rgb_as not in ("mp4", "png", "jpeg"):
        raise ValueError(f"rgb_as must be one of 'mp4', 'png', 'jpeg'; got {rgb_as!r}")
    validate_source_for_writing(source)
    path = refuse_existing(path)
    fps = common_fps(source)
    staged = staging_path(path)
    staged.mkdir()
    layout: dict[str, str] = {}
    times: dict[str, list[float]] = {}
    try:
        for stream, info in source.streams.items():
            times[stream] = stream_times = []
            if stream == "rgb" and rgb_as == "mp4":
                def recorded(s: str = stream, acc: list[float] = stream_times) -> Iterator[Frame]:
                    for frame in frames_checked(source, s):
                        acc.append(frame.pts_seconds)
                        yield frame
                _video.write_video(recorded(), staged / "rgb.mp4", fps, crf=crf, num_frames=info.num_frames)
                layout[stream] = "rgb.mp4"
                continue
            suffix = ".jpg" if stream == "rgb" and rgb_as == "jpeg" else ".png"
            (staged / stream).mkdir()
            for frame in frames_checked(source, stream):
                stream_times.append(frame.pts_seconds)
                img = Image.fromarray(np.ascontiguousarray(frame.data, dtype="uint8" if stream == "rgb" else "<u2"))
                target = staged / stream / f"{frame.index:06d}{suffix}"
                if suffix == ".jpg":
                    img.save(target, format="JPEG", quality=jpeg_quality)
                else:
                    img.save(target, format="PNG")
            layout[stream] = f"{stream}/%06d{suffix}"
        _write_times(staged, times)
        meta = {"format": "deepepil.frames", "version": 1, "fps": fps, "layout": layout,
                "attrs": dict(source.attrs)}
        (staged / "meta.json").write_text(dumps(meta), encoding="utf-8")
        if source.calibration:
            (staged / "calibration.json").write_text(dumps(source.calibration), encoding="utf-8")
    except BaseException:
        discard(staged)
        raise
    return publish(staged, path)


def _write_times(folder: Path, times: dict[str, list[float]]) -> None:
    names = list(times)
    reference = times[names[0]]
    _write_csv(folder / "timestamps.csv", reference)
    for stream in names[1:]:
        if times[stream] != reference:
            _write_csv(folder / f"timestamps_{stream}.csv", times[stream])


def _write_csv(path: Path, times: list[float]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write("frame_index,time_seconds\n")
        for i, t in enumerate(times):
            f.write(f"{i},{float(t)!r}\n")
