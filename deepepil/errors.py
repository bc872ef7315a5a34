"""Errors raised by deepepil.

Every error derives from :class:`DeepEpilError` and, where one fits, from the
builtin it resembles, so callers can catch either (``except FileNotFoundError``
still works for :class:`RecordingNotFoundError`).
"""

from __future__ import annotations

from collections.abc import Sequence

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
    "EmptyLabelsError",
    "SingleClassError",
    "MissingStreamError",
    "ClipTooLongError",
    "WeightsError",
    "CorruptWeightsError",
    "WeightsMismatchError",
    "ConfigError",
    "ResumeError",
    "ModelNotFoundError",
    "ExplanationFileError",
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


# --- the ML pipeline: raised before any training starts ---


class EmptyLabelsError(ValidationError):
    """A label snapshot (or the part of it a dataset selects) has no labels to train on."""


class SingleClassError(ValidationError):
    """The targets of a dataset take only one value: there is nothing to discriminate."""


class MissingStreamError(ValidationError, LookupError):
    """A recording lacks a stream the dataset asks for (or needs for cropping)."""


class ClipTooLongError(ValidationError):
    """A clip spans more frames than a recording has."""


class WeightsError(DeepEpilError, ValueError):
    """A weights file cannot be used; ``path`` names it."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class CorruptWeightsError(WeightsError):
    """A weights file is not a readable PyTorch state dict (truncated, not a checkpoint, ...)."""


class WeightsMismatchError(WeightsError):
    """A weights file does not fit the model: keys missing or unexpected, or shapes that differ.

    Attributes
    ----------
    missing : list of str
        Model parameters the file lacks.
    unexpected : list of str
        File entries the model has no place for.
    mismatched : list of str
        ``"key: file shape -> model shape"`` for entries whose shapes differ (after inflation).
    """

    def __init__(self, path: str | None, *, model: str, missing: Sequence[str] = (),
                 unexpected: Sequence[str] = (), mismatched: Sequence[str] = (), hint: str = ""):
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        parts = []
        for title, items in (("shapes differ", self.mismatched), ("missing in the file", self.missing),
                             ("not in the model", self.unexpected)):
            if items:
                shown = ", ".join(items[:8]) + (f", ... ({len(items) - 8} more)" if len(items) > 8 else "")
                parts.append(f"{title} ({len(items)}): {shown}")
        message = f"does not fit model {model!r}: " + "; ".join(parts)
        super().__init__(message + (f". {hint}" if hint else ""), path)


# --- training, tracking and inference (deepepil.ml.training / tracking / inference) ---


class ConfigError(ValidationError):
    """A training configuration has unknown keys or bad values; nothing was started.

    Attributes
    ----------
    section : str
        Where in the configuration (``""`` for the top level, ``"train"``, ``"data.augment"``, ...).
    unknown : list of str
        The keys that are not allowed there.
    allowed : list of str
        The keys that are.
    """

    def __init__(self, message: str, *, section: str = "", unknown: Sequence[str] = (),
                 allowed: Sequence[str] = ()):
        self.section = section
        self.unknown = list(unknown)
        self.allowed = list(allowed)
        super().__init__(message)


class ResumeError(ValidationError):
    """A run cannot be resumed: no checkpoint, or the configuration changed since it was written."""


class ModelNotFoundError(NotFoundError):
    """No registered model (or no version with that alias) in the MLflow model registry."""


class ExplanationFileError(DeepEpilError, ValueError):
    """A saved explanation (Grad-CAM ``.npz``) is missing, truncated or not one (the message names the file)."""
