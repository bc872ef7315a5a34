"""Reading the frames of a clip from a recording store, one process at a time.

Readers are made on first use in the process that reads (a DataLoader worker), so no
open file or zarr store is ever pickled; a fork makes the child start afresh. For the
sharded one-frame-per-chunk layout ingest writes, the frames of a clip that share a shard
are read with one open and one index read
(:meth:`deepepil.recordings.framereader.FrameReader.read_frames`); other layouts go through xarray.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np

__all__ = ["ClipReader"]


class ClipReader:
    """Reads frames of one stream of one store; see the module docstring."""

    def __init__(self, store_path: str, stream: str) -> None:
        from deepepil.recordings.framereader import FrameReader

        self.store_path = store_path
        self.stream = stream
        self._frames: Optional[FrameReader] = None
        self._array = None
        try:
            self._frames = FrameReader(store_path, stream)
        except (ValueError, KeyError, OSError):
            import deepepil

            self._array = deepepil.open_recording(store_path)[stream]

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame: ``(H, W)`` or ``(H, W, 3)``."""
        return tuple(self._frames.frame_shape if self._frames is not None else self._array.shape[1:])

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Frames ``indices`` (sorted or not) as one ``(T, *frame_shape)`` array."""
        if self._frames is not None:
            return self._frames.read_frames(indices)
        return np.asarray(self._array.isel(time=np.asarray(indices, dtype=np.int64)).values)
