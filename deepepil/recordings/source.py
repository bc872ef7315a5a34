"""What a reader opens: a recording as streams of frames, read lazily and in order.

Every reader's ``open`` returns a :class:`RecordingSource`; the synthetic generator
produces one too, the format writers consume one, and ingest turns one into a Zarr
store. :class:`ArraySource` holds frames already in memory (tests, small arrays).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "STREAM_NAMES",
    "StreamInfo",
    "Frame",
    "RecordingSource",
    "ArraySource",
    "frame_shape_for",
]

#: Stream names a recording may carry, in display order.
STREAM_NAMES: tuple[str, ...] = ("rgb", "ir", "depth")

#: dtype each stream is stored with.
STREAM_DTYPES: Mapping[str, str] = {"rgb": "uint8", "ir": "uint16", "depth": "uint16"}


def frame_shape_for(stream: str, height: int, width: int) -> tuple[int, ...]:
    """Shape of one frame of ``stream``: ``(height, width, 3)`` for rgb, else ``(height, width)``."""
    return (height, width, 3) if stream == "rgb" else (height, width)


@dataclass(frozen=True)
class StreamInfo:
    """Metadata of one stream, known before any frame is decoded.

    Parameters
    ----------
    name : str
        One of :data:`STREAM_NAMES`.
    frame_shape : tuple of int
        ``(height, width, 3)`` for rgb, ``(height, width)`` for ir and depth.
    dtype : str
        ``"uint8"`` for rgb, ``"uint16"`` for ir and depth.
    num_frames : int or None
        Number of frames, or None when only known after reading.
    fps : float
        Nominal frame rate in frames per second.
    """

    name: str
    frame_shape: tuple[int, ...]
    dtype: str
    num_frames: int | None
    fps: float

    def __post_init__(self) -> None:
        if self.name not in STREAM_NAMES:
            raise ValueError(f"stream name {self.name!r} is not one of {STREAM_NAMES}")
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the stream, its time, and its pixels."""

    index: int
    pts_seconds: float
    data: np.ndarray = field(repr=False)


class RecordingSource(abc.ABC):
    """An opened recording.

    Attributes
    ----------
    path : str
        What was opened (file or folder), used in error messages.
    streams : Mapping[str, StreamInfo]
        The streams present, keyed by name.
    calibration : dict
        JSON-serialisable camera calibration (see :mod:`deepepil.recordings.calibration`).
    attrs : dict
        JSON-serialisable metadata from the source (device, format, ...).
    """

    path: str
    streams: Mapping[str, StreamInfo]
    calibration: dict[str, Any]
    attrs: dict[str, Any]

    @abc.abstractmethod
    def iter_frames(self, stream: str) -> Iterator[Frame]:
        """Yield the frames of ``stream`` in order, decoding lazily.

        Raises :class:`deepepil.errors.CorruptSourceError` naming the file and the
        frame when the data cannot be decoded.
        """

    def close(self) -> None:
        """Release files held open by the source."""

    def __enter__(self) -> "RecordingSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        streams = ", ".join(
            f"{s.name} {s.num_frames}x{'x'.join(map(str, s.frame_shape))} {s.dtype}"
            for s in self.streams.values()
        )
        return f"<{type(self).__name__} {self.path!r}: {streams}>"


class ArraySource(RecordingSource):
    """A recording whose frames are arrays already in memory (or memory-mapped).

    Parameters
    ----------
    streams : Mapping[str, numpy.ndarray]
        Arrays with time first, keyed by stream name.
    fps : float
        Frame rate in frames per second.
    timestamps_seconds : numpy.ndarray, optional
        Per-frame times; default ``arange(n) / fps``.
    calibration, attrs : dict, optional
        Stored with the recording.
    path : str
        Name used in messages.
    """

    def __init__(
        self,
        streams: Mapping[str, np.ndarray],
        fps: float,
        *,
        timestamps_seconds: np.ndarray | None = None,
        calibration: dict[str, Any] | None = None,
        attrs: dict[str, Any] | None = None,
        path: str = "<arrays>",
    ) -> None:
        self.path = path
        self._arrays = dict(streams)
        self.streams = {
            name: StreamInfo(name, tuple(a.shape[1:]), str(a.dtype), int(a.shape[0]), float(fps))
            for name, a in self._arrays.items()
        }
        n = max((a.shape[0] for a in self._arrays.values()), default=0)
        self.timestamps_seconds = (
            np.arange(n, dtype="float64") / fps
            if timestamps_seconds is None
            else np.asarray(timestamps_seconds, dtype="float64")
        )
        self.calibration = dict(calibration or {})
        self.attrs = dict(attrs or {})

    def iter_frames(self, stream: str) -> Iterator[Frame]:
        array = self._arrays[stream]
        for i in range(array.shape[0]):
            yield Frame(i, float(self.timestamps_seconds[i]), np.asarray(array[i]))
