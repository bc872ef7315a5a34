"""Exchange-format methods of :class:`~deepepil.labels.service.LabelStore` (ELAN, CSV, NWB).

Each delegates to :mod:`deepepil.labels.exchange`; imports go through the service's
validation and are all-or-nothing.
"""

from __future__ import annotations

import os
from typing import Any, Optional

__all__ = ["ExchangeMixin"]


class ExchangeMixin:
    """``export_*`` / ``import_*`` methods, mixed into the label store."""

    def export_eaf(self, recording_id: int, path: str | os.PathLike, **kwargs: Any) -> Any:
        """Write the recording's MOIs as an ELAN .eaf file (one tier per region); see :func:`~deepepil.labels.exchange.eaf.export_eaf`."""
        from deepepil.labels.exchange.eaf import export_eaf

        return export_eaf(self, recording_id, path, **kwargs)

    def import_eaf(self, path: str | os.PathLike, recording_id: int, *, dry_run: bool = False) -> list[int]:
        """Import an ELAN .eaf file as MOIs of ``recording_id`` (all or nothing); return the new ids."""
        from deepepil.labels.exchange.eaf import import_eaf

        return import_eaf(self, path, recording_id, dry_run=dry_run)

    def export_csv(self, path: str | os.PathLike, recording_id: Optional[int] = None) -> Any:
        """Write MOIs (of one recording, or all visible) as CSV; see :mod:`deepepil.labels.exchange.csv`."""
        from deepepil.labels.exchange.csv import export_csv

        return export_csv(self, path, recording_id)

    def import_csv(self, path: str | os.PathLike, recording_id: Optional[int] = None, *,
                   dry_run: bool = False) -> list[int]:
        """Import MOIs from CSV (all or nothing); return the new ids."""
        from deepepil.labels.exchange.csv import import_csv

        return import_csv(self, path, recording_id, dry_run=dry_run)

    def export_nwb(self, recording_id: int, path: str | os.PathLike, **kwargs: Any) -> Any:
        """Write the recording's MOIs as an NWB TimeIntervals table (needs the ``nwb`` extra)."""
        from deepepil.labels.exchange.nwb import export_nwb

        return export_nwb(self, recording_id, path, **kwargs)
