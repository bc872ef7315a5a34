"""Fast single-frame reads for display: one file read, one decode, no event loop.

The labeling widgets ask for one frame at a time, many times a second. Going through
xarray and zarr costs ~2 ms of overhead per frame (an event-loop hop, a thread hop per
codec, index decoding); for the layouts ingest writes (sharded, one frame per inner
chunk) this module reads the shard index and the frame's bytes directly and decodes them
with the same codecs, which is bit-identical and 2-3x faster (``bench/bench_store.py``).
Any other layout falls back to the xarray path, so results never depend on the layout.
"""

from __future__ import annotations

import functools
import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from deepepil.recordings.codecs import JpegCodec, Pred2DCodec

__all__ = ["FrameReader", "read_frame"]

_MISSING = 2**64 - 1  # zarr's shard index marks an absent chunk with offset = length = 2**64 - 1


class FrameReader:
    """Reads single frames of one stream of a recording store.

    Parameters
    ----------
    store_path : path-like
        The ``NAME.zarr`` folder.
    stream : str
        ``"rgb"``, ``"ir"`` or ``"depth"``.

    Raises
    ------
    ValueError
        The array's layout is not one this reader understands (use xarray instead).
    """

    def __init__(self, store_path: str | os.PathLike, stream: str) -> None:
        self.path = Path(store_path) / stream
        meta = json.loads((self.path / "zarr.json").read_text())
        codecs = meta.get("codecs", [])
        if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
            raise ValueError(f"{self.path}: not a sharded array")
        config = codecs[0]["configuration"]
        if config["chunk_shape"][0] != 1 or list(config["chunk_shape"][1:]) != list(meta["shape"][1:]):
            raise ValueError(f"{self.path}: inner chunks are not single whole frames")
        if config.get("index_location", "end") != "end":
            raise ValueError(f"{self.path}: shard index not at the end")
        names = [c["name"] for c in config["codecs"]]
        self.shape = tuple(meta["shape"])
        self.frame_shape = self.shape[1:]
        self.dtype = np.dtype(meta["data_type"])
        self.frames_per_shard = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
        self.separator = meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/")
        self.index_bytes = 16 * self.frames_per_shard + 4  # (offset, length) uint64 pairs + crc32c
        self.fill_value = meta.get("fill_value", 0)
        self.is_jpeg = names == ["deepepil.jpeg"]
        if self.is_jpeg:
            self._decode = lambda data: JpegCodec.decode_frames(data, (1, *self.frame_shape))[0]
        elif names in (["bytes", "blosc"], ["deepepil.pred2d", "bytes", "blosc"]):
            endian = config["codecs"][names.index("bytes")].get("configuration", {}).get("endian", "little")
            dtype = self.dtype.newbyteorder("<" if endian == "little" else ">")
            pred2d = names[0] == "deepepil.pred2d"
            import numcodecs.blosc

            def decode(data: bytes) -> np.ndarray:
                frame = np.frombuffer(numcodecs.blosc.decompress(data), dtype=dtype).reshape(self.frame_shape)
                frame = frame.astype(self.dtype, copy=False)
                return Pred2DCodec.decode_array(frame) if pred2d else frame

            self._decode = decode
        else:
            raise ValueError(f"{self.path}: codecs {names} are not read by FrameReader")

    def __len__(self) -> int:
        return self.shape[0]

    def _shard_path(self, shard: int) -> Path:
        return self.path / self.separator.join(["c", str(shard)] + ["0"] * len(self.frame_shape))

    def _chunk(self, index: int) -> bytes | None:
        """The stored (encoded) bytes of frame ``index``; None for a frame never written."""
        n = self.shape[0]
        if not -n <= index < n:
            raise IndexError(f"frame index {index} is outside the recording (0 to {n - 1})")
        index %= n
        shard, inner = divmod(index, self.frames_per_shard)
        try:
            with open(self._shard_path(shard), "rb") as f:
                f.seek(-self.index_bytes, os.SEEK_END)
                offset, length = np.frombuffer(f.read(16 * (inner + 1)), dtype="<u8")[-2:].tolist()
                if offset == _MISSING:
                    return None
                f.seek(offset)
                return f.read(length)
        except FileNotFoundError:
            return None

    def __getitem__(self, index: int) -> np.ndarray:
        data = self._chunk(index)
        if data is None:
            return np.full(self.frame_shape, self.fill_value, dtype=self.dtype)
        return self._decode(data)

    def read_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames ``indices`` (any order) as one ``(len(indices), *frame_shape)`` array.

        Frames that share a shard are read with one open and one index read (a training clip).
        """
        indices = np.asarray(indices, dtype=np.int64)
        n = self.shape[0]
        outside = indices[(indices < -n) | (indices >= n)]
        if outside.size:
            raise IndexError(f"frame index {int(outside[0])} is outside the recording (0 to {n - 1})")
        indices = indices % n
        out = np.empty((len(indices), *self.frame_shape), dtype=self.dtype)
        shards = indices // self.frames_per_shard
        for shard in np.unique(shards):
            where = np.flatnonzero(shards == shard)
            try:
                with open(self._shard_path(int(shard)), "rb") as f:
                    f.seek(-self.index_bytes, os.SEEK_END)
                    table = np.frombuffer(f.read(self.index_bytes - 4), dtype="<u8").reshape(-1, 2)
                    for k in where:
                        offset, length = table[indices[k] % self.frames_per_shard].tolist()
                        if offset == _MISSING:
                            out[k] = self.fill_value
                        else:
                            f.seek(offset)
                            out[k] = self._decode(f.read(length))
            except FileNotFoundError:
                out[where] = self.fill_value
        return out

    def stored_jpeg(self, index: int) -> bytes | None:
        """Frame ``index`` as the JPEG file the store holds (no decoding), for a JPEG-coded stream.

        None when the stream is not JPEG-coded or the frame was never written.
        """
        if not self.is_jpeg:
            return None
        data = self._chunk(index)
        if data is None:
            return None
        count, length = struct.unpack_from("<2I", data, 0)
        if count != 1:
            raise ValueError(f"{self.path}: the chunk of frame {index} holds {count} images, expected 1")
        return data[8 : 8 + length]


@functools.lru_cache(maxsize=64)
def _reader(store_path: str, stream: str) -> FrameReader | None:
    try:
        return FrameReader(store_path, stream)
    except (ValueError, KeyError, OSError):
        return None


def stored_jpeg(ds: xr.Dataset, stream: str, index: int) -> bytes | None:
    """Frame ``index`` of ``stream`` as the JPEG the store holds, when it is stored as JPEG, else None.

    The display path for RGB: sending the stored JPEG skips a decode and a re-encode (a 1080p
    frame: tens of ms).
    """
    index = check_frame(ds, stream, index)
    reader = _fast_reader(ds, stream)
    return reader.stored_jpeg(index) if reader is not None else None


def check_frame(ds: xr.Dataset, stream: str, index: int) -> int:
    """``index`` as a position in ``0..n-1``; KeyError/IndexError naming what exists otherwise."""
    if stream not in ds.data_vars:
        raise KeyError(
            f"recording {ds.attrs.get('name', '')!r} has no stream {stream!r}; it has: "
            f"{', '.join(map(str, ds.data_vars))}"
        )
    n = ds.sizes["time"]
    if not -n <= index < n:
        raise IndexError(f"frame index {index} is outside the recording (0 to {n - 1})")
    return index % n


def _fast_reader(ds: xr.Dataset, stream: str) -> FrameReader | None:
    path = ds.attrs.get("path")
    reader = _reader(str(path), stream) if path else None
    return reader if reader is not None and len(reader) == ds.sizes["time"] else None


def read_frame(ds: xr.Dataset, stream: str, index: int) -> np.ndarray:
    """Frame ``index`` of ``stream`` as a NumPy array: the fast path when the layout allows, else xarray."""
    index = check_frame(ds, stream, index)
    reader = _fast_reader(ds, stream)
    if reader is not None:
        return reader[index]
    return np.asarray(ds[stream].isel(time=index).values)
