"""Track tables: from the synthetic truth, from keypoints saved through the label service, keyframes, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import deepepil
from deepepil.analysis import (
    JOINTS,
    joint_array,
    lift_keypoints,
    tracks_from_array,
    tracks_from_keypoints,
    tracks_from_truth,
)
from deepepil.errors import ValidationError
from deepepil.labels import admin, schema
from deepepil.labels.catalog import register_recording
from deepepil.labels.service import connect
from deepepil.recordings.geometry import lift_pixel, project_points
from deepepil.synthetic import make_cohort_profiles, make_recording


@pytest.fixture(scope="module")
def rec():
    return make_recording(make_cohort_profiles(2, seed=3)[1], 0, seconds=1.0, size="tiny", seed=3)


def test_truth_tracks_from_the_recording_its_dict_and_its_file(rec, tmp_path):
    tracks = tracks_from_truth(rec)
    assert list(tracks.columns) == ["frame_index", "joint", "x_m", "y_m", "z_m", "source"]
    assert len(tracks) == 30 * 14 and tracks.attrs["fps"] == 30.0 and set(tracks.source) == {"truth"}
    head = tracks[(tracks.frame_index == 5) & (tracks.joint == "head")]
    np.testing.assert_array_equal(head[["x_m", "y_m", "z_m"]].to_numpy()[0], rec.joints_m[5, 0])
    path = tmp_path / "r.truth.json"
    path.write_text(json.dumps(rec.ground_truth))
    for other in (tracks_from_truth(rec.ground_truth), tracks_from_truth(path)):
        np.testing.assert_allclose(other[["x_m", "y_m", "z_m"]], tracks[["x_m", "y_m", "z_m"]], atol=6e-5)
        assert other.attrs["fps"] == 30.0
    frames, positions = joint_array(tracks, ["left_wrist", "head"])
    assert frames.tolist() == list(range(30)) and positions.shape == (30, 2, 3)
    np.testing.assert_array_equal(positions[:, 1], rec.joints_m[:, 0])


def test_keyframes_are_interpolated_between_and_not_beyond():
    keys = pd.DataFrame({"frame_index": [10, 20], "joint": "head", "x_m": [0.0, 1.0], "y_m": [0.0, -1.0],
                         "z_m": [1.5, 2.5]})
    frames, p = joint_array(keys, ["head"], start_frame=5, end_frame=25)
    assert frames.tolist() == list(range(5, 25))
    np.testing.assert_allclose(p[frames == 15, 0], [[0.5, -0.5, 2.0]])
    assert np.isnan(p[frames < 10]).all() and np.isnan(p[frames > 20]).all()
    _, raw = joint_array(keys, ["head"], start_frame=5, end_frame=25, interpolate=False)
    assert np.isfinite(raw[:, 0, 0]).sum() == 2


def test_bad_tracks_are_refused_with_what_is_allowed():
    good = tracks_from_array(np.zeros((2, 14, 3)))
    with pytest.raises(ValidationError, match=r"unknown joints \['Head'\]; joints are: head, neck"):
        joint_array(good.assign(joint="Head"))
    with pytest.raises(ValidationError, match=r"rows sharing a \(frame_index, joint\), e.g. frame 0 'head'"):
        joint_array(pd.concat([good, good.iloc[:1]]))
    with pytest.raises(ValidationError, match="frame_index must hold integers >= 0"):
        joint_array(good.assign(frame_index=-1))
    with pytest.raises(ValidationError, match=r"joints_m must have shape \(frames, 14, 3\)"):
        tracks_from_array(np.zeros((2, 13, 3)))
    with pytest.raises(ValidationError, match="tracks must be a pandas DataFrame"):
        joint_array(np.zeros((2, 14, 3)))


def test_keypoints_clicked_and_saved_through_the_label_service_become_tracks(rec, tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPEPIL_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'labels.sqlite'}"
    schema.upgrade(url)
    admin.add_clinic("North", url=url)
    for user, role, clinic in (("root", "admin", None), ("ann", "clinician", "North"), ("bea", "clinician", "North")):
        admin.add_user(user, role, clinic, url=url)
    path = deepepil.ingest(rec, tmp_path / "store", progress=False)
    recording_id = register_recording(path, "North", url=url, user="root")
    ds = deepepil.open_recording(path)

    # Ann clicks the head and both wrists on frames 0 and 10 of the depth view; the clicks are lifted and saved.
    placed = {}
    with connect(url, user="ann") as store:
        for frame in (0, 10):
            depth = ds.depth[frame].values
            for joint in ("head", "left_wrist", "right_wrist"):
                u, v = project_points(rec.joints_m[frame, JOINTS.index(joint)][None], ds)[0]
                p = lift_pixel(depth, u, v, ds)
                store.add_keypoint(recording_id, frame, joint, u, v, x_m=p.x_m, y_m=p.y_m, z_m=p.z_m)
                placed[frame, joint] = p.xyz_m
        table = store.keypoints(recording_id)
    tracks = tracks_from_keypoints(table)
    assert tracks.attrs["fps"] == 30.0 and len(tracks) == 6 and set(tracks.source) == {"human"}
    for (frame, joint), xyz in placed.items():
        row = tracks[(tracks.frame_index == frame) & (tracks.joint == joint)]
        np.testing.assert_allclose(row[["x_m", "y_m", "z_m"]].to_numpy()[0], xyz)
    lifted = lift_keypoints(table.drop(columns=["x_m", "y_m", "z_m"]), ds)  # lifting later gives the same
    np.testing.assert_allclose(lifted[["x_m", "y_m", "z_m"]], table[["x_m", "y_m", "z_m"]])
    assert (lifted.lift_distance_px >= 0).all()

    # A second clinician labels the same joint: tracks need one labeller, named.
    with connect(url, user="bea") as store:
        store.add_keypoint(recording_id, 0, "head", 10.0, 10.0)
        both = store.keypoints(recording_id)
    with pytest.raises(ValidationError, match=r"joint 'head' on frame 0 has 2 keypoints \(author/source: "
                                              r"ann/human, bea/human\); pick one with author="):
        tracks_from_keypoints(both)
    assert len(tracks_from_keypoints(both, author="ann")) == 6
    bea = tracks_from_keypoints(both, author="bea")
    assert len(bea) == 1 and bea[["x_m", "y_m", "z_m"]].isna().all(axis=None)  # placed, not lifted
