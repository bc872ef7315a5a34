"""PointCloudView: the cloud drawn is geometry's cloud of the frame, it follows the app, joints, errors.

What goes to the browser is read from the widgets' traits (the cloud's buffer, the joints'
scatters, the skeleton mesh): those are what the front end draws.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import deepepil
from deepepil.errors import MissingStreamError, ValidationError
from deepepil.labels import catalog
from deepepil.recordings.encoding import VIRIDIS_LUT, scale_ir
from deepepil.recordings.geometry import frame_point_cloud
from deepepil.ui import LabelingApp, PointCloudView
from deepepil.ui.pointcloud import PointCloudFrames


@pytest.fixture(scope="module")
def ds(tiny_stores):
    return deepepil.open_recording(tiny_stores[0])


@pytest.fixture
def views():
    """``views(...)``: PointCloudView(...), closed after the test."""
    made = []

    def make(*args, **kwargs):
        view = PointCloudView(*args, **kwargs)
        made.append(view)
        return view

    yield make
    for view in made:
        view.close()


@pytest.fixture
def app(ui_sqlite_db, recorded):
    """A LabelingApp of clinician ``ann`` on SQLite (the view does not touch the database), recording open."""
    app = LabelingApp(ui_sqlite_db.url, user="ann", poll_seconds=0)
    recorded(app)
    app.open_recording(ui_sqlite_db.rec)
    yield app
    app.close()


def drawn(view) -> np.ndarray:
    """The rows of the cloud's buffer that hold points: x, y, z, r, g, b (the rest must be NaN)."""
    assert view.figure.scene.children[0].visible
    data = view.cloud_buffer.array
    assert data.dtype == np.float32 and data.shape[1] == 6
    n = int(np.isfinite(data[:, 0]).sum())
    assert np.isfinite(data[:n]).all() and np.isnan(data[n:]).all()
    return data[:n]


def drawn_xyz(view) -> np.ndarray:
    return drawn(view)[:, :3]


def grey(ds, values) -> np.ndarray:
    return scale_ir(values, tuple(ds.attrs["display"]["ir_range"])).astype("float32") / 255


@pytest.mark.parametrize("settings", [
    {"stride": 4},
    {"stride": 1},
    {"stride": 3, "roi_px": (10, 50, 5, 40)},
    {"stride": 2, "box_m": ((-0.5, -0.5, 0.5), (0.5, 0.4, 1.9))},
    {"stride": 2, "voxel_m": 0.03},
])
def test_the_cloud_drawn_for_a_frame_is_geometrys_cloud_of_that_frame(ds, views, settings):
    view = views(dataset=ds, frame=17, background=False, **settings)
    expected = frame_point_cloud(ds, 17, colour="ir", **settings)
    assert view.drawn_frame == 17 and len(expected) > 0
    np.testing.assert_array_equal(view.cloud.xyz_m, expected.xyz_m)
    np.testing.assert_array_equal(view.cloud.uv_px, expected.uv_px)
    np.testing.assert_array_equal(view.cloud.ir, expected.ir)
    np.testing.assert_array_equal(drawn_xyz(view), expected.xyz_m)
    colours = drawn(view)[:, 3:]
    np.testing.assert_allclose(colours, np.repeat(grey(ds, expected.ir)[:, None], 3, axis=1), atol=1e-6)
    assert str(len(expected)) in view.message.replace(",", "")
    # the buffer holds the stride's whole pixel grid: the browser keeps its size while frames change
    grid = PointCloudFrames(ds).capacity(settings["stride"], settings.get("roi_px"))
    assert len(view.cloud_buffer.array) == grid


def test_downsampling_keeps_one_pixel_in_stride_squared(ds):
    frames = PointCloudFrames(ds)
    full, four = frames.cloud(5, stride=1), frames.cloud(5, stride=4)
    assert set(map(tuple, four.uv_px)) <= set(map(tuple, full.uv_px))
    assert (four.uv_px % 4 == 0).all()
    assert len(full) / 20 < len(four) < len(full) / 12


def test_the_standalone_view_follows_its_frame_trait(ds, views):
    view = views(dataset=ds, frame=0, stride=2, background=False)
    first = drawn_xyz(view)
    view.frame = 40
    assert view.drawn_frame == 40
    np.testing.assert_array_equal(drawn_xyz(view), frame_point_cloud(ds, 40, stride=2).xyz_m)
    assert not np.array_equal(first, drawn_xyz(view)) and "frame 40" in view.message
    view.stride = 4  # a setting change redraws the same frame
    np.testing.assert_array_equal(drawn_xyz(view), frame_point_cloud(ds, 40, stride=4).xyz_m)
    view.point_size = 3.5
    assert view.figure.scene.children[0].material.size == 3.5
    opened_from_path = views(dataset=ds.attrs["path"], frame=3, background=False)
    np.testing.assert_array_equal(opened_from_path.cloud.xyz_m, frame_point_cloud(ds, 3, stride=4).xyz_m)


def test_frames_that_arrive_while_one_is_drawn_are_skipped_for_the_newest(ds, views, monkeypatch):
    computed, release, started = [], threading.Event(), threading.Event()
    original = PointCloudFrames.cloud

    def slow_cloud(self, frame_index, **kwargs):
        computed.append(frame_index)
        if frame_index == 1:  # hold the draw of frame 1
            started.set()
            assert release.wait(10)
        return original(self, frame_index, **kwargs)

    view = views(dataset=ds, frame=0)
    assert view.wait_drawn(10)
    monkeypatch.setattr(PointCloudFrames, "cloud", slow_cloud)
    view.frame = 1
    assert started.wait(10)
    for frame in range(2, 30):  # the playhead moves on while frame 1 is being drawn
        view.frame = frame
    release.set()
    assert view.wait_drawn(10)
    assert computed == [1, 29] and view.drawn_frame == 29
    np.testing.assert_array_equal(drawn_xyz(view), frame_point_cloud(ds, 29, stride=4).xyz_m)
    assert view.stats["skipped"] >= 27


def test_the_colour_switch_recolours_the_same_points(ds, views):
    view = views(dataset=ds, frame=8, background=False)
    xyz, ir_colours = drawn_xyz(view), drawn(view)[:, 3:]
    view.colour = "depth"
    depth_colours = drawn(view)[:, 3:]
    np.testing.assert_array_equal(drawn_xyz(view), xyz)
    lo, hi = ds.attrs["display"]["depth_range_mm"]
    level = np.clip((hi - xyz[:, 2] * 1000) * (255 / (hi - lo)), 0, 255).astype("uint8")
    np.testing.assert_allclose(depth_colours, VIRIDIS_LUT[level] / 255, atol=1e-6)
    near, far = np.argmin(xyz[:, 2]), np.argmax(xyz[:, 2])
    assert depth_colours[near, 1] > depth_colours[far, 1]  # viridis: near is bright (yellow-green)
    assert not np.allclose(depth_colours, ir_colours)
    view.colour = "ir"
    np.testing.assert_array_equal(drawn(view)[:, 3:], ir_colours)


@pytest.mark.parametrize("settings, message", [
    ({"stride": 0}, "stride must be an integer from 1 (every pixel) to 16, got 0"),
    ({"stride": 2.5}, "stride must be an integer from 1"),
    ({"stride": True}, "stride must be an integer from 1"),
    ({"roi_px": (0, 80, 0, 20)}, "roi_px (0, 80, 0, 20) is not inside the 64x53 depth image"),
    ({"roi_px": (30, 10, 0, 20)}, "give 0 <= u0 < u1 <= width"),
    ({"roi_px": (0, 10)}, "roi_px must be (u0, u1, v0, v1)"),
    ({"roi_px": (0.5, 10, 0, 20)}, "whole pixel columns"),
    ({"box_m": ((0, 0, 2), (1, 1, 1))}, "x0 <= x1, y0 <= y1, z0 <= z1"),
    ({"box_m": (1, 2)}, "box_m must be ((x0, y0, z0), (x1, y1, z1)) in metres"),
    ({"voxel_m": -0.01}, "voxel_m must be None or a positive number of metres"),
    ({"colour": "rgb"}, "colour must be one of ('ir', 'depth'), got 'rgb'"),
    ({"frame": 60}, "frame must be an integer in 0..59, got 60"),
])
def test_bad_settings_are_refused_naming_what_is_allowed(ds, views, settings, message):
    with pytest.raises(ValidationError) as info:
        views(dataset=ds, background=False, **settings)
    assert message in str(info.value)
    view = views(dataset=ds, frame=2, background=False)
    with pytest.raises(ValidationError) as info:
        setattr(view, *next(iter(settings.items())))
    assert message in str(info.value)
    assert view.drawn_frame == 2  # the view still shows what it showed
    np.testing.assert_array_equal(drawn_xyz(view), frame_point_cloud(ds, 2, stride=4).xyz_m)


def test_neither_or_both_sources_are_refused(ds, app):
    with pytest.raises(ValidationError, match="give either app= .* or dataset="):
        PointCloudView()
    with pytest.raises(ValidationError, match="not both or neither"):
        PointCloudView(app, dataset=ds)


@pytest.fixture(scope="module")
def store_without_depth(tmp_path_factory):
    from deepepil.synthetic.patient import make_cohort_profiles
    from deepepil.synthetic.recording import make_recording

    recording = make_recording(make_cohort_profiles(1, 0)[0], seconds=1.0, size="tiny", seed=1)
    return deepepil.ingest(recording, tmp_path_factory.mktemp("no-depth"), name="nodepth", streams=["ir", "rgb"],
                           progress=False)


def test_a_recording_without_depth_gives_a_clear_error(store_without_depth, ui_sqlite_db, app, views):
    ds = deepepil.open_recording(store_without_depth)
    with pytest.raises(MissingStreamError, match="this recording has no depth stream .*'ir', 'rgb'.* needs one"):
        PointCloudView(dataset=ds)
    view = views(app, background=False)
    assert view.drawn_frame == 0
    # in the app: opening such a recording works, and the view says why it shows nothing
    rec = catalog.register_recording(store_without_depth, "North", None, ui_sqlite_db.url, user="root")
    app.open_recording(rec)
    assert app.screen == "labeling" and app.recording["id"] == rec
    assert view.drawn_frame == -1 and not view.figure.scene.children[0].visible
    assert view.message.startswith("error: ") and "no depth stream" in view.message
    app.frame = 5  # the playhead moves: nothing breaks, nothing is drawn
    assert view.drawn_frame == -1


def test_the_view_follows_the_apps_playhead_and_open_recording(app, ask, views):
    view = views(app, background=False)
    assert view.drawn_frame == 0
    np.testing.assert_array_equal(drawn_xyz(view), frame_point_cloud(app.dataset, 0, stride=4).xyz_m)
    app.frame = 33  # as the front end reports the playhead
    assert view.frame == 33 and view.drawn_frame == 33
    np.testing.assert_array_equal(drawn_xyz(view), frame_point_cloud(app.dataset, 33, stride=4).xyz_m)
    assert ask(app, {"type": "close"})["ok"]  # back to the landing list
    assert app.recording is None
    assert view.drawn_frame == -1 and not view.figure.scene.children[0].visible
    assert "No recording open" in view.message
    app.open_recording(app.recordings[0]["id"])
    assert view.drawn_frame == 0 and view.figure.scene.children[0].visible


def test_the_threaded_view_follows_the_app(app, views):
    view = views(app)
    app.frame = 21
    assert view.wait_drawn(10) and view.drawn_frame == 21
    np.testing.assert_array_equal(drawn_xyz(view), frame_point_cloud(app.dataset, 21, stride=4).xyz_m)


def place(app, ask, frame_index, joint, u_px, v_px):
    reply = ask(app, {"type": "edit", "op": "place_keypoint",
                      "args": {"frame_index": frame_index, "joint": joint, "u_px": u_px, "v_px": v_px}})
    assert reply["ok"], reply["error"]


def scatter_xyz(scatter) -> np.ndarray:
    return np.stack([scatter.x, scatter.y, scatter.z], axis=1)


def test_joints_are_drawn_at_joints_at_keyframes_apart_from_interpolated_with_the_skeleton(app, ask, views):
    view = views(app, background=False)
    keyframes, interpolated = view.figure.scatters
    bones = view.figure.meshes[0]
    assert not keyframes.visible and not interpolated.visible and not bones.visible
    place(app, ask, 10, "left_elbow", 20.0, 20.0)
    place(app, ask, 20, "left_elbow", 40.0, 30.0)
    place(app, ask, 14, "left_shoulder", 24.0, 18.0)
    place(app, ask, 14, "head", 31.0, 9.0)

    app.frame = 14
    joints = app.joints_at(14)
    assert sorted(joints["joint"]) == ["head", "left_elbow", "left_shoulder"]
    assert keyframes.visible and interpolated.visible
    np.testing.assert_allclose(scatter_xyz(keyframes), joints.query("keyframe")[["x_m", "y_m", "z_m"]], rtol=1e-6)
    np.testing.assert_allclose(scatter_xyz(interpolated), joints.query("not keyframe")[["x_m", "y_m", "z_m"]],
                               rtol=1e-6)
    assert joints.query("not keyframe")["joint"].tolist() == ["left_elbow"]
    # the skeleton: a line for each bone whose two joints are shown (shoulder-elbow here)
    names = list(app.joints_at(14)["joint"])
    assert bones.visible
    assert [tuple(sorted((names[a], names[b]))) for a, b in bones.lines] == [("left_elbow", "left_shoulder")]
    np.testing.assert_allclose(scatter_xyz(bones), app.joints_at(14)[["x_m", "y_m", "z_m"]], rtol=1e-6)
    assert keyframes.geo != interpolated.geo and not np.allclose(keyframes.color, interpolated.color)
    assert "3 joint(s)" in view.message

    app.frame = 16  # between the elbow's keyframes only
    assert not keyframes.visible and interpolated.visible and not bones.visible
    np.testing.assert_allclose(scatter_xyz(interpolated), app.joints_at(16)[["x_m", "y_m", "z_m"]], rtol=1e-6)

    place(app, ask, 16, "left_wrist", 44.0, 30.0)  # a new keypoint on the shown frame: drawn without a seek
    assert keyframes.visible
    np.testing.assert_allclose(scatter_xyz(keyframes),
                               app.joints_at(16).query("keyframe")[["x_m", "y_m", "z_m"]], rtol=1e-6)
    assert bones.visible  # elbow-wrist

    view.show_joints = False
    assert not keyframes.visible and not interpolated.visible and not bones.visible
    assert view.figure.scene.children[0].visible


def test_the_playhead_forwarded_by_the_browser_bridge_moves_the_view(app, views):
    """The bridge (an invisible child) forwards the app's playhead as messages, not held back like trait syncs."""
    view = views(app, background=False)
    bridge = view.children[-1]
    assert bridge.app_model_id == app.model_id and bridge.layout.display == "none"

    def forward(content):
        bridge._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})

    forward({"frame": 44})
    assert view.frame == 44 and view.drawn_frame == 44
    np.testing.assert_array_equal(drawn_xyz(view), frame_point_cloud(app.dataset, 44, stride=4).xyz_m)
    forward({"frame": 10_000})  # past the end (e.g. a longer recording was open a moment ago): the last frame
    assert view.drawn_frame == 59
    forward({"frame": "12"})
    forward({"nothing": 1})
    assert view.drawn_frame == 59
    forward({"frame": 30})
    app.set_state({"frame": 25})  # the app's trait, from the browser, arriving after the bridge's newer playhead
    assert app.frame == 25 and view.drawn_frame == 30
    app.frame = 7  # set in Python: followed
    assert view.drawn_frame == 7
