"""Zarr v3 codecs for recording streams.

``deepepil.pred2d``
    Lossless array-to-array filter for 16-bit depth and IR: each pixel is replaced by
    its difference to the left neighbour, zig-zag mapped so that small negative and
    positive residuals both become small numbers. Followed by blosc-zstd it stores the
    synthetic depth 5 % and IR 10 % smaller than blosc-zstd on raw frames, but decodes
    ~4x slower (``bench/bench_store.py``), so it is an option, not the default.
``deepepil.jpeg``
    Lossy array-to-bytes codec for RGB chunks ``(frames, height, width, 3)``: one
    baseline JPEG per frame at a stated quality.

Both register with zarr on import of this module and through the ``zarr.codecs``
entry point group, so any zarr-python with deepepil installed can read the stores.
"""

from __future__ import annotations

import asyncio
import io
import struct
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image
from zarr.abc.codec import ArrayArrayCodec, ArrayBytesCodec
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.registry import register_codec

__all__ = ["Pred2DCodec", "JpegCodec"]

_JPEG_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def _config(data: dict[str, Any], name: str) -> dict[str, Any]:
    if data.get("name") != name:
        raise ValueError(f"expected codec name {name!r}, got {data.get('name')!r}")
    return dict(data.get("configuration") or {})


@dataclass(frozen=True)
class Pred2DCodec(ArrayArrayCodec):
    """Left-neighbour prediction with zig-zag residuals for unsigned 16-bit images (lossless)."""

    is_fixed_size = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Pred2DCodec":
        _config(data, "deepepil.pred2d")
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {"name": "deepepil.pred2d"}

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        native = dtype.to_native_dtype() if hasattr(dtype, "to_native_dtype") else np.dtype(dtype)
        if np.dtype(native) != np.dtype("uint16"):
            raise ValueError(f"deepepil.pred2d works on uint16 arrays only, not {native}")

    def resolve_metadata(self, chunk_spec: ArraySpec) -> ArraySpec:
        return chunk_spec

    @staticmethod
    def encode_array(x: np.ndarray) -> np.ndarray:
        """Zig-zag residuals of ``x`` against its left neighbour along the last axis."""
        x = np.ascontiguousarray(x, dtype=np.uint16)
        residual = x.copy()
        residual[..., 1:] -= x[..., :-1]  # modular uint16 arithmetic
        r = residual.view(np.int16)
        return ((r << 1) ^ (r >> 15)).view(np.uint16)

    @staticmethod
    def decode_array(z: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`encode_array`."""
        z = np.ascontiguousarray(z, dtype=np.uint16)
        r = (z >> 1) ^ (-(z & 1).astype(np.int32)).astype(np.uint16)
        return np.cumsum(r, axis=-1, dtype=np.uint16)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> NDBuffer | None:
        out = await asyncio.to_thread(self.encode_array, chunk_array.as_numpy_array())
        return chunk_spec.prototype.nd_buffer.from_numpy_array(out)

    async def _decode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> NDBuffer:
        out = await asyncio.to_thread(self.decode_array, chunk_array.as_numpy_array())
        return chunk_spec.prototype.nd_buffer.from_numpy_array(out)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        return input_byte_length


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """One JPEG per frame for ``uint8`` chunks shaped ``(frames, height, width, 3)``.

    Parameters
    ----------
    quality : int
        JPEG quality, 1 to 100.
    subsampling : {"4:2:0", "4:2:2", "4:4:4"}
        Chroma subsampling.
    """

    quality: int = 90
    subsampling: str = "4:2:0"
    is_fixed_size = False

    def __post_init__(self) -> None:
        if not (isinstance(self.quality, int) and 1 <= self.quality <= 100):
            raise ValueError(f"JPEG quality must be an integer from 1 to 100, got {self.quality!r}")
        if self.subsampling not in _JPEG_SUBSAMPLING:
            raise ValueError(
                f"JPEG subsampling must be one of {sorted(_JPEG_SUBSAMPLING)}, got {self.subsampling!r}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JpegCodec":
        return cls(**_config(data, "deepepil.jpeg"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": "deepepil.jpeg",
            "configuration": {"quality": self.quality, "subsampling": self.subsampling},
        }

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        native = dtype.to_native_dtype() if hasattr(dtype, "to_native_dtype") else np.dtype(dtype)
        if np.dtype(native) != np.dtype("uint8") or len(shape) != 4 or shape[-1] != 3:
            raise ValueError(
                f"deepepil.jpeg stores uint8 arrays shaped (frames, height, width, 3), not {native} {shape}"
            )

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> "JpegCodec":
        return replace(self)

    def encode_frames(self, frames: np.ndarray) -> bytes:
        """Encode ``(n, h, w, 3)`` uint8 frames: a count, n lengths, then n JPEGs."""
        parts = []
        for frame in frames:
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(frame), "RGB").save(
                buf, "JPEG", quality=self.quality, subsampling=_JPEG_SUBSAMPLING[self.subsampling]
            )
            parts.append(buf.getvalue())
        header = struct.pack(f"<I{len(parts)}I", len(parts), *(len(p) for p in parts))
        return header + b"".join(parts)

    @staticmethod
    def decode_frames(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """Inverse of :meth:`encode_frames` into an array of ``shape``."""
        (count,) = struct.unpack_from("<I", data, 0)
        lengths = struct.unpack_from(f"<{count}I", data, 4)
        out = np.empty(shape, dtype=np.uint8)
        offset = 4 + 4 * count
        for i, n in enumerate(lengths):
            with Image.open(io.BytesIO(data[offset : offset + n])) as im:
                out[i] = np.asarray(im.convert("RGB"))
            offset += n
        return out

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        data = await asyncio.to_thread(self.encode_frames, chunk_array.as_numpy_array())
        return chunk_spec.prototype.buffer.from_bytes(data)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        frames = await asyncio.to_thread(
            self.decode_frames, chunk_bytes.to_bytes(), tuple(chunk_spec.shape)
        )
        return chunk_spec.prototype.nd_buffer.from_numpy_array(frames)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("JPEG output size is not known in advance")


# Pillow returns every image buffer to the OS by default; reusing freed blocks halves the
# time to decode a 1080p JPEG frame (benchmarks.md, rgb codec table).
Image.core.set_blocks_max(max(Image.core.get_blocks_max(), 16))

register_codec("deepepil.pred2d", Pred2DCodec)
register_codec("deepepil.jpeg", JpegCodec)
