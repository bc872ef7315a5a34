"""Plain video files (MP4, AVI, MKV, MOV) through PyAV, and :func:`write_video`.

One stream per video track: colour video is ``rgb`` (decoded to rgb24); a track whose title
is ``IR``/``DEPTH``, a single-track file whose name ends in ``_ir``/``_depth``, or a 16-bit
grey track (``gray16le``, e.g. FFV1) is ``ir``/``depth`` as uint16 (default ``depth``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from deepepil.errors import CorruptSourceError
from deepepil.recordings.readers._common import (
    LazyTimestamps,
    TimestampChecker,
    calibration_or_default,
    check_frame,
    discard,
    merged_attrs,
    publish,
    refuse_existing,
    snap_fps,
    staging_path,
)
from deepepil.recordings.readers.base import Reader
from deepepil.recordings.source import Frame, RecordingSource, StreamInfo, frame_shape_for

__all__ = ["VideoReader", "VideoSource", "write_video", "VIDEO_SUFFIXES"]

#: File suffixes the video reader accepts.
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".mov", ".m4v")

#: Grey pixel formats decoded as 16-bit values unchanged (no rescaling).
_DEEP_GRAY = ("gray16le", "gray16be", "gray14le", "gray12le", "gray10le", "gray9le",
              "gray12be", "gray10be", "gray14be", "gray9be")
_TITLES = {"ir": "ir", "depth": "depth", "color": "rgb", "colour": "rgb", "rgb": "rgb"}
#: Default pixel format per encoder for colour input.
_RGB_PIX_FMT = {"libx264": "yuv420p", "h264": "yuv420p", "mpeg4": "yuv420p", "mjpeg": "yuvj420p",
                "ffv1": "bgr0", "png": "rgb24", "rawvideo": "rgb24"}


def _open_container(path: str) -> Any:
    try:
        return av.open(path)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise CorruptSourceError(
            f"cannot be opened as a video file ({exc}); it is truncated, corrupt or not a video",
            path=path,
        ) from None


@dataclass(frozen=True)
class _Track:
    """Where one stream lives in a video file and how to decode it."""

    index: int
    pix_fmt: str
    count_from: str


def _stream_name(vs: Any, stem: str, single: bool) -> str:
    title = str(vs.metadata.get("title", "")).strip().lower()
    if title in _TITLES:
        return _TITLES[title]
    if single:
        lowered = stem.lower()
        if lowered.endswith("_ir"):
            return "ir"
        if lowered.endswith("_depth"):
            return "depth"
    pix_fmt = vs.format.name if vs.format is not None else ""
    return "depth" if pix_fmt in _DEEP_GRAY else "rgb"


def _tag_count(metadata: Mapping[str, str]) -> int | None:
    for key, value in metadata.items():
        if key.upper().split("-")[0] == "NUMBER_OF_FRAMES":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _demux_pts(path: str, indices: list[int]) -> dict[int, list[float]]:
    """Presentation times of every packet of the given tracks, without decoding."""
    times: dict[int, list[float]] = {i: [] for i in indices}
    container = _open_container(path)
    try:
        streams = [container.streams[i] for i in indices]
        for packet in container.demux(streams):
            if packet.size and packet.stream.index in times:
                pts = packet.pts if packet.pts is not None else packet.dts
                times[packet.stream.index].append(
                    float(pts * packet.time_base) if pts is not None else float("nan")
                )
    except av.FFmpegError as exc:
        raise CorruptSourceError(f"cannot read packets: {exc}", path=path) from None
    finally:
        container.close()
    return {i: sorted(t) for i, t in times.items()}


def demux_times(path: str, index: int) -> np.ndarray:
    """Presentation times in seconds of track ``index``, from packets (no decoding)."""
    return np.asarray(_demux_pts(path, [index])[index], dtype="float64")


def to_array(frame: av.VideoFrame, stream: str, pix_fmt: str) -> np.ndarray:
    """Decoded PyAV frame to the stream's array (rgb uint8 HxWx3, ir/depth uint16 HxW)."""
    if stream == "rgb":
        return frame.to_ndarray(format="rgb24")
    if pix_fmt in ("gray16le", "gray16be"):
        return frame.to_ndarray(format="gray16le")
    if pix_fmt in _DEEP_GRAY:
        return np.ascontiguousarray(frame.to_ndarray()).astype("uint16")
    return frame.to_ndarray(format="gray").astype("uint16")


def decode_track(
    path: str, index: int, info: StreamInfo, pix_fmt: str, *, check_times: bool = True
) -> Iterator[Frame]:
    """Decode one video track frame by frame, checking shape, timestamps and the count."""
    container = _open_container(path)
    checker = TimestampChecker(path, info.name, info.fps)
    i = 0
    try:
        vs = container.streams[index]
        vs.thread_type = "AUTO"
        try:
            for av_frame in container.decode(vs):
                data = to_array(av_frame, info.name, pix_fmt)
                check_frame(data, info, path, i)
                t = float(av_frame.time) if av_frame.pts is not None else i / info.fps
                if check_times:
                    checker.check(i, t)
                yield Frame(i, t, data)
                i += 1
        except av.FFmpegError as exc:
            raise CorruptSourceError(f"cannot decode {info.name} frame: {exc}", path=path, frame_index=i) from None
    finally:
        container.close()
    if info.num_frames is not None and i != info.num_frames:
        raise CorruptSourceError(
            f"the container promises {info.num_frames} {info.name} frames but {i} could be read"
            + ("; the file is truncated or damaged" if i < info.num_frames else ""),
            path=path, frame_index=min(i, info.num_frames),
        )


def _nominal_fps(container: Any, vs: Any, probe_packets: int = 64) -> float | None:
    """The nominal frame rate: Matroska's DefaultDuration, else the median step of the first packets.

    MP4 and MOV store no nominal rate, and FFmpeg's guesses go wrong around dropped frames.
    """
    if "matroska" in container.format.name and vs.average_rate:
        return snap_fps(float(vs.average_rate))
    pts = []
    try:
        for packet in container.demux(vs):
            if packet.size and packet.pts is not None:
                pts.append(float(packet.pts * packet.time_base))
                if len(pts) >= probe_packets:
                    break
    except av.FFmpegError:
        pass
    steps = np.diff(np.sort(np.asarray(pts)))
    steps = steps[steps > 0]
    if len(steps):
        return snap_fps(1.0 / float(np.median(steps)))
    rate = vs.average_rate or vs.guessed_rate or vs.base_rate
    return snap_fps(float(rate)) if rate else None


def probe_tracks(path: str) -> tuple[dict[str, StreamInfo], dict[str, _Track], dict[str, Any]]:
    """Read a video file's streams from its header (one packet pass if counts are missing)."""
    container = _open_container(path)
    infos: dict[str, StreamInfo] = {}
    tracks: dict[str, _Track] = {}
    ignored: list[int] = []
    try:
        video = list(container.streams.video)
        if not video:
            raise CorruptSourceError("holds no video track", path=path)
        stem = Path(path).stem
        for vs in video:
            name = _stream_name(vs, stem, single=len(video) == 1)
            if name in infos:
                ignored.append(vs.index)
                continue
            rate = _nominal_fps(container, vs)
            if not rate or vs.width <= 0 or vs.height <= 0:
                raise CorruptSourceError(f"track {vs.index} has no frame size or rate", path=path)
            count, count_from = _tag_count(vs.metadata), "tags"
            if count is None and vs.frames > 0:
                count, count_from = int(vs.frames), "container"
            infos[name] = StreamInfo(
                name, frame_shape_for(name, vs.height, vs.width), "uint8" if name == "rgb" else "uint16",
                count, rate,
            )
            tracks[name] = _Track(vs.index, vs.format.name if vs.format is not None else "", count_from)
        extra = {
            "container": container.format.name,
            "codecs": {n: container.streams[t.index].codec_context.name for n, t in tracks.items()},
        }
        if ignored:
            extra["ignored_tracks"] = ignored
    finally:
        container.close()
    missing = [n for n, info in infos.items() if info.num_frames is None]
    if missing:  # the header does not say: count packets (no decoding)
        pts = _demux_pts(path, [tracks[n].index for n in missing])
        for n in missing:
            infos[n] = StreamInfo(n, infos[n].frame_shape, infos[n].dtype, len(pts[tracks[n].index]), infos[n].fps)
            tracks[n] = _Track(tracks[n].index, tracks[n].pix_fmt, "demux")
    extra["num_frames_from"] = {n: t.count_from for n, t in tracks.items()}
    return infos, tracks, extra


class VideoSource(RecordingSource):
    """A video file opened lazily; every :meth:`iter_frames` call decodes from the start."""

    def __init__(self, path: str, reader_name: str = "video") -> None:
        self.path = path
        self.streams, self._tracks, extra = probe_tracks(path)
        self.calibration = calibration_or_default(None, self.streams)
        self.attrs = merged_attrs(reader_name, None, **extra)
        self.timestamps_seconds = LazyTimestamps(self.streams, self._timestamps)

    def _timestamps(self, stream: str) -> np.ndarray:
        return demux_times(self.path, self._tracks[stream].index)

    def iter_frames(self, stream: str) -> Iterator[Frame]:
        track = self._tracks[stream]
        return decode_track(self.path, track.index, self.streams[stream], track.pix_fmt)


class VideoReader(Reader):
    """MP4, AVI, MKV and MOV files decoded with PyAV (FFmpeg)."""

    name = "video"
    description = "video files (.mp4 .avi .mkv .mov .m4v) decoded with PyAV/FFmpeg"
    url = "https://pyav.basswood-io.com/"

    def guess_can_open(self, path: str | os.PathLike) -> bool:
        try:
            return os.path.isfile(path) and Path(path).suffix.lower() in VIDEO_SUFFIXES
        except (TypeError, ValueError, OSError):
            return False

    def open(self, path: str | os.PathLike) -> VideoSource:
        return VideoSource(os.fspath(path), self.name)


def _frames_and_times(
    frames: np.ndarray | Iterable[Any], fps: float, timestamps_seconds: Iterable[float] | None
) -> Iterator[tuple[np.ndarray, float]]:
    times = iter(timestamps_seconds) if timestamps_seconds is not None else None
    for i, item in enumerate(frames):
        if isinstance(item, Frame):
            data, t = item.data, item.pts_seconds
        else:
            data, t = item, i / fps
        if times is not None:
            try:
                t = float(next(times))
            except StopIteration:
                raise ValueError(f"timestamps_seconds has fewer entries than frames (frame {i})") from None
        yield np.asarray(data), t


def write_video(
    frames: np.ndarray | Iterable[Any],
    path: str | os.PathLike,
    fps: float,
    codec: str = "libx264",
    gop: int = 250,
    crf: int = 18,
    *,
    timestamps_seconds: Iterable[float] | None = None,
    num_frames: int | None = None,
    title: str | None = None,
    pix_fmt: str | None = None,
) -> Path:
    """Encode frames into a video file, streaming (one frame in memory at a time).

    Parameters
    ----------
    frames : numpy.ndarray or iterable
        ``(T, H, W, 3)`` uint8 colour or ``(T, H, W)`` uint16 grey, or an iterable of such
        frames or of :class:`~deepepil.recordings.source.Frame` (whose ``pts_seconds`` are used).
    path : path
        Target file; the suffix picks the container. Refused when it exists.
    fps : float
        Nominal frame rate.
    codec : str
        FFmpeg encoder: ``"libx264"`` (lossy colour), ``"ffv1"`` (lossless, also 16-bit grey), ...
    gop : int
        Keyframe interval in frames.
    crf : int
        Constant rate factor for x264/x265 (lower is better quality).
    timestamps_seconds : iterable of float, optional
        Per-frame times; default the frames' own or ``index / fps``.
    num_frames : int, optional
        Frame count, stored as a ``NUMBER_OF_FRAMES`` tag in Matroska when known up front.
    title : str, optional
        Track title (``"IR"``/``"DEPTH"`` make the video reader name the stream).
    pix_fmt : str, optional
        Encoder pixel format; default chosen from the codec and the frame dtype.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if gop < 1:
        raise ValueError(f"gop must be >= 1, got {gop}")
    path = refuse_existing(path)
    if isinstance(frames, np.ndarray) and num_frames is None:
        num_frames = int(frames.shape[0])
    try:
        encoder = av.codec.Codec(codec, "w")
    except av.FFmpegError:
        raise ValueError(f"no FFmpeg encoder named {codec!r}; try 'libx264' or 'ffv1'") from None
    staged = staging_path(path)
    time_base = Fraction(1, 90000)
    container = av.open(os.fspath(staged), "w", format=_format_for(path))
    stream = None
    previous_pts: int | None = None
    try:
        for i, (data, t) in enumerate(_frames_and_times(frames, fps, timestamps_seconds)):
            if stream is None:
                stream, in_fmt = _add_stream(container, encoder, data, fps, gop, crf, pix_fmt, time_base)
                if num_frames is not None:
                    stream.metadata["NUMBER_OF_FRAMES"] = str(num_frames)
                if title:
                    stream.metadata["title"] = title
                shape, dtype = data.shape, data.dtype
            if data.shape != shape or data.dtype != dtype:
                raise ValueError(f"frame {i} is {data.dtype} {data.shape}, the first frame was {dtype} {shape}")
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(data.astype("<u2") if in_fmt == "gray16le" else data), format=in_fmt
            )
            frame.time_base = time_base
            frame.pts = round(t / time_base)
            if previous_pts is not None and frame.pts <= previous_pts:
                raise ValueError(
                    f"{path}: frame {i} is at {t:.6f} s, not after the previous frame; video timestamps"
                    " must increase"
                )
            previous_pts = frame.pts
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is None:
            raise ValueError("no frames to write")
        for packet in stream.encode():
            container.mux(packet)
        container.close()
    except BaseException:
        container.close()
        discard(staged)
        raise
    return publish(staged, path)


def _format_for(path: Path) -> str:
    suffix = path.suffix.lower()
    formats = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
    if suffix not in formats:
        raise ValueError(f"{path}: unknown video suffix {suffix!r}; valid: {', '.join(formats)}")
    return formats[suffix]


def _add_stream(
    container: Any, encoder: Any, data: np.ndarray, fps: float, gop: int, crf: int,
    pix_fmt: str | None, time_base: Fraction,
) -> tuple[Any, str]:
    supported = [f.name for f in (encoder.video_formats or ())]
    if data.ndim == 3 and data.shape[2] == 3 and data.dtype == np.uint8:
        in_fmt = "rgb24"
        pix_fmt = pix_fmt or _RGB_PIX_FMT.get(encoder.name) or (supported[0] if supported else "yuv420p")
    elif data.ndim == 2 and data.dtype == np.uint16:
        in_fmt = "gray16le"
        if pix_fmt is None:
            pix_fmt = next((f for f in ("gray16le", "gray16be") if f in supported), None)
            if pix_fmt is None:
                raise ValueError(
                    f"encoder {encoder.name!r} cannot store 16-bit grey frames losslessly; use codec='ffv1'"
                )
    else:
        raise ValueError(f"frames must be (H, W, 3) uint8 or (H, W) uint16, got {data.dtype} {data.shape}")
    height, width = data.shape[:2]
    if pix_fmt.startswith(("yuv420", "yuvj420", "nv12")) and (width % 2 or height % 2):
        raise ValueError(f"{pix_fmt} needs an even frame size, got {width}x{height}; crop or pad the frames")
    stream = container.add_stream(encoder.name, rate=Fraction(fps).limit_denominator(1001 * 1000))
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.codec_context.time_base = time_base
    stream.codec_context.gop_size = gop
    if encoder.name in ("libx264", "libx265"):
        stream.codec_context.options = {"crf": str(crf)}
    return stream, in_fmt
