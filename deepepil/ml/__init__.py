"""Machine learning on labelled recordings: clip datasets, patient-grouped splits, video models.

>>> from deepepil import labels, ml
>>> snap = labels.connect().snapshot("train-v1")                              # doctest: +SKIP
>>> ds = ml.ClipDataset.from_database(snap, target="syndrome", streams=("ir", "depth"))
>>> splits = ml.leave_one_patient_out(ds)
>>> model = ml.build_model("i3d", num_classes=ds.num_classes, in_channels=ds.in_channels)

Needs the ``ml`` extra (PyTorch). Names load on first use, so ``import deepepil.ml`` is quick.
"""

from __future__ import annotations

import importlib

__all__ = [
    "ClipDataset",
    "Augment",
    "recording_table",
    "seizure_table",
    "leave_one_patient_out",
    "grouped_kfold",
    "Split",
    "build_model",
    "list_models",
    "count_parameters",
    "load_weights",
]

_EXPORTS = {
    "ClipDataset": "deepepil.ml.dataset",
    "Augment": "deepepil.ml.transforms",
    "recording_table": "deepepil.ml.tables",
    "seizure_table": "deepepil.ml.tables",
    "leave_one_patient_out": "deepepil.ml.splits",
    "grouped_kfold": "deepepil.ml.splits",
    "Split": "deepepil.ml.splits",
    "build_model": "deepepil.ml.models",
    "list_models": "deepepil.ml.models",
    "count_parameters": "deepepil.ml.models",
    "load_weights": "deepepil.ml.weights",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deepepil.ml' has no attribute {name!r}")
