"""Reading the frames of a clip from a recording store, one process at a time.

Readers are made on first use in the process that reads (a DataLoader worker), so no
open file or zarr store is ever pickled; a fork makes the child start afresh. For the
sharded one-frame-per-chunk layout ingest writes, the frames of a clip that share a shard
are read with one open and one index read (:class:`deepepil.recordings.framereader.FrameReader`
decodes them); other layouts go through xarray.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional

import numpy as np

__all__ = ["ClipReader"]

_MISSING = 2**64 - 1  # zarr's mark of an absent chunk in a shard index


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

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Frames ``indices`` (sorted or not) as one ``(T, *frame_shape)`` array."""
        indices = np.asarray(indices, dtype=np.int64)
        if self._frames is None:
            return np.asarray(self._array.isel(time=indices).values)
        r = self._frames
        out = np.empty((len(indices), *r.frame_shape), dtype=r.dtype)
        shards = indices // r.frames_per_shard
        for shard in np.unique(shards):
            where = np.flatnonzero(shards == shard)
            key = r.separator.join(["c", str(int(shard))] + ["0"] * len(r.frame_shape))
            try:
                with open(r.path / key, "rb") as f:
                    f.seek(-r.index_bytes, os.SEEK_END)
                    table = np.frombuffer(f.read(r.index_bytes - 4), dtype="<u8").reshape(-1, 2)
                    for k in where:
                        offset, length = (int(v) for v in table[indices[k] % r.frames_per_shard])
                        if offset == _MISSING:
                            out[k] = r.fill_value
                            continue
                        f.seek(offset)
                        out[k] = r._decode(f.read(length))
            except FileNotFoundError:
                out[where] = r.fill_value
        return out
