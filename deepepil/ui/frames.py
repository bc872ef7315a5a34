"""Frames for the labeling app's player: encoded on the server, sent to the browser as bytes.

The player asks for frames in batches (``{type: "frames", req, stream, indices, format}``,
see ``widgets/README.md``); :meth:`FrameServer.handle` answers with one image buffer per
frame that could be read and a message per frame that could not, so one bad frame never
breaks a batch and nothing raises into the widget's message loop. Encoded bytes are kept in
a small LRU cache (scrubbing back and forth asks for the same frames again).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import xarray as xr

from deepepil.errors import ValidationError
from deepepil.recordings.encoding import FORMATS, encode_frame

__all__ = ["FrameServer", "MIME_TYPES", "MAX_BATCH_FRAMES"]

#: MIME type of each image format the server encodes.
MIME_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
#: Most frames one ``frames`` message may ask for (a batch blocks the kernel while it is encoded).
MAX_BATCH_FRAMES = 256

Format = Literal["jpeg", "png", "webp"]


def _check_format(format: str) -> str:
    if format not in FORMATS:
        raise ValidationError(f"image format {format!r} is not supported; use one of {', '.join(FORMATS)}")
    return format


class FrameServer:
    """Encodes frames of one open recording for the browser, with an LRU cache of the bytes.

    Parameters
    ----------
    dataset : xarray.Dataset
        A recording from :func:`deepepil.open_recording`.
    format : {"jpeg", "png", "webp"}
        Default image format (a request may name another).
    quality : int
        JPEG/WebP quality, 1 to 100.
    workers : int
        Threads encoding the frames of one batch; 1 encodes them in the calling thread.
    cache_bytes : int
        Most bytes of encoded frames kept (least recently used dropped first); 0 disables the cache.

    Raises
    ------
    deepepil.errors.ValidationError
        An option is out of range.
    """

    def __init__(
        self,
        dataset: xr.Dataset,
        *,
        format: Format = "jpeg",
        quality: int = 85,
        workers: int = 2,
        cache_bytes: int = 64 * 2**20,
    ) -> None:
        self.format = _check_format(format)
        if not 1 <= int(quality) <= 100:
            raise ValidationError(f"quality must be from 1 to 100, got {quality}")
        if int(workers) < 1:
            raise ValidationError(f"workers must be at least 1, got {workers}")
        if int(cache_bytes) < 0:
            raise ValidationError(f"cache_bytes must be 0 or more, got {cache_bytes}")
        self.dataset = dataset
        self.quality = int(quality)
        self.workers = int(workers)
        self.cache_bytes = int(cache_bytes)
        self.n_frames = int(dataset.sizes["time"])
        self._streams = [str(name) for name in dataset.data_vars if dataset[name].dims[:1] == ("time",)]
        self._cache: OrderedDict[tuple[str, int, str], bytes] = OrderedDict()
        self._cached_bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # -- metadata ---------------------------------------------------------------------------------

    def streams(self) -> list[dict[str, Any]]:
        """The recording's streams as ``[{name, width, height}]`` (image size in pixels)."""
        out = []
        for name in self._streams:
            shape = self.dataset[name].shape  # (time, height, width[, channel])
            out.append({"name": name, "width": int(shape[2]), "height": int(shape[1])})
        return out

    def check_stream(self, stream: Any) -> str:
        """Return ``stream`` if the recording has it, else raise a :class:`ValidationError` listing those it has."""
        if stream not in self._streams:
            name = self.dataset.attrs.get("name", "")
            raise ValidationError(
                f"recording {name!r} has no stream {stream!r}; it has: {', '.join(self._streams) or 'none'}"
            )
        return stream

    def check_index(self, index: Any) -> int:
        """Return ``index`` as an int if it is a frame of the recording, else raise ``IndexError``/``TypeError``."""
        if isinstance(index, bool) or not isinstance(index, int):
            if isinstance(index, float) and index.is_integer():  # JSON numbers may arrive as floats
                index = int(index)
            else:
                raise TypeError(f"frame index must be an integer, got {index!r}")
        if not 0 <= index < self.n_frames:
            raise IndexError(f"frame index {index} is outside the recording (0 to {self.n_frames - 1})")
        return index

    # -- encoding ---------------------------------------------------------------------------------

    def encode(self, stream: str, index: int, format: Format | None = None) -> bytes:
        """Frame ``index`` of ``stream`` as image bytes (from the cache when there).

        Raises
        ------
        deepepil.errors.ValidationError
            Unknown stream or format.
        IndexError
            ``index`` is outside the recording.
        """
        stream = self.check_stream(stream)
        index = self.check_index(index)
        format = _check_format(format or self.format)
        key = (stream, index, format)
        with self._lock:
            data = self._cache.get(key)
            if data is not None:
                self._cache.move_to_end(key)
                self._hits += 1
                return data
            self._misses += 1
        data = encode_frame(self.dataset, stream, index, format, quality=self.quality)
        self._remember(key, data)
        return data

    def _remember(self, key: tuple[str, int, str], data: bytes) -> None:
        if len(data) > self.cache_bytes:
            return
        with self._lock:
            old = self._cache.pop(key, None)
            if old is not None:
                self._cached_bytes -= len(old)
            self._cache[key] = data
            self._cached_bytes += len(data)
            while self._cached_bytes > self.cache_bytes:
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= len(dropped)

    def cache_info(self) -> dict[str, int]:
        """``{entries, bytes, max_bytes, hits, misses}`` of the encoded-frame cache."""
        with self._lock:
            return {
                "entries": len(self._cache),
                "bytes": self._cached_bytes,
                "max_bytes": self.cache_bytes,
                "hits": self._hits,
                "misses": self._misses,
            }

    def batch(
        self, stream: str, indices: list[int], format: Format | None = None
    ) -> tuple[str, list[bytes], dict[int, str]]:
        """Encode several frames of one stream.

        Parameters
        ----------
        stream : str
            The stream.
        indices : list of int
            Frame indices, in the order wanted (at most :data:`MAX_BATCH_FRAMES`).
        format : {"jpeg", "png", "webp"}, optional
            Image format; default the server's.

        Returns
        -------
        mime : str
            MIME type of the images.
        images : list of bytes
            One image per index that could be encoded, in the order of ``indices``.
        errors : dict of int to str
            For each index that could not be encoded, why.

        Raises
        ------
        deepepil.errors.ValidationError
            Unknown stream or format, ``indices`` not a list, or too many of them.
        """
        stream = self.check_stream(stream)
        format = _check_format(format or self.format)
        if not isinstance(indices, (list, tuple)):
            raise ValidationError(f"indices must be a list of frame indices, got {type(indices).__name__}")
        if len(indices) > MAX_BATCH_FRAMES:
            raise ValidationError(f"a batch asks for at most {MAX_BATCH_FRAMES} frames, got {len(indices)}")

        def one(index: Any) -> bytes | Exception:
            try:
                return self.encode(stream, index, format)
            except Exception as exc:  # noqa: BLE001 - reported per frame, the others still go out
                return exc

        if self.workers > 1 and len(indices) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="deepepil-frames")
            results = list(self._pool.map(one, indices))
        else:
            results = [one(index) for index in indices]
        images: list[bytes] = []
        errors: dict[int, str] = {}
        for index, result in zip(indices, results):
            if isinstance(result, Exception):
                errors[index] = _describe(result)
            else:
                images.append(result)
        return MIME_TYPES[format], images, errors

    def handle(self, content: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
        """Answer a ``frames`` message of the player (see ``widgets/README.md``); never raises.

        Parameters
        ----------
        content : dict
            ``{type: "frames", req, stream, indices: [i, ...], format}``.

        Returns
        -------
        reply : dict
            ``{type: "frames", req, stream, indices, mime, errors: {"i": message}, error, encode_ms}``:
            ``errors`` keyed by the index as a string (JSON object keys), ``error`` a message when the
            whole request was invalid (then every index is in ``errors`` too), else ``None``;
            ``encode_ms`` the time the kernel spent on it (the player sizes its batches by it).
        buffers : list of bytes
            One image per index not in ``errors``, in the order of ``indices``.
        """
        stream = content.get("stream")
        indices = content.get("indices")
        format = content.get("format") or self.format
        start = time.perf_counter()
        reply: dict[str, Any] = {
            "type": "frames",
            "req": content.get("req"),
            "stream": stream,
            "indices": indices if isinstance(indices, list) else [],
            "mime": MIME_TYPES.get(format, "") if isinstance(format, str) else "",
            "errors": {},
            "error": None,
            "encode_ms": 0.0,
        }
        try:
            mime, images, errors = self.batch(stream, indices, format)
        except Exception as exc:  # noqa: BLE001 - a bad request is answered, never raised into the widget
            message = _describe(exc)
            reply["error"] = message
            reply["errors"] = {str(i): message for i in reply["indices"]}
            images = []
        else:
            reply["mime"] = mime
            reply["errors"] = {str(i): message for i, message in errors.items()}
        reply["encode_ms"] = round((time.perf_counter() - start) * 1000, 2)
        return reply, images

    def close(self) -> None:
        """Stop the encoding threads and drop the cache."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        with self._lock:
            self._cache.clear()
            self._cached_bytes = 0

    def __enter__(self) -> FrameServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        name = self.dataset.attrs.get("name", "")
        return f"<FrameServer {name!r} streams={self._streams} frames={self.n_frames} format={self.format}>"


def _describe(exc: BaseException) -> str:
    """A one-line message for the clinician (``KeyError`` would quote its text, so unwrap it)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, (ValidationError, LookupError, TypeError)):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
