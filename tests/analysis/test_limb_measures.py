"""Limb extent, path length, speed and rhythm: exact on analytic tracks, within 0.2 Hz of the synthetic truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepepil.analysis import (
    dominant_frequency,
    joint_measures,
    moi_measures,
    region_measures,
    tracks_from_array,
    tracks_from_truth,
)
from deepepil.analysis.validation import true_rhythm
from deepepil.errors import ValidationError

FPS = 30.0


def moi(rec, label: str):
    """The recording's (first) movement of interest with this label."""
    return next(m for m in rec.script.mois if m.label == label)


def circling_wrist(radius_mm: float = 50.0, hz: float = 2.0, seconds: float = 3.0) -> pd.DataFrame:
    """A left wrist circling in the image plane, every other joint still."""
    t = np.arange(int(seconds * FPS)) / FPS
    joints = np.zeros((len(t), 14, 3))
    joints[:, :, 2] = 1.5
    joints[:, 6, 0] = radius_mm / 1000 * np.cos(2 * np.pi * hz * t)
    joints[:, 6, 1] = radius_mm / 1000 * np.sin(2 * np.pi * hz * t)
    tracks = tracks_from_array(joints)
    tracks.attrs["fps"] = FPS
    return tracks


def test_measures_of_a_circling_wrist_are_exact():
    (row,) = joint_measures(circling_wrist(), ["left_wrist"]).itertuples()
    assert row.duration_seconds == 3.0 and row.valid_fraction == 1.0
    assert row.extent_mm == pytest.approx(100 * np.sqrt(2), rel=0.01)  # bounding-box diagonal
    assert row.path_length_mm == pytest.approx(2 * np.pi * 50 * 2 * (89 / 30), rel=0.01)  # 89 steps
    assert row.mean_speed_mm_per_s == pytest.approx(2 * np.pi * 50 * 2, rel=0.01)
    assert row.peak_speed_mm_per_s == pytest.approx(2 * np.pi * 50 * 2, rel=0.01)
    assert row.frequency_hz == pytest.approx(2.0, abs=0.01) and row.peak_power_fraction > 0.9
    (still,) = joint_measures(circling_wrist(), ["right_wrist"]).itertuples()
    assert still.extent_mm == still.path_length_mm == still.peak_speed_mm_per_s == 0.0
    assert np.isnan(still.frequency_hz)  # nothing moves: no rhythm


def test_dominant_frequency_of_a_noisy_rhythm_and_its_limits():
    rng = np.random.default_rng(0)
    t = np.arange(150) / FPS
    x = 20 * np.sin(2 * np.pi * 3.1 * t) + 10 * t + rng.normal(0, 5, len(t))  # drift is detrended
    f, share = dominant_frequency(x, FPS)
    assert f == pytest.approx(3.1, abs=0.05) and 0.5 < share <= 1
    with pytest.raises(ValidationError, match=r"at least 16 samples \(0.53 s at 30 fps\), got 10"):
        dominant_frequency(x[:10], FPS)
    with pytest.raises(ValidationError, match=r"1.00 s holds 1.\d cycles .* needs at least 2 cycles"):
        dominant_frequency(np.sin(2 * np.pi * 1.5 * t[:30]), FPS, band_hz=(1.0, 8.0))
    with pytest.raises(ValidationError, match="NaN or inf"):
        dominant_frequency(np.where(t < 1, x, np.nan), FPS)
    with pytest.raises(ValidationError, match=r"band_hz must satisfy 0 <= low < high <= fps / 2 = 15 Hz"):
        dominant_frequency(x, FPS, band_hz=(1, 20))
    with pytest.raises(ValidationError, match="positions must have shape"):
        dominant_frequency(np.zeros((40, 3, 2)), FPS)


def test_clonic_and_automatism_rates_from_true_joints_are_within_0_2_hz(temporal_recordings):
    for rec in temporal_recordings:
        tracks = tracks_from_truth(rec)
        for label in ("clonic", "manual automatism"):
            m = moi(rec, label)
            truth = true_rhythm(rec, m)
            if label == "clonic":  # the generator slows its jerks from 4-5 Hz to 2-2.8 Hz
                assert 4.0 <= truth["start_hz"] <= 5.0 and 2.0 <= truth["end_hz"] <= 2.8
            (row,) = joint_measures(tracks, [f"{m.laterality}_wrist"], start_frame=m.start_frame,
                                    end_frame=m.end_frame).itertuples()
            assert row.frequency_hz == pytest.approx(truth["mean_hz"], abs=0.2), (rec.name, label)


def test_measures_from_clicks_lifted_through_depth(clicked):
    rec, clicks = clicked.rec, clicked.clicks
    truth_tracks = tracks_from_truth(rec)
    for label in ("clonic", "manual automatism"):
        m = moi(rec, label)
        joint = f"{m.laterality}_wrist"
        (true_row,) = joint_measures(truth_tracks, [joint], start_frame=m.start_frame,
                                     end_frame=m.end_frame).itertuples()
        (row,) = joint_measures(clicks, [joint], start_frame=m.start_frame, end_frame=m.end_frame).itertuples()
        assert row.frequency_hz == pytest.approx(true_rhythm(rec, m)["mean_hz"], abs=0.2), label
        assert row.valid_fraction == 1.0
        # Clicks lift the skin above the wrist, not its centre: the path differs by a few tens of percent at most.
        for measure in ("extent_mm", "path_length_mm", "mean_speed_mm_per_s"):
            assert getattr(row, measure) == pytest.approx(getattr(true_row, measure), rel=0.25), (label, measure)


def test_moi_measures_give_one_row_per_moi_and_region_joint(temporal_recordings):
    rec = temporal_recordings[1]
    tracks = tracks_from_truth(rec)
    truth_mois = [m.to_dict(FPS) for m in rec.script.mois]
    table = moi_measures(tracks, truth_mois)
    assert len(table) == len(truth_mois)  # each region of these MOIs has one joint
    assert table[["label", "start_frame", "end_frame"]].values.tolist() == [
        [m["label"], m["start_frame"], m["end_frame"]] for m in truth_mois]
    head = table[table.region == "head/face"]
    assert head.joint.eq("head").all() and head.version_peak_deg.notna().all()
    assert table[table.region != "head/face"].version_peak_deg.isna().all()
    version = table[table.label == "head version"].iloc[0]
    assert np.sign(version.version_peak_deg) == (1 if version.laterality == "left" else -1)
    assert abs(version.version_peak_deg) > 50
    clonic = table[table.label == "clonic"].iloc[0]
    assert clonic.joint == f"{clonic.laterality}_wrist"
    assert clonic.frequency_hz == pytest.approx(true_rhythm(rec, moi(rec, "clonic"))["mean_hz"], abs=0.2)

    as_frame = moi_measures(tracks, pd.DataFrame(truth_mois).assign(id=range(len(truth_mois)), deleted=False))
    assert as_frame["id"].tolist() == list(range(len(truth_mois)))
    pd.testing.assert_frame_equal(as_frame.drop(columns="id"), table)

    whole = moi_measures(tracks, [{"region": "whole body", "start_frame": 0, "end_frame": 90}])
    assert whole.joint.tolist() == ["head", "left_wrist", "right_wrist", "left_ankle", "right_ankle"]

    by_region = region_measures(tracks, regions=["trunk", "left upper limb"], start_frame=0, end_frame=300)
    assert by_region[["region", "joint"]].values.tolist() == [["trunk", "neck"], ["left upper limb", "left_wrist"]]


def test_bad_input_names_what_is_allowed(temporal_recordings):
    tracks = tracks_from_truth(temporal_recordings[0])
    with pytest.raises(ValidationError, match=r"unknown joints \['left_hand'\]; joints are: head, neck"):
        joint_measures(tracks, ["left_hand"])
    with pytest.raises(ValidationError, match=r"unknown regions \['left arm'\]; regions are: head/face, trunk"):
        moi_measures(tracks, [{"region": "left arm", "start_frame": 0, "end_frame": 10}])
    with pytest.raises(ValidationError, match=r"mois lack columns \['end_frame'\]"):
        moi_measures(tracks, [{"region": "trunk", "start_frame": 0}])
    with pytest.raises(ValidationError, match=r"unknown regions \['arms'\]"):
        region_measures(tracks, regions="arms")
    with pytest.raises(ValidationError, match=r"tracks lack columns \['z_m'\]"):
        joint_measures(tracks.drop(columns="z_m"), fps=FPS)
    with pytest.raises(ValidationError, match=r"the frame range \[50, 40\) is empty"):
        joint_measures(tracks, start_frame=50, end_frame=40)
    short = joint_measures(tracks, ["left_wrist"], start_frame=0, end_frame=10).iloc[0]
    assert np.isnan(short.frequency_hz) and short.duration_seconds == pytest.approx(1 / 3)
