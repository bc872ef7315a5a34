"""What the exchange formats share: the problem list of an import, and the store calls they make.

An import never writes a row before the whole file was read and checked: every problem
is collected (:class:`Problems`) and raised at once as one
:class:`~deepepil.errors.ImportFileError`; only a clean file reaches
:func:`write_rows`, which writes all rows in one transaction of the label service.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

import pandas as pd

from deepepil.errors import ImportFileError, ValidationError

if TYPE_CHECKING:
    from deepepil.labels._rows import RecordingInfo
    from deepepil.labels._validate import Vocabulary

__all__ = [
    "MODIFIER_KINDS",
    "Problems",
    "seed_vocabulary",
    "store_vocabulary",
    "recording_info",
    "check_may_import",
    "DUPLICATE_KEY",
    "existing_duplicates",
    "write_rows",
    "moi_frame",
]

#: Vocabulary kinds of the MOI modifiers, by column.
MODIFIER_KINDS: Mapping[str, str] = {"laterality": "laterality", "centricity": "centricity"}
#: Vocabulary kinds an MOI import checks.
MOI_KINDS: tuple[str, ...] = ("region", "moi_label", "laterality", "centricity")


class Problems:
    """Every problem found in one import file, each with where it is (line, annotation id)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self.items: list[tuple[int, str]] = []

    def add(self, where: str, message: str, *, line: Optional[int] = None) -> None:
        """Record ``message`` found at ``where`` (``"line 12, annotation a3"``)."""
        self.items.append((line if line is not None else 0, f"{where}: {message}" if where else message))

    def check(self, where: str, fn, *args: Any, line: Optional[int] = None, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``; a ValidationError it raises becomes a problem (and None is returned)."""
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            self.add(where, str(exc), line=line)
            return None

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        """Raise :class:`ImportFileError` listing every problem, in file order."""
        if self.items:
            ordered = [msg for _, msg in sorted(self.items, key=lambda item: item[0])]
            raise ImportFileError(self.path, ordered)


def seed_vocabulary() -> Vocabulary:
    """The seed vocabulary (DESIGN.md) as a :class:`~deepepil.labels._validate.Vocabulary` (no database needed)."""
    from deepepil.labels._validate import Vocabulary
    from deepepil.labels.vocabulary import SEED

    return Vocabulary({kind: list(SEED[kind]) for kind in MOI_KINDS}, {kind: {} for kind in MOI_KINDS})


# --- the label service calls ---------------------------------------------------------------
# The exchange formats use only the public LabelStore API: recording(), vocabulary(), mois(),
# user and add_mois(). Each call is wrapped here so a change in the service shows in one place.


def store_vocabulary(store: Any) -> Vocabulary:
    """The active MOI vocabularies of ``store`` (regions, labels, lateralities, centricities)."""
    from deepepil.labels._validate import Vocabulary

    return Vocabulary({kind: list(store.vocabulary(kind)) for kind in MOI_KINDS}, {kind: {} for kind in MOI_KINDS})


def check_may_import(store: Any, rec: Optional[RecordingInfo] = None) -> None:
    """AccessDeniedError, before any reading, when the connected user may not add MOIs (to ``rec``)."""
    from deepepil.labels import _validate

    _validate.require_role(store.user, _validate.LABEL_WRITERS, "import labels")
    if rec is not None:
        _validate.check_clinic(store.user, rec, "import labels into")


def recording_info(store: Any, recording_id: int) -> RecordingInfo:
    """The recording's name, fps and length (NotFoundError when it is not visible to the user)."""
    return store.recording(int(recording_id))


def moi_frame(store: Any, recording_id: Optional[int] = None, *, author: Optional[str] = None) -> pd.DataFrame:
    """The live MOIs (one recording, or all visible ones), oldest first."""
    kwargs: dict[str, Any] = {}
    if recording_id is not None:
        kwargs["recording_id"] = int(recording_id)
    if author is not None:
        kwargs["author"] = author
    df = store.mois(**kwargs)
    return df.sort_values(["recording_id", "start_frame", "end_frame", "id"], kind="stable").reset_index(drop=True)


#: The columns that make two MOIs of one author the same label (as the label service sees it).
DUPLICATE_KEY: tuple[str, ...] = ("recording_id", "region", "label", "laterality", "start_frame", "end_frame")


def _key(row: Mapping[str, Any]) -> tuple:
    return tuple(None if pd.isna(row.get(col)) else row.get(col) for col in DUPLICATE_KEY)


def existing_duplicates(store: Any, rows: Sequence[Mapping[str, Any]], problems: Problems,
                        wheres: Sequence[tuple[str, int]]) -> None:
    """Add a problem for each row that repeats a live MOI of the connected user."""
    recording_ids = sorted({int(r["recording_id"]) for r in rows})
    if not recording_ids:
        return
    username = store.user.username
    existing: dict[tuple, int] = {}
    for rid in recording_ids:
        df = store.mois(recording_id=rid)
        df = df[df["author"] == username]
        for rec in df.to_dict("records"):
            existing.setdefault(_key(rec), int(rec["id"]))
    for row, (where, line) in zip(rows, wheres):
        moi_id = existing.get(_key(row))
        if moi_id is not None:
            problems.add(where, f"repeats MOI {moi_id}, which {username} already has (same region, label, "
                                f"laterality and frames); remove it from the file or delete MOI {moi_id}", line=line)


def write_rows(store: Any, rows: Sequence[Mapping[str, Any]], problems: Problems,
               wheres: Sequence[tuple[str, int]]) -> list[int]:
    """Write all ``rows`` as MOIs in one transaction (all or nothing); return their ids in order.

    Uses :meth:`LabelStore.add_mois`, which stores every row with its revision in one
    transaction or, when any row is invalid, none; its ValidationError lists the bad rows
    by index (``exc.problems``), reported here at their lines.
    """
    if not rows:
        return []
    try:
        created = store.add_mois([dict(r) for r in rows])
    except ValidationError as exc:
        listed: Iterable = getattr(exc, "problems", None) or [(None, str(exc))]
        for item in listed:
            index, message = item if isinstance(item, tuple) else (None, str(item))
            if index is not None and 0 <= int(index) < len(wheres):
                where, line = wheres[int(index)]
                problems.add(where, message, line=line)
            else:
                problems.add("", message)
        problems.raise_if_any()
        raise  # pragma: no cover - raise_if_any always raises here
    return [int(getattr(m, "id", m)) for m in created]


def text_cell(value: Any) -> str:
    """A cell value as text for a file: None and NaN become ""."""
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)
