"""3D joints in the labeling app: a click lifted to 3D and stored, moved, deleted, undone; keyframes interpolated."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepepil.labels.service import connect
from deepepil.labels.vocabulary import JOINT_NAMES
from deepepil.recordings.geometry import lift_pixel
from deepepil.ui import LabelingApp
from deepepil.ui.keypoints import JOINTS_AT_COLUMNS, KEYPOINT_ROW_FIELDS, joints_at, rgb_projection


def edit(ask, app, op, **args):
    return ask(app, {"type": "edit", "op": op, "args": args})


def placed(ask, app, frame_index, joint, u_px, v_px):
    reply = edit(ask, app, "place_keypoint", frame_index=frame_index, joint=joint, u_px=u_px, v_px=v_px)
    assert reply["ok"], reply["error"]
    (row,) = reply["changes"]["keypoints"]
    return row


def opened_app(make_app, ask, ui_db, user="ann", **kwargs):
    app = make_app(user, **kwargs)
    reply = ask(app, {"type": "open", "recording_id": ui_db.rec})
    assert reply["ok"], reply["error"]
    return app


def lifted(app, frame_index, u_px, v_px, radius_px=3):
    return lift_pixel(app.dataset["depth"][frame_index].values, u_px, v_px, app.dataset, search_radius_px=radius_px)


def hole_pixel(app, frame_index):
    """(u, v) of a depth pixel without a reading on ``frame_index``."""
    depth = app.dataset["depth"][frame_index].values
    v, u = np.argwhere(depth == 0)[len(np.argwhere(depth == 0)) // 2]
    return float(u), float(v)


def test_a_click_is_lifted_on_that_frames_depth_and_stored_as_the_users_keypoint(ui_db, make_app, ask,
                                                                                  open_label_store):
    app, check = opened_app(make_app, ask, ui_db), open_label_store("root")
    revisions = []
    app.observe(lambda change: revisions.append(change["new"]), "keypoints_revision")
    row = placed(ask, app, 12, "left_wrist", 30.4, 20.6)
    assert tuple(row) == KEYPOINT_ROW_FIELDS
    point = lifted(app, 12, 30.4, 20.6)
    assert (row["joint"], row["frame_index"], row["author"], row["source"], row["version"]) == \
        ("left_wrist", 12, "ann", "human", 1)
    stored = check.keypoints(ui_db.rec).iloc[0]
    assert (stored.joint, stored.frame_index, stored.u_px, stored.v_px) == ("left_wrist", 12, 30.4, 20.6)
    assert np.allclose([stored.x_m, stored.y_m, stored.z_m], point.xyz_m, atol=1e-9)
    assert not np.allclose(point.xyz_m, lifted(app, 40, 30.4, 20.6).xyz_m)  # the frame's own depth was used
    assert len(revisions) == 1

    frame = app.joints_at(12)
    assert list(frame.columns) == list(JOINTS_AT_COLUMNS)
    assert frame.to_dict("records") == [{"joint": "left_wrist", "x_m": point.x_m, "y_m": point.y_m,
                                         "z_m": point.z_m, "u_px": 30.4, "v_px": 20.6, "keyframe": True}]
    assert app.joints_at(11).empty and app.joints_at(13).empty  # one keyframe: nothing around it


def test_placing_a_joint_again_on_its_frame_moves_it_and_a_drag_relifts_it(ui_db, make_app, ask, open_label_store):
    app, check = opened_app(make_app, ask, ui_db), open_label_store("root")
    first = placed(ask, app, 5, "head", 20.0, 10.0)
    again = placed(ask, app, 5, "head", 24.0, 12.0)
    assert (again["id"], again["version"]) == (first["id"], 2)
    assert (again["z_m"], again["u_px"]) == (pytest.approx(lifted(app, 5, 24.0, 12.0).z_m), 24.0)

    reply = edit(ask, app, "move_keypoint", id=first["id"], version=2, u_px=40.0, v_px=30.0)
    assert reply["ok"], reply["error"]
    moved = reply["changes"]["keypoints"][0]
    stored = check.keypoint(first["id"])
    assert (stored.u_px, stored.v_px, stored.version) == (40.0, 30.0, 3)
    assert np.allclose([stored.x_m, stored.y_m, stored.z_m], lifted(app, 5, 40.0, 30.0).xyz_m)
    assert moved["x_m"] == stored.x_m and len(check.keypoints(ui_db.rec)) == 1

    others = edit(ask, app, "move_keypoint", id=first["id"] + 999, version=1, u_px=1.0, v_px=1.0)
    assert others["error"]["kind"] == "validation" and "not one of your joints" in others["error"]["message"]


def test_delete_undo_redo_of_keypoints(ui_db, make_app, ask, open_label_store):
    app, check = opened_app(make_app, ask, ui_db), open_label_store("root")
    row = placed(ask, app, 20, "neck", 32.0, 15.0)
    gone = edit(ask, app, "delete_keypoint", id=row["id"], version=1)
    assert gone["ok"] and gone["changes"]["keypoints_removed"] == [row["id"]]
    assert check.keypoints(ui_db.rec).empty and app.joints_at(20).empty

    revision = app.keypoints_revision
    back = edit(ask, app, "undo")["changes"]
    assert back["keypoints"][0]["id"] == row["id"] and app.can_redo and app.keypoints_revision == revision + 1
    assert check.keypoints(ui_db.rec)["joint"].tolist() == ["neck"]
    assert app.joints_at(20)["joint"].tolist() == ["neck"]
    assert edit(ask, app, "redo")["changes"]["keypoints_removed"] == [row["id"]]
    assert check.keypoints(ui_db.rec).empty

    edit(ask, app, "undo")  # the delete
    undone = edit(ask, app, "undo")["changes"]  # the placement itself
    assert undone["keypoints_removed"] == [row["id"]] and check.keypoints(ui_db.rec).empty
    assert app.session.keypoint_rows() == []


def test_a_hole_click_takes_the_nearest_reading_or_is_refused_with_nothing_stored(ui_db, make_app, ask,
                                                                                  open_label_store):
    check = open_label_store("root")
    app = opened_app(make_app, ask, ui_db)
    u, v = hole_pixel(app, 8)
    row = placed(ask, app, 8, "right_knee", u, v)
    near = lifted(app, 8, u, v)
    assert near.distance_px > 0 and row["z_m"] == pytest.approx(near.z_m) and (row["u_px"], row["v_px"]) == (u, v)

    strict = opened_app(make_app, ask, ui_db, user="bea", keypoint_search_radius_px=0)
    revision = strict.keypoints_revision
    refused = edit(ask, strict, "place_keypoint", frame_index=8, joint="right_knee", u_px=u, v_px=v)
    assert refused["ok"] is False and refused["error"]["kind"] == "validation"
    assert "the depth camera has no reading within 0 px of pixel" in refused["error"]["message"]
    assert "click on the body nearby" in refused["error"]["message"]
    assert refused["changes"]["keypoints"] == []
    assert check.keypoints(ui_db.rec, author="bea").empty and strict.keypoints_revision == revision


@pytest.mark.parametrize("args, expected", [
    ({"joint": "left_tail"}, "'left_tail' is not a skeleton joint; joints are: " + ", ".join(JOINT_NAMES)),
    ({"u_px": 64.0}, "outside the 64x53 depth image; u must be in [-0.5, 63.5)"),
    ({"v_px": -1.0}, "outside the 64x53 depth image"),
    ({"u_px": float("nan")}, "u_px must be a finite number"),
    ({"frame_index": 60}, "frame_index must be a whole frame number from 0 to 59, got 60"),
    ({"joint": None}, "place_keypoint needs joint"),
])
def test_bad_placements_are_refused_naming_what_is_allowed(ui_db, make_app, ask, open_label_store, args, expected):
    app = opened_app(make_app, ask, ui_db)
    base = {"frame_index": 3, "joint": "head", "u_px": 30.0, "v_px": 20.0}
    reply = edit(ask, app, "place_keypoint", **{**base, **args})
    assert reply["ok"] is False and reply["error"]["kind"] == "validation"
    assert expected in reply["error"]["message"]
    assert open_label_store("root").keypoints(ui_db.rec).empty


def test_joints_between_keyframes_are_interpolated_linearly_and_not_extrapolated(ui_db, make_app, ask):
    app = opened_app(make_app, ask, ui_db)
    a = placed(ask, app, 10, "left_elbow", 20.0, 20.0)
    b = placed(ask, app, 20, "left_elbow", 40.0, 30.0)
    c = placed(ask, app, 14, "head", 31.0, 9.0)
    mid = app.joints_at(15).set_index("joint")
    assert list(mid.index) == ["left_elbow"]  # the head has one keyframe (14): none on 15
    elbow = mid.loc["left_elbow"]
    assert not elbow.keyframe and (elbow.u_px, elbow.v_px) == (30.0, 25.0)
    for name in ("x_m", "y_m", "z_m"):
        assert elbow[name] == pytest.approx((a[name] + b[name]) / 2)
    quarter = app.joints_at(12).set_index("joint").loc["left_elbow"]
    assert quarter.z_m == pytest.approx(a["z_m"] + 0.2 * (b["z_m"] - a["z_m"]))
    on_c = app.joints_at(14)
    assert on_c["joint"].tolist() == ["head", "left_elbow"] and on_c["keyframe"].tolist() == [True, False]
    assert on_c.iloc[0].z_m == c["z_m"]
    assert app.joints_at(9).empty and app.joints_at(21).empty
    assert app.joints_at(20)["keyframe"].tolist() == [True]
    with pytest.raises(Exception, match="frame_index must be a whole frame number from 0 to 59"):
        app.joints_at(60)


def test_joints_at_without_a_recording_and_with_missing_3d():
    empty = LabelingApp.joints_at.__get__(type("NoApp", (), {"session": None})())(0)
    assert empty.empty and list(empty.columns) == list(JOINTS_AT_COLUMNS)
    assert empty.dtypes["keyframe"] == bool and empty.dtypes["z_m"] == np.float64
    rows = [{"joint": "head", "frame_index": 0, "u_px": 0.0, "v_px": 0.0, "x_m": None, "y_m": None, "z_m": None},
            {"joint": "head", "frame_index": 4, "u_px": 4.0, "v_px": 8.0, "x_m": 1.0, "y_m": 1.0, "z_m": 1.0}]
    head = joints_at(rows, 1).iloc[0]
    assert (head.u_px, head.v_px) == (1.0, 2.0) and math.isnan(head.z_m)


def test_only_the_users_own_hand_placed_joints_are_shown_and_their_changes_elsewhere_arrive(ui_db, make_app, ask):
    ann, bea = opened_app(make_app, ask, ui_db), opened_app(make_app, ask, ui_db, user="bea")
    placed(ask, bea, 3, "head", 30.0, 10.0)
    with connect(ui_db.url, user="ann") as other_tab:  # ann in a second kernel
        theirs = other_tab.add_keypoint(ui_db.rec, 3, "neck", 31.0, 16.0, x_m=0.0, y_m=0.1, z_m=1.5)
        other_tab.add_keypoint(ui_db.rec, 3, "head", 30.0, 10.0, source="model")
    revision = ann.keypoints_revision
    changes = ann.session.poll()
    assert [row["id"] for row in changes["keypoints"]] == [theirs.id]
    assert ann.joints_at(3)["joint"].tolist() == ["neck"] and ann.keypoints_revision == revision + 1
    assert bea.joints_at(3)["joint"].tolist() == ["head"]

    reopened = opened_app(make_app, ask, ui_db)
    assert [row["joint"] for row in reopened.labels["keypoints"]] == ["neck"]
    assert reopened.vocabulary["joint"] == list(JOINT_NAMES)


def test_a_stale_move_is_a_conflict_resolved_like_mois(ui_db, make_app, ask, open_label_store):
    tab1, tab2, check = opened_app(make_app, ask, ui_db), opened_app(make_app, ask, ui_db), open_label_store("root")
    row = placed(ask, tab1, 30, "right_hip", 30.0, 30.0)
    tab2.session.poll()
    assert edit(ask, tab2, "move_keypoint", id=row["id"], version=1, u_px=33.0, v_px=30.0)["ok"]
    clash = edit(ask, tab1, "move_keypoint", id=row["id"], version=1, u_px=25.0, v_px=28.0)
    assert clash["error"]["kind"] == "conflict" and clash["error"]["table"] == "keypoint"
    assert clash["error"]["current"]["u_px"] == 33.0
    mine = edit(ask, tab1, "resolve_conflict", table="keypoints", id=row["id"], choice="mine")
    assert mine["ok"], mine["error"]
    stored = check.keypoint(row["id"])
    assert (stored.u_px, stored.v_px) == (25.0, 28.0) and stored.z_m == pytest.approx(lifted(tab1, 30, 25.0, 28.0).z_m)


def test_joints_placed_while_the_database_is_unreachable_are_kept_and_land_once(private_postgres, ask, recorded):
    db, server = private_postgres
    app = LabelingApp(db.url, user="ann", poll_seconds=0)
    recorded(app)
    try:
        assert ask(app, {"type": "open", "recording_id": db.rec})["ok"]
        row = placed(ask, app, 2, "head", 30.0, 10.0)
        server.pause()
        kept = edit(ask, app, "move_keypoint", id=row["id"], version=1, u_px=32.0, v_px=11.0)
        assert kept["error"]["kind"] == "offline" and kept["error"]["queued"]
        outside = edit(ask, app, "place_keypoint", frame_index=2, joint="neck", u_px=99.0, v_px=10.0)
        assert outside["error"]["kind"] == "validation" and app.status["pending"] == 1  # refused at once, not kept
        assert edit(ask, app, "place_keypoint", frame_index=4, joint="neck", u_px=31.0, v_px=16.0)["error"]["queued"]
        assert app.status["pending"] == 2
        server.resume()
        app.session.poll()
        with connect(db.url, user="root") as check:
            stored = check.keypoints(db.rec).set_index("joint")
            assert stored.loc["head", "u_px"] == 32.0 and stored.loc["head", "version"] == 2
            assert stored.loc["neck", "frame_index"] == 4 and len(stored) == 2
        assert sorted(r["joint"] for r in app.session.keypoint_rows()) == ["head", "neck"]
        assert app.joints_at(2)[["joint", "u_px", "keyframe"]].values.tolist() == [["head", 32.0, True]]
    finally:
        app.close()


def test_the_recording_tells_the_front_end_how_to_project_joints_into_rgb(ui_db, make_app, ask):
    app = opened_app(make_app, ask, ui_db)
    rgb = app.dataset.attrs["calibration"]["rgb"]
    projection = app.recording["rgb_projection"]
    assert {k: projection[k] for k in ("width", "height", "fx", "fy", "cx", "cy")} == \
        {k: rgb[k] for k in ("width", "height", "fx", "fy", "cx", "cy")}
    assert projection["rotation"] == np.eye(3).tolist() and projection["translation_m"] == [0.0, 0.0, 0.0]
    assert rgb_projection(app.dataset[["ir", "depth"]]) is None

