"""DeepEpil: label 3D seizure video in Jupyter and train deep models on the labels.

The public API is re-exported here::

    import deepepil
    deepepil.list_readers()
    path = deepepil.ingest("P001_S01.mkv", store="recordings/")
    ds = deepepil.open_recording(path)
    deepepil.catalog()                     # recordings registered in the label database
    ds = deepepil.open_recording(3)        # ... opened by recording id
"""

from __future__ import annotations

from deepepil import errors
from deepepil.recordings.readers import list_readers, open_source

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "errors",
    "list_readers",
    "open_source",
    "ingest",
    "ingest_many",
    "open_recording",
    "verify",
    "list_recordings",
    "catalog",
    "synthesize_cohort",
]


def __getattr__(name: str):
    # Heavier parts load on first use, so `import deepepil` stays quick.
    if name in ("ingest", "ingest_many"):
        from deepepil.recordings import ingest as module
    elif name in ("open_recording", "verify", "list_recordings"):
        from deepepil.recordings import store as module
    elif name == "catalog":
        from deepepil.labels import catalog as module
    elif name == "synthesize_cohort":
        from deepepil.synthetic import cohort as module
    else:
        raise AttributeError(f"module 'deepepil' has no attribute {name!r}")
    return getattr(module, name)
