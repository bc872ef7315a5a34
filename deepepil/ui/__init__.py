"""Jupyter widgets of DeepEpil: the clinician labeling app.

>>> from deepepil.ui import LabelingApp
>>> LabelingApp()                        # doctest: +SKIP

:class:`LabelingApp` is the widget (landing list, patient form, labeler);
:class:`LabelSession` is its edit controller over the label service, usable on its own.
"""

from __future__ import annotations

import importlib

__all__ = ["LabelingApp", "LabelSession"]

# Loaded on first use, so importing deepepil.ui does not import ipywidgets or SQLAlchemy.
_EXPORTS = {"LabelingApp": "deepepil.ui.app", "LabelSession": "deepepil.ui.session"}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deepepil.ui' has no attribute {name!r}")
