"""Reader plugins: built-ins plus third-party readers from the ``deepepil.readers`` entry points.

>>> import deepepil
>>> sorted(deepepil.list_readers())  # doctest: +SKIP
['azure_kinect', 'frames', 'numpy', 'video']
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from importlib.metadata import entry_points

from deepepil.errors import UnknownFormatError
from deepepil.recordings.readers.base import Reader
from deepepil.recordings.source import RecordingSource

__all__ = ["Reader", "list_readers", "get_reader", "guess_reader", "open_source", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "deepepil.readers"

#: Built-in readers, most specific first (guessing tries them in this order).
BUILTIN_READERS: dict[str, str] = {
    "azure_kinect": "deepepil.recordings.readers.azure_kinect:AzureKinectReader",
    "frames": "deepepil.recordings.readers.frames:FramesReader",
    "numpy": "deepepil.recordings.readers.numpy:NumpyReader",
    "video": "deepepil.recordings.readers.video:VideoReader",
}


def _load(target: str) -> type[Reader]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@functools.cache
def _discover() -> dict[str, Reader]:
    readers: dict[str, Reader] = {}
    for name, target in BUILTIN_READERS.items():
        readers[name] = _load(target)()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in readers:
            warnings.warn(
                f"reader plugin {ep.name!r} ({ep.value}) ignored: a reader of that name is already"
                " installed", RuntimeWarning, stacklevel=2,
            )
            continue
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Reader)):
                raise TypeError(f"{ep.value} is not a deepepil.recordings.readers.Reader subclass")
            readers[ep.name] = cls()
        except Exception as exc:  # a broken plugin must not break the host
            warnings.warn(f"reader plugin {ep.name!r} failed to load: {exc}", RuntimeWarning, stacklevel=2)
    return readers


def list_readers() -> dict[str, Reader]:
    """Return the installed readers, keyed by name (built-ins first, then plugins)."""
    return dict(_discover())


def get_reader(name: str) -> Reader:
    """Return the reader called ``name``; the error lists the installed ones."""
    readers = _discover()
    try:
        return readers[name]
    except KeyError:
        raise UnknownFormatError(
            f"no reader named {name!r}; installed readers: {', '.join(readers)}"
        ) from None


def _installed_lines(readers: dict[str, Reader]) -> str:
    return "\n".join(f"  {n}: {r.description}" for n, r in readers.items())


def guess_reader(path: str | os.PathLike) -> Reader:
    """Return the first installed reader whose ``guess_can_open`` accepts ``path``."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{os.fspath(path)}: no such file or folder")
    readers = _discover()
    for reader in readers.values():
        try:
            if reader.guess_can_open(path):
                return reader
        except Exception:  # guess_can_open must not raise; treat as "no"
            continue
    raise UnknownFormatError(
        f"{os.fspath(path)}: no reader matched. Installed readers:\n{_installed_lines(readers)}\n"
        f"Pick one with reader=NAME (--reader NAME), or install a plugin that registers "
        f"a reader under the entry point group {ENTRY_POINT_GROUP!r}."
    )


def open_source(path: str | os.PathLike, reader: str | Reader | None = None) -> RecordingSource:
    """Open ``path`` with ``reader`` (a name or an instance), or the guessed one."""
    if reader is None:
        chosen = guess_reader(path)
    elif isinstance(reader, str):
        chosen = get_reader(reader)
    else:
        chosen = reader
    return chosen.open(path)
