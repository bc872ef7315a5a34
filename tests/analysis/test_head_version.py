"""Head version from joint tracks against the synthetic generator's true head rotation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepepil.analysis import head_version, tracks_from_truth, version_episodes
from deepepil.analysis.validation import true_head_version
from deepepil.errors import ValidationError


def moi(rec, label: str):
    """The recording's (first) movement of interest with this label."""
    return next(m for m in rec.script.mois if m.label == label)


def angle_errors(version: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    merged = version.merge(truth, on="frame_index", suffixes=("", "_true"))
    return (merged["version_deg"] - merged["version_deg_true"]).to_numpy()


def test_version_from_true_joints_matches_the_true_head_rotation(temporal_recordings):
    for rec in temporal_recordings:
        truth = true_head_version(rec)
        version = head_version(tracks_from_truth(rec))
        assert version.attrs["pivot"] == "circle fit"
        err = np.abs(angle_errors(version, truth))
        assert np.percentile(err, 95) < 2.5 and err.max() < 4.0, (rec.name, err.max())

        expected = version_episodes(truth)
        found = version_episodes(version)
        target = moi(rec, "head version")
        assert len(expected) == len(found) == 1
        e, f = expected.iloc[0], found.iloc[0]
        assert f.side == e.side == target.laterality  # positive = the patient's left, as documented
        assert np.sign(f.peak_deg) == (1 if target.laterality == "left" else -1)
        assert abs(f.onset_frame - e.onset_frame) <= 2
        assert abs(f.turn_start_frame - e.turn_start_frame) <= 3
        assert 0 <= f.turn_start_frame - target.start_frame <= 6  # the turn starts with the MOI
        assert f.duration_seconds == pytest.approx(e.duration_seconds, abs=0.1)
        assert f.peak_deg == pytest.approx(e.peak_deg, abs=3.0)
        assert f.median_deg == pytest.approx(e.median_deg, abs=2.0)
        assert f.peak_angular_velocity_deg_per_s == pytest.approx(e.peak_angular_velocity_deg_per_s, rel=0.15)


def test_version_from_clicks_lifted_through_depth_is_within_a_few_degrees(clicked):
    truth = true_head_version(clicked.rec)
    truth = truth[(truth.frame_index >= clicked.first_frame) & (truth.frame_index < clicked.end_frame)]
    truth.attrs["fps"] = clicked.rec.fps
    version = head_version(clicked.clicks)
    err = np.abs(angle_errors(version, truth))
    assert np.median(err) < 4.0 and np.percentile(err, 95) < 10.0, (np.median(err), np.percentile(err, 95))
    (e,), (f,) = version_episodes(truth).itertuples(), version_episodes(version).itertuples()
    assert f.side == e.side == moi(clicked.rec, "head version").laterality
    assert abs(f.onset_frame - e.onset_frame) <= 5
    assert f.duration_seconds == pytest.approx(e.duration_seconds, abs=0.25)
    assert f.median_deg == pytest.approx(e.median_deg, abs=5.0)
    assert f.peak_deg == pytest.approx(e.peak_deg, abs=12.0)  # a maximum picks up brief keypoint errors


def test_a_head_that_does_not_turn_gives_no_version(temporal_recordings):
    rec = temporal_recordings[0]
    before = moi(rec, "oral automatism").start_frame  # nothing moves the head before the seizure
    tracks = tracks_from_truth(rec)
    version = head_version(tracks[tracks.frame_index < before])
    assert version.attrs["pivot"] == "circle fit, radius fixed"  # too little turning to fit the radius
    assert np.ptp(version["version_deg"]) < 2.0
    assert version_episodes(version).empty
    # Exact joints drift just enough for the fit to find the resting head's own turn.
    assert np.abs(angle_errors(version, true_head_version(rec))).max() < 3.0


def angle_table(angle_deg: np.ndarray, fps: float = 30.0) -> pd.DataFrame:
    frames = np.arange(len(angle_deg))
    out = pd.DataFrame({"frame_index": frames, "seconds": frames / fps, "version_deg": angle_deg,
                        "angular_velocity_deg_per_s": np.gradient(angle_deg) * fps})
    out.attrs["fps"] = fps
    return out


def test_episodes_need_the_threshold_for_the_minimum_duration():
    angle = np.zeros(300)
    angle[30:54] = 50.0  # 0.8 s: too short
    angle[100:110] = np.linspace(0, 45, 10)
    angle[110:155] = 45.0  # past 30 degrees from frame 106 (5 degrees a frame) to 155
    angle[200:260] = -40.0  # to the right for 2 s
    episodes = version_episodes(angle_table(angle))
    assert episodes[["side", "onset_frame", "end_frame"]].values.tolist() == [["left", 106, 155],
                                                                            ["right", 200, 260]]
    assert episodes.duration_seconds.tolist() == pytest.approx([49 / 30, 2.0])
    assert episodes.turn_start_frame.iloc[0] == 100
    assert episodes.peak_deg.tolist() == [45.0, -40.0]
    assert version_episodes(angle_table(angle), min_duration_seconds=0.5).side.tolist() == ["left", "left", "right"]
    assert version_episodes(angle_table(angle), threshold_deg=42).side.tolist() == ["left"]


def test_bad_input_is_refused_naming_what_is_needed(temporal_recordings):
    tracks = tracks_from_truth(temporal_recordings[0])
    with pytest.raises(ValidationError, match="no frame has all of .*both shoulders and both hips"):
        head_version(tracks[~tracks.joint.str.endswith("hip")])
    with pytest.raises(ValidationError, match=r"unknown joints \['nose'\]; joints are: head, neck"):
        head_version(pd.concat([tracks, tracks.iloc[:1].assign(joint="nose")]))
    tracks.attrs.pop("fps")
    with pytest.raises(ValidationError, match=r"the frame rate is unknown: pass fps=\.\.\."):
        head_version(tracks)
    with pytest.raises(ValidationError, match="head_radius_m must be in"):
        head_version(tracks, fps=30.0, head_radius_m=90)
    with pytest.raises(ValidationError, match="threshold_deg must be in"):
        version_episodes(head_version(tracks, fps=30.0), threshold_deg=0)
    with pytest.raises(ValidationError, match="version must be the table of head_version"):
        version_episodes(tracks)
