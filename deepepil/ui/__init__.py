"""Jupyter widgets of DeepEpil: the clinician labeling app and its 3D point-cloud view.

>>> from deepepil.ui import LabelingApp, PointCloudView
>>> app = LabelingApp()                  # doctest: +SKIP
>>> PointCloudView(app)                  # doctest: +SKIP

:class:`LabelingApp` is the widget (landing list, patient form, labeler);
:class:`LabelSession` is its edit controller over the label service, usable on its own;
:class:`PointCloudView` shows the current frame's point cloud and joints in 3D (ipyvolume).
"""

from __future__ import annotations

import importlib

__all__ = ["LabelingApp", "LabelSession", "PointCloudView"]

# Loaded on first use, so importing deepepil.ui does not import ipywidgets, ipyvolume or SQLAlchemy.
_EXPORTS = {"LabelingApp": "deepepil.ui.app", "LabelSession": "deepepil.ui.session",
            "PointCloudView": "deepepil.ui.pointcloud"}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deepepil.ui' has no attribute {name!r}")
