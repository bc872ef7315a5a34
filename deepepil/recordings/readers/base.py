"""The reader plugin interface.

A reader is one class with class-level metadata and two methods, like an xarray
backend: :meth:`Reader.guess_can_open` answers cheaply from the path (suffix, a few
header bytes, folder contents) and :meth:`Reader.open` returns a lazy
:class:`~deepepil.recordings.source.RecordingSource`.
"""

from __future__ import annotations

import abc
import os
from typing import ClassVar

from deepepil.recordings.source import RecordingSource

__all__ = ["Reader"]


class Reader(abc.ABC):
    """Base class of recording readers.

    Third-party readers subclass this and register under the entry point group
    ``deepepil.readers`` (``name = "package.module:ReaderClass"``).
    """

    #: Short name used to pick the reader explicitly (``reader="mkv"``).
    name: ClassVar[str] = ""
    #: One line saying what the reader opens.
    description: ClassVar[str] = ""
    #: Where to learn about the format.
    url: ClassVar[str] = ""

    @abc.abstractmethod
    def guess_can_open(self, path: str | os.PathLike) -> bool:
        """Return True when this reader can probably open ``path``; must not raise."""

    @abc.abstractmethod
    def open(self, path: str | os.PathLike) -> RecordingSource:
        """Open ``path`` lazily: read metadata only, decode frames on iteration."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {self.description}>"
