"""Machine learning on labelled recordings: clip datasets, splits, video models, training, inference.

>>> from deepepil import labels, ml
>>> snap = labels.connect().snapshot("train-v1")                              # doctest: +SKIP
>>> ds = ml.ClipDataset.from_database(snap, target="syndrome", streams=("ir", "depth"))
>>> splits = ml.leave_one_patient_out(ds)
>>> model = ml.build_model("i3d", num_classes=ds.num_classes, in_channels=ds.in_channels)
>>> result = ml.train("train.yaml")                  # folds, metrics, MLflow run, registered model
>>> ml.predict(model="moi-i3d@production", recording_id=7)   # suggestions in the label database

Needs the ``ml`` extra (PyTorch). Names load on first use, so ``import deepepil.ml`` is quick.
"""

from __future__ import annotations

import importlib

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
    "train": "deepepil.ml.training",
    "RunResult": "deepepil.ml.training",
    "load_config": "deepepil.ml.config",
    "Config": "deepepil.ml.config",
    "evaluate": "deepepil.ml.metrics",
    "Evaluation": "deepepil.ml.metrics",
    "predict": "deepepil.ml.inference",
    "predict_many": "deepepil.ml.inference",
    "Prediction": "deepepil.ml.inference",
    "load_registered": "deepepil.ml.tracking",
    "set_alias": "deepepil.ml.tracking",
    "mlflow_server_command": "deepepil.ml.tracking",
    "grad_cam": "deepepil.ml.explain",
    "save_explanations": "deepepil.ml.explain",
    "explain_clip": "deepepil.ml.explain",
    "load_explanation": "deepepil.ml.explain",
    "Explanation": "deepepil.ml.explain",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deepepil.ml' has no attribute {name!r}")
