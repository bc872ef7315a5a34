"""CSV export and import of movements of interest: one MOI per line, a fixed header.

The header (:data:`CSV_COLUMNS`)::

    recording_id,recording,region,label,laterality,centricity,start_frame,end_frame,start_seconds,end_seconds,author,source

- ``recording_id`` / ``recording``: the recording's id and name (an import needs one of them
  unless a ``recording_id`` is given to :func:`import_csv`);
- ``region``, ``label``, ``laterality``, ``centricity``: vocabulary codes (empty for no modifier);
- ``start_frame``, ``end_frame``: the half-open frame interval, exact; ``start_seconds``,
  ``end_seconds`` = frame / fps, written with 6 decimals. An import takes the frames; when
  they are empty it takes the seconds (``frame = floor(seconds * fps + 0.5)``); when both
  are given they must name the same frame;
- ``author`` (written for the record; imported MOIs are the connected user's) and
  ``source`` (``human`` or ``model``).

Files are UTF-8 (a byte-order mark, as Excel writes it, is accepted) with ``,`` as the
separator; ``;`` and tab separated files are recognized from their header.
"""

from __future__ import annotations

import csv as _csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pandas as pd

from deepepil.errors import NotFoundError
from deepepil.labels.exchange._common import (
    MODIFIER_KINDS,
    Problems,
    check_may_import,
    existing_duplicates,
    moi_frame,
    recording_info,
    store_vocabulary,
    text_cell,
    write_rows,
)
from deepepil.labels.timing import check_fps, frame_to_seconds, seconds_to_frame

if TYPE_CHECKING:
    from deepepil.labels._rows import RecordingInfo
    from deepepil.labels._validate import Vocabulary

__all__ = ["CSV_COLUMNS", "SOURCES", "write_csv", "read_csv", "export_csv", "import_csv"]

#: The header of an exported file, in order.
CSV_COLUMNS: tuple[str, ...] = (
    "recording_id", "recording", "region", "label", "laterality", "centricity",
    "start_frame", "end_frame", "start_seconds", "end_seconds", "author", "source",
)
#: Values of the ``source`` column.
SOURCES: tuple[str, ...] = ("human", "model")
#: Columns of :func:`read_csv`.
READ_COLUMNS: tuple[str, ...] = (
    "recording_id", "region", "label", "laterality", "centricity", "start_frame", "end_frame", "source", "line",
)


def write_csv(mois: pd.DataFrame, path: str | os.PathLike, *, recordings: Mapping[int, RecordingInfo]) -> Path:
    """Write MOIs (columns as :meth:`LabelStore.mois` returns them) to a CSV file with :data:`CSV_COLUMNS`.

    ``recordings`` maps each ``recording_id`` in ``mois`` to its recording (name and fps).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = _csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for rec in mois.to_dict("records"):
            info = recordings[int(rec["recording_id"])]
            start, end = int(rec["start_frame"]), int(rec["end_frame"])
            writer.writerow([
                info.id, info.name, rec["region"], rec["label"], text_cell(rec.get("laterality")),
                text_cell(rec.get("centricity")), start, end,
                f"{frame_to_seconds(start, info.fps):.6f}", f"{frame_to_seconds(end, info.fps):.6f}",
                text_cell(rec.get("author")), text_cell(rec.get("source")) or "human",
            ])
    os.replace(tmp, path)
    return path


def _delimiter(header_line: str) -> str:
    if "," in header_line:
        return ","
    if ";" in header_line:
        return ";"
    if "\t" in header_line:
        return "\t"
    return ","


def _int(text: str) -> int:
    value = float(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def read_csv(
    path: str | os.PathLike,
    *,
    vocabulary: Vocabulary,
    recordings: Sequence[RecordingInfo],
    recording_id: Optional[int] = None,
) -> pd.DataFrame:
    """Read and check the MOIs of a CSV file; raise :class:`~deepepil.errors.ImportFileError` listing every problem.

    Nothing is written: this is the checking half of :func:`import_csv`.

    Parameters
    ----------
    path : path-like
        The CSV file (header :data:`CSV_COLUMNS`; any subset that says which recording,
        region, label and interval).
    vocabulary : deepepil.labels._validate.Vocabulary
        The valid regions, labels and modifiers.
    recordings : sequence of RecordingInfo
        The recordings rows may name (by ``recording_id`` or by ``recording`` name).
    recording_id : int, optional
        Put every row on this recording; the file's recording columns may then be empty,
        and where they are not, they must name this recording.

    Returns
    -------
    pandas.DataFrame
        One row per MOI, columns ``recording_id, region, label, laterality, centricity,
        start_frame, end_frame, source, line``.
    """
    problems = Problems(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        problems.add("", f"not UTF-8 text (byte {exc.start}); save the file as CSV UTF-8")
        problems.raise_if_any()
    by_id = {r.id: r for r in recordings}
    by_name: dict[str, list[RecordingInfo]] = {}
    for r in recordings:
        by_name.setdefault(r.name, []).append(r)
    fixed = by_id.get(int(recording_id)) if recording_id is not None else None
    if recording_id is not None and fixed is None:
        raise NotFoundError(f"recording {recording_id} is not among the recordings given")

    first_line = text.split("\n", 1)[0]
    reader = _csv.reader(io.StringIO(text), delimiter=_delimiter(first_line))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        problems.add("line 1", "the file is empty; the first line must be the header: " + ",".join(CSV_COLUMNS),
                     line=1)
        problems.raise_if_any()
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        problems.add("line 1", f"unknown column(s) {', '.join(map(repr, unknown))}; the columns are: "
                               f"{', '.join(CSV_COLUMNS)}", line=1)
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        problems.add("line 1", f"column(s) {', '.join(map(repr, repeated))} appear more than once", line=1)
    missing = [c for c in ("region", "label") if c not in header]
    if not ({"start_frame", "end_frame"} <= set(header) or {"start_seconds", "end_seconds"} <= set(header)):
        missing.append("start_frame and end_frame (or start_seconds and end_seconds)")
    if fixed is None and not ({"recording_id", "recording"} & set(header)):
        missing.append("recording_id or recording (or give recording_id to the import)")
    if missing:
        problems.add("line 1", f"missing column(s): {'; '.join(missing)}", line=1)
    problems.raise_if_any()

    rows: list[dict[str, Any]] = []
    seen: dict[tuple, int] = {}
    last_line = reader.line_num
    for fields in reader:
        line = last_line + 1
        last_line = reader.line_num
        where = f"line {line}"
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            problems.add(where, f"has {len(fields)} fields, the header has {len(header)}", line=line)
            continue
        cell = {h: f.strip() for h, f in zip(header, fields)}
        ok = True

        def bad(message: str) -> None:
            nonlocal ok
            ok = False
            problems.add(where, message, line=line)

        rec = fixed
        rid_text, name = cell.get("recording_id", ""), cell.get("recording", "")
        rid = None
        if rid_text:
            try:
                rid = _int(rid_text)
            except ValueError:
                bad(f"recording_id {rid_text!r} is not a whole number")
        if fixed is not None:
            if rid is not None and rid != fixed.id:
                bad(f"recording_id {rid} differs from the recording imported into ({fixed.id}, {fixed.name!r})")
            if name and name != fixed.name:
                bad(f"recording {name!r} differs from the recording imported into ({fixed.id}, {fixed.name!r})")
        elif rid is not None:
            rec = by_id.get(rid)
            if rec is None:
                bad(f"recording {rid} does not exist or is not visible to you")
            elif name and name != rec.name:
                bad(f"recording_id {rid} is named {rec.name!r}, not {name!r}")
        elif name:
            matches = by_name.get(name, [])
            if len(matches) == 1:
                rec = matches[0]
            elif not matches:
                bad(f"no visible recording is named {name!r}; use recording_id (deepepil.catalog() lists them)")
            else:
                bad(f"{len(matches)} recordings are named {name!r} (ids {', '.join(str(m.id) for m in matches)}); "
                    f"use recording_id")
        elif ok:
            bad("names no recording: fill recording_id or recording")

        region = problems.check(where, vocabulary.check, "region", cell.get("region") or None, "region", line=line)
        label = problems.check(where, vocabulary.check, "moi_label", cell.get("label") or None, "label", line=line)
        ok = ok and region is not None and label is not None
        modifiers: dict[str, Optional[str]] = {}
        for col, kind in MODIFIER_KINDS.items():
            value = cell.get(col) or None
            before = len(problems)
            modifiers[col] = problems.check(where, vocabulary.check, kind, value, col, optional=True, line=line)
            ok = ok and len(problems) == before
        source = cell.get("source") or "human"
        if source not in SOURCES:
            bad(f"source {source!r} is not one of {', '.join(map(repr, SOURCES))}")

        frames: dict[str, Optional[int]] = {}
        for end in ("start", "end"):
            ftext, stext = cell.get(f"{end}_frame", ""), cell.get(f"{end}_seconds", "")
            frame = seconds = None
            if ftext:
                try:
                    frame = _int(ftext)
                except ValueError:
                    bad(f"{end}_frame {ftext!r} is not a whole number (a frame index)")
            if stext:
                try:
                    seconds = float(stext)
                except ValueError:
                    bad(f"{end}_seconds {stext!r} is not a number")
            if not ftext and not stext:
                bad(f"{end}_frame (or {end}_seconds) is empty")
            if rec is not None and seconds is not None:
                from_seconds = seconds_to_frame(seconds, check_fps(rec.fps))
                if frame is None and ftext == "":
                    frame = from_seconds
                elif frame is not None and from_seconds != frame:
                    bad(f"{end}_seconds {stext} is frame {from_seconds} at {rec.fps:g} fps, but {end}_frame says "
                        f"{frame}; correct one of them or leave {end}_seconds empty")
            frames[end] = frame
        start, end_ = frames["start"], frames["end"]
        if rec is not None and start is not None and end_ is not None:
            if end_ <= start:
                bad(f"end_frame {end_} is not after start_frame {start} (frames are half-open: start <= frame < end)")
            elif start < 0 or end_ > rec.num_frames:
                bad(f"frames {start}-{end_} are outside the recording: {rec.describe()}; allowed is "
                    f"0 <= start_frame < end_frame <= {rec.num_frames}")
        if not ok or rec is None or start is None or end_ is None:
            continue
        row = {"recording_id": rec.id, "region": region, "label": label, **modifiers,
               "start_frame": start, "end_frame": end_, "source": source, "line": line}
        key = (rec.id, region, label, modifiers["laterality"], start, end_)
        if key in seen:
            problems.add(where, f"exact duplicate of line {seen[key]} (same recording, region, label, laterality "
                                f"and frames)", line=line)
            continue
        seen[key] = line
        rows.append(row)

    problems.raise_if_any()
    df = pd.DataFrame(rows, columns=list(READ_COLUMNS))
    for col in ("recording_id", "start_frame", "end_frame", "line"):
        df[col] = df[col].astype("int64")
    return df


def _visible_recordings(store: Any) -> list[RecordingInfo]:
    from deepepil.labels.catalog import catalog

    listing = catalog(store.url, user=store.user.username)
    return [store.recording(int(i)) for i in listing["recording_id"]]


def export_csv(store: Any, path: str | os.PathLike, recording_id: Optional[int] = None) -> Path:
    """Write the live MOIs of one recording (or of every recording the user sees) to a CSV file."""
    mois = moi_frame(store, recording_id)
    ids = {int(i) for i in mois["recording_id"]}
    if recording_id is not None:
        ids.add(int(recording_id))
    recordings = {i: recording_info(store, i) for i in sorted(ids)}
    return write_csv(mois, path, recordings=recordings)


def import_csv(store: Any, path: str | os.PathLike, recording_id: Optional[int] = None, *,
               dry_run: bool = False) -> list[int]:
    """Add the MOIs of a CSV file, all or nothing; return the new MOI ids in file order.

    Every line is checked first (:func:`read_csv`), also against the MOIs the connected user
    already has; any problem raises :class:`~deepepil.errors.ImportFileError` listing all of
    them by line number, and nothing is written. Then all rows are added in one transaction.
    The new MOIs' author is the connected user; the file's ``author`` column is not trusted.

    Parameters
    ----------
    recording_id : int, optional
        Put every row on this recording (else each row names its recording).
    dry_run : bool
        Check only; return an empty list.
    """
    check_may_import(store)
    if recording_id is not None:
        recordings = [recording_info(store, recording_id)]
        check_may_import(store, recordings[0])
    else:
        recordings = _visible_recordings(store)
    df = read_csv(path, vocabulary=store_vocabulary(store), recordings=recordings, recording_id=recording_id)
    records = df.to_dict("records")
    rows = []
    for r in records:
        row = {k: r[k] for k in ("recording_id", "region", "label", "laterality", "centricity")}
        row.update(start_frame=int(r["start_frame"]), end_frame=int(r["end_frame"]), source=r["source"])
        rows.append(row)
    wheres = [(f"line {int(r['line'])}", int(r["line"])) for r in records]
    problems = Problems(path)
    existing_duplicates(store, rows, problems, wheres)
    problems.raise_if_any()
    if dry_run:
        return []
    return write_rows(store, rows, problems, wheres)
