"""Quantitative semiology from joint tracks (see docs/semiology.md).

>>> from deepepil.analysis import tracks_from_truth, head_version, version_episodes, joint_measures
>>> # tracks = tracks_from_keypoints(store.keypoints(recording_id))   # clinicians' 3D keypoints
>>> # version = head_version(tracks, fps=30.0); version_episodes(version)
>>> # moi_measures(tracks, store.mois(recording_id), fps=30.0)

Modules: :mod:`~deepepil.analysis.tracks` (track tables from labels, truth or clicks),
:mod:`~deepepil.analysis.semiology` (the measures), :mod:`~deepepil.analysis.validation`
(synthetic ground truth of the measures), :mod:`~deepepil.analysis.plots` (figures;
needs matplotlib).
"""

from __future__ import annotations

from deepepil.analysis.semiology import (
    REGION_EFFECTORS,
    dominant_frequency,
    head_version,
    joint_measures,
    moi_measures,
    power_spectrum,
    region_measures,
    version_episodes,
)
from deepepil.analysis.tracks import (
    JOINTS,
    TRACK_COLUMNS,
    joint_array,
    lift_keypoints,
    tracks_from_array,
    tracks_from_keypoints,
    tracks_from_truth,
)

__all__ = [
    "JOINTS",
    "TRACK_COLUMNS",
    "REGION_EFFECTORS",
    "tracks_from_array",
    "tracks_from_truth",
    "tracks_from_keypoints",
    "joint_array",
    "lift_keypoints",
    "head_version",
    "version_episodes",
    "power_spectrum",
    "dominant_frequency",
    "joint_measures",
    "region_measures",
    "moi_measures",
]
