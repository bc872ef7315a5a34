"""3D joints end to end (issue 6 point 6): JupyterLab, the prepared notebook, headless Chromium, the label DB.

The clinician turns joint mode on, picks a joint and clicks a known depth-image pixel on the IR
view; the database then holds that joint on that frame at that pixel, lifted to 3D on that
frame's depth exactly as :func:`deepepil.recordings.geometry.lift_pixel` does, and the joint is
drawn on the IR and depth views (and, projected through the calibration, on RGB). A second
keyframe makes the frames between them show the joint interpolated; a drag moves a keyframe,
Delete deletes it and Ctrl+z brings it back. The click positions are computed here from the
canvas's box (letterboxed, pixel centres at integers), not with the app's own mapping.
Screenshots go to ``test-artifacts/browser/<test>/``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from _app import LabelingAppPage
from _lab import CLINICIAN, open_lab

import deepepil
from deepepil.labels import connect
from deepepil.recordings.geometry import lift_pixel, project_points

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FPS = 30
FIRST, SECOND = 40, 50  # the two keyframes' frames


@pytest.fixture
def app(lab, page) -> LabelingAppPage:
    """The app after opening JupyterLab and running notebooks/labeling.ipynb (landing screen)."""
    open_lab(page, lab.server)
    ui = LabelingAppPage(page)
    ui.start(lab.notebooks["labeling.ipynb"])
    return ui


@pytest.fixture(scope="module")
def recording(lab):
    """The clinician's recording, opened from its store (the depth the kernel lifts clicks on)."""
    return deepepil.open_recording(lab.cohort.stores[0])


def solid_pixel(depth: np.ndarray, near: tuple[float, float]) -> tuple[int, int]:
    """(u, v) of the pixel nearest ``near`` whose 7x7 neighbourhood all has depth readings (no hole near)."""
    ok = depth > 0
    solid = np.zeros_like(ok)
    solid[3:-3, 3:-3] = np.all([np.roll(np.roll(ok, dv, 0), du, 1)[3:-3, 3:-3]
                                for dv in range(-3, 4) for du in range(-3, 4)], axis=0)
    vs, us = np.nonzero(solid)
    i = int(np.argmin(np.hypot(us - near[0], vs - near[1])))
    return int(us[i]), int(vs[i])


def db_keypoints(lab):
    with connect(lab.db_url, user=CLINICIAN) as store:
        return store.keypoints(lab.ids.recording)


def wait_db(lab, check, what: str, timeout_s: float = 30.0):
    """Poll the database until ``check(keypoints)`` is true; return the keypoints."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = db_keypoints(lab)
        if check(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"the database never showed {what}; it has:\n{rows}")
        time.sleep(0.2)


def test_a_click_on_the_ir_view_stores_the_joint_in_3d_and_draws_it(lab, app, page, recording, shot, artifacts):
    ui = app
    width, height = recording.sizes["x"], recording.sizes["y"]
    size = (width, height)
    ui.open_recording(lab.ids.recording)
    ui.focus()
    ui.seek_by_keys_to(FIRST, FPS)
    ui.wait_player_shows(FIRST, ("ir", "depth"))

    ui.press("j")
    assert ui.joint_mode(), "j turns joint mode on"
    ui.press("5")
    page.locator(".de-joints-item--chosen[data-joint='left_wrist']").wait_for()
    ui.press("5")  # again: the other side
    page.locator(".de-joints-item--chosen[data-joint='right_wrist']").wait_for()
    ui.choose_joint("left_wrist")
    shot("joint-mode")

    depth = recording["depth"][FIRST].values
    u, v = solid_pixel(depth, (width * 0.5, height * 0.45))
    page.mouse.click(*ui.image_xy("ir", u, v, size))
    rows = wait_db(lab, lambda k: len(k) == 1, "the placed joint")
    row = rows.iloc[0]
    assert (row.joint, row.frame_index, row.author, row.source) == ("left_wrist", FIRST, CLINICIAN, "human")
    assert abs(row.u_px - u) <= 1 and abs(row.v_px - v) <= 1, (row.u_px, row.v_px, u, v)
    lifted = lift_pixel(depth, row.u_px, row.v_px, recording)
    assert np.allclose([row.x_m, row.y_m, row.z_m], lifted.xyz_m, atol=1e-3)
    assert row.z_m == pytest.approx(depth[v, u] * 1e-3, abs=1e-3), "the depth read is the clicked pixel's"

    for stream in ("ir", "depth"):
        marker = ui.wait_joint_marker(stream, "left_wrist", keyframe=True)
        x, y = ui.image_xy(stream, row.u_px, row.v_px, size)
        assert abs(marker["x"] - x) <= 1.5 and abs(marker["y"] - y) <= 1.5, (stream, marker, x, y)
    assert ui.joint_markers("ir")[0]["label"] == "left wrist", "the placed joint is selected and named"
    # the RGB view shows it too, projected through the calibration (another camera: shown, not clicked)
    cal = recording.attrs["calibration"]["rgb"]
    rgb_size = (recording.sizes["rgb_x"], recording.sizes["rgb_y"])
    (pu, pv), = project_points([[row.x_m, row.y_m, row.z_m]], recording, "rgb")
    marker = ui.wait_joint_marker("rgb", "left_wrist", keyframe=True)
    x, y = ui.image_xy("rgb", (pu + 0.5) * rgb_size[0] / cal["width"] - 0.5,
                       (pv + 0.5) * rgb_size[1] / cal["height"] - 0.5, rgb_size)
    assert abs(marker["x"] - x) <= 1.5 and abs(marker["y"] - y) <= 1.5, ("rgb", marker, x, y)
    shot("placed")

    # a second keyframe: the frames between show the joint interpolated (hollow)
    ui.seek_by_keys_to(SECOND, FPS)
    ui.wait_player_shows(SECOND, ("ir",))
    u2, v2 = solid_pixel(recording["depth"][SECOND].values, (u + 8, v + 4))
    page.mouse.click(*ui.image_xy("depth", u2, v2, size))  # the depth view takes clicks too
    rows = wait_db(lab, lambda k: len(k) == 2, "the second keyframe")
    second = rows.set_index("frame_index").loc[SECOND]
    ui.press(*["ArrowLeft"] * 5)
    ui.wait_player_shows(45, ("ir",))
    between = ui.wait_joint_marker("ir", "left_wrist", keyframe=False)
    x, y = ui.image_xy("ir", (row.u_px + second.u_px) / 2, (row.v_px + second.v_px) / 2, size)
    assert abs(between["x"] - x) <= 1.5 and abs(between["y"] - y) <= 1.5, (between, x, y)
    page.mouse.move(between["x"], between["y"])
    page.wait_for_function("() => document.querySelector('.de-joints-label')")
    assert ui.joint_markers("ir")[0]["label"] == "left wrist", "hovering a marker names its joint"
    shot("interpolated")
    page.locator(".de-joints-panel").screenshot(path=str(artifacts / "joints-panel.png"))

    # drag the second keyframe; then delete it and undo
    ui.press(*["ArrowRight"] * 5)
    ui.wait_player_shows(SECOND, ("ir",))
    marker = ui.wait_joint_marker("ir", "left_wrist", keyframe=True)
    u3, v3 = solid_pixel(recording["depth"][SECOND].values, (u2 - 6, v2 + 6))
    page.mouse.move(marker["x"], marker["y"])
    page.mouse.down()
    page.mouse.move(*ui.image_xy("ir", u3, v3, size), steps=6)
    page.mouse.up()
    rows = wait_db(lab, lambda k: (k["version"] == 2).any(), "the dragged keyframe")
    moved = rows.set_index("frame_index").loc[SECOND]
    assert abs(moved.u_px - u3) <= 1 and abs(moved.v_px - v3) <= 1 and moved.id == second.id
    assert np.allclose([moved.x_m, moved.y_m, moved.z_m],
                       lift_pixel(recording["depth"][SECOND].values, moved.u_px, moved.v_px, recording).xyz_m,
                       atol=1e-3)
    shot("dragged")

    marker = ui.wait_joint_marker("ir", "left_wrist", keyframe=True)
    page.mouse.click(marker["x"], marker["y"])
    page.locator(".de-joints-detail:not([hidden])").wait_for()
    ui.press("Delete")
    wait_db(lab, lambda k: len(k) == 1, "the keyframe deleted")
    page.locator(".de-joints-overlay[data-stream='ir'] g.de-joints-marker").wait_for(state="detached")
    ui.press("Control+z")
    wait_db(lab, lambda k: len(k) == 2, "the keyframe back after undo")
    ui.wait_joint_marker("ir", "left_wrist", keyframe=True)
    ui.press("Escape", "Escape")
    page.wait_for_function("() => !window.__deepepil_joints.mode")
    shot("after-undo", full_page=True)
    errors = [line for line in page.console_lines if line.startswith(("[error]", "[pageerror]"))]
    assert not errors, errors
