"""Errors raised by deepepil.

Every error derives from :class:`DeepEpilError` and, where one fits, from the
builtin it resembles, so callers can catch either (``except FileNotFoundError``
still works for :class:`RecordingNotFoundError`).
"""

from __future__ import annotations

__all__ = [
    "DeepEpilError",
    "UnknownFormatError",
    "CorruptSourceError",
    "FrameMismatchError",
    "TimestampError",
    "StoreExistsError",
    "IncompleteStoreError",
    "IntegrityError",
    "RecordingNotFoundError",
    "OutOfSpaceError",
    "ValidationError",
    "ConflictError",
    "NotFoundError",
    "SchemaBehindError",
    "AccessDeniedError",
    "ImportFileError",
]


class DeepEpilError(Exception):
    """Base class of every error deepepil raises on purpose."""


class UnknownFormatError(DeepEpilError, ValueError):
    """No installed reader can open a source."""


class CorruptSourceError(DeepEpilError, ValueError):
    """A source file is truncated or corrupt.

    Parameters
    ----------
    message : str
        What was wrong.
    path : str, optional
        The file.
    frame_index : int, optional
        The frame where the problem was found, when known.
    """

    def __init__(self, message: str, path: str | None = None, frame_index: int | None = None):
        self.path = path
        self.frame_index = frame_index
        where = []
        if path is not None:
            where.append(str(path))
        if frame_index is not None:
            where.append(f"frame {frame_index}")
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class FrameMismatchError(CorruptSourceError):
    """Frames of one stream differ in shape or dtype, or streams differ in length."""


class TimestampError(CorruptSourceError):
    """Timestamps are missing, repeated, or not increasing (missing frames)."""


class StoreExistsError(DeepEpilError, FileExistsError):
    """The target recording store already exists."""


class IncompleteStoreError(DeepEpilError, FileNotFoundError):
    """A store was never published (an ingest crashed or is still running)."""


class IntegrityError(DeepEpilError, ValueError):
    """A store's content does not match its checksum manifest."""


class RecordingNotFoundError(DeepEpilError, FileNotFoundError):
    """No recording store at the given path."""


class OutOfSpaceError(DeepEpilError, OSError):
    """The disk filled up during a write; nothing was published."""


class ValidationError(DeepEpilError, ValueError):
    """A label (or other input) is invalid; nothing was stored. The message says what is allowed."""


class ConflictError(DeepEpilError):
    """An edit named a version that is no longer current: someone else changed the row first.

    Attributes
    ----------
    current : dict
        The row as it is now in the database (the version to compare with or retry on).
    """

    def __init__(self, message: str, current: dict | None = None):
        super().__init__(message)
        self.current = current


class NotFoundError(DeepEpilError, LookupError):
    """A row (recording, MOI, user, ...) does not exist or is not visible to the caller."""


class SchemaBehindError(DeepEpilError):
    """The database schema is older than this deepepil; run ``deepepil db upgrade``."""


class AccessDeniedError(DeepEpilError, PermissionError):
    """The connected user may not do this (role, clinic, or not registered)."""


class ImportFileError(DeepEpilError, ValueError):
    """An import file has errors; nothing was imported.

    Attributes
    ----------
    problems : list of str
        Every error found, each naming its line or annotation id.
    """

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{path}: {len(self.problems)} error(s), nothing imported:\n{shown}")
