"""NWB export of a recording's movements of interest as a pynwb ``TimeIntervals`` table.

Needs the optional extra ``nwb`` (``pip install deepepil[nwb]``, which installs pynwb).
The file holds one intervals table, ``mois``, with ``start_time``/``stop_time`` in seconds
from the recording's first frame (``frame / fps``, the end exclusive like the frames) and
the columns ``moi_id, region, label, laterality, centricity, start_frame, end_frame,
author, source`` (an empty string where a modifier is absent: NWB text columns have no
null). The acquisition time is not kept in DeepEpil (a date can identify a patient), so
``session_start_time`` defaults to 1970-01-01T00:00:00Z unless given.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pandas as pd

from deepepil.labels.exchange._common import moi_frame, recording_info, text_cell
from deepepil.labels.timing import check_fps

if TYPE_CHECKING:
    from deepepil.labels._rows import RecordingInfo

__all__ = ["NWB_TABLE", "NWB_COLUMNS", "write_nwb", "export_nwb"]

#: Name of the intervals table in the NWB file.
NWB_TABLE = "mois"
#: Columns of the table besides ``start_time`` and ``stop_time``, with their descriptions.
NWB_COLUMNS: dict[str, str] = {
    "moi_id": "id of the MOI in the DeepEpil label database",
    "region": "body region (DeepEpil vocabulary)",
    "label": "movement-of-interest label (ILAE semiology glossary, DeepEpil vocabulary)",
    "laterality": "left / right / bilateral, or empty",
    "centricity": "axial / proximal / distal, or empty",
    "start_frame": "first video frame of the MOI (exact)",
    "end_frame": "first video frame after the MOI (exact; the interval is half-open)",
    "author": "user name of the annotator",
    "source": "human or model",
}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _pynwb():
    try:
        import pynwb
    except ImportError:
        raise ImportError(
            "NWB export needs pynwb, which is not installed; install the extra: pip install 'deepepil[nwb]'"
        ) from None
    return pynwb


def write_nwb(mois: pd.DataFrame, path: str | os.PathLike, *, recording: RecordingInfo,
              session_start_time: Optional[dt.datetime] = None) -> Path:
    """Write MOIs (columns as :meth:`LabelStore.mois` returns them) to an NWB file; return its path."""
    pynwb = _pynwb()
    from pynwb.epoch import TimeIntervals

    fps = check_fps(recording.fps)
    start = session_start_time or _EPOCH
    if start.tzinfo is None:
        raise ValueError("session_start_time must be timezone-aware (e.g. datetime(..., tzinfo=timezone.utc))")
    nwbfile = pynwb.NWBFile(
        session_description=f"DeepEpil movements of interest of recording {recording.id} ({recording.name})",
        identifier=str(uuid.uuid4()),
        session_start_time=start,
        session_id=recording.name,
        notes=f"recording_id={recording.id}; fps={fps!r}; num_frames={recording.num_frames}; "
              f"times are frame / fps seconds from the first frame",
        source_script="deepepil.labels.exchange.nwb",
        source_script_file_name="deepepil/labels/exchange/nwb.py",
    )
    table = TimeIntervals(name=NWB_TABLE, description="movements of interest (MOIs) labelled in DeepEpil")
    for name, description in NWB_COLUMNS.items():
        table.add_column(name=name, description=description)
    for rec in mois.sort_values(["start_frame", "end_frame"], kind="stable").to_dict("records"):
        s, e = int(rec["start_frame"]), int(rec["end_frame"])
        table.add_interval(
            start_time=s / fps, stop_time=e / fps, moi_id=int(rec["id"]) if "id" in rec else -1,
            region=rec["region"], label=rec["label"], laterality=text_cell(rec.get("laterality")),
            centricity=text_cell(rec.get("centricity")), start_frame=s, end_frame=e,
            author=text_cell(rec.get("author")), source=text_cell(rec.get("source")) or "human",
        )
    nwbfile.add_time_intervals(table)
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial.nwb")  # pynwb warns about other suffixes
    with pynwb.NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwbfile)
    os.replace(tmp, path)
    return path


def export_nwb(store: Any, recording_id: int, path: str | os.PathLike, *, author: Optional[str] = None,
               session_start_time: Optional[dt.datetime] = None) -> Path:
    """Write the live MOIs of a recording (of one annotator, when ``author`` is given) to an NWB file."""
    rec = recording_info(store, recording_id)
    return write_nwb(moi_frame(store, rec.id, author=author), path, recording=rec,
                     session_start_time=session_start_time)
