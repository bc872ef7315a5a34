"""The label database: schema, catalog, vocabularies and the label service.

    import deepepil.labels
    deepepil.labels.upgrade(url)            # create or upgrade the schema (`deepepil db upgrade`)
    store = deepepil.labels.connect(url)     # the label service, the only write path for labels

The submodules: :mod:`~deepepil.labels.models` (tables), :mod:`~deepepil.labels.schema`
(migrations), :mod:`~deepepil.labels.catalog` (recordings), :mod:`~deepepil.labels.admin`
(clinics, users, vocabulary), :mod:`~deepepil.labels.vocabulary` (the seed),
:mod:`~deepepil.labels.authz` (per-user PostgreSQL roles; row-level security is in migration 0003).
"""

from __future__ import annotations

import importlib

__all__ = ["connect", "upgrade", "check_schema", "register_recording"]

# Loaded on first use, so importing deepepil.labels does not import SQLAlchemy and Alembic.
_EXPORTS = {
    "connect": "deepepil.labels.service",
    "upgrade": "deepepil.labels.schema",
    "check_schema": "deepepil.labels.schema",
    "register_recording": "deepepil.labels.catalog",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deepepil.labels' has no attribute {name!r}")
