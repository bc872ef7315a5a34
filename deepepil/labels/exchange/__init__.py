"""Label exchange formats: ELAN (.eaf), CSV, NWB.

Every format stores times as milliseconds or seconds derived from frame indices with one
rule (:mod:`deepepil.labels.timing`), so a label set at frame ``k`` comes back at
frame ``k``. Imports are all or nothing: the whole file is checked first, every problem is
listed in one :class:`~deepepil.errors.ImportFileError` with its line or annotation id, and
only a clean file is written, in one transaction.

>>> store = deepepil.labels.connect()                       # doctest: +SKIP
>>> store.export_eaf(recording_id, "rec12.eaf")            # doctest: +SKIP
>>> store.import_eaf("rec12-edited.eaf", recording_id)     # doctest: +SKIP
"""

from __future__ import annotations

from deepepil.labels.timing import frame_to_ms, frame_to_seconds, ms_to_frame, seconds_to_frame
from deepepil.labels.exchange.csv import CSV_COLUMNS, export_csv, import_csv, read_csv, write_csv
from deepepil.labels.exchange.eaf import export_eaf, import_eaf, read_eaf, validate_eaf, write_eaf
from deepepil.labels.exchange.nwb import export_nwb

__all__ = [
    "frame_to_ms",
    "ms_to_frame",
    "frame_to_seconds",
    "seconds_to_frame",
    "export_eaf",
    "import_eaf",
    "read_eaf",
    "write_eaf",
    "validate_eaf",
    "CSV_COLUMNS",
    "export_csv",
    "import_csv",
    "read_csv",
    "write_csv",
    "export_nwb",
]
