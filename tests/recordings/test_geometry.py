"""Depth -> 3D against the synthetic scene's exact geometry, colour registration, lifting clicks, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import deepepil
from deepepil.errors import ValidationError
from deepepil.recordings.calibration import KINECT_V2_DEPTH, default_calibration
from deepepil.recordings.geometry import (
    Intrinsics,
    backproject,
    frame_point_cloud,
    lift_pixel,
    lift_pixels,
    point_cloud,
    project_points,
    rgb_colours,
)
from deepepil.synthetic import make_cohort_profiles, make_recording
from deepepil.synthetic.scene import BED_LENGTH_M, BED_TOP_DEPTH_M, BED_WIDTH_M, MAT, body_primitives
from deepepil.synthetic.vocabulary import JOINT_NAMES

#: A frame of the recording below in the middle of its head version (face turned ~70 degrees).
VERSION_FRAME = 215


@pytest.fixture(scope="module")
def rec():
    """A temporal-like patient at the "small" size (256x212 depth, 480x270 colour), no blanket."""
    patient = make_cohort_profiles(4, seed=3)[1]
    assert not patient.blanket
    rec = make_recording(patient, 0, seconds=10.0, size="small", seed=3)
    version = next(m for m in rec.script.mois if m.label == "head version")
    assert version.start_frame < VERSION_FRAME < version.end_frame
    return rec


def gbuffer(rec, frame: int, camera: str = "depth"):
    """The renderer's noise-free nearest surfaces (depth in metres, material) of one frame."""
    return rec.renderer.gbuffer(camera, body_primitives(rec.patient, rec.skeleton, frame))


def head_surface_distance_m(rec, frame: int, points_m: np.ndarray) -> np.ndarray:
    """Signed distance (approximately, along the ray from the centre) of points to the true head ellipsoid."""
    center = rec.joints_m[frame, JOINT_NAMES.index("head")]
    axes = rec.skeleton.head_axes[frame]
    k = rec.patient.height_m / 1.75
    radii = np.array([0.11, 0.078, 0.095]) * k  # deepepil.synthetic.scene.body_dimensions
    q = (points_m - center) @ axes.T
    f = np.linalg.norm(q / radii, axis=1)
    return np.linalg.norm(q, axis=1) * (1 - 1 / f)


def test_plane_backprojects_with_documented_kinect_v2_convention():
    cal = default_calibration()  # Kinect v2 defaults, 512x424
    depth = np.full((424, 512), 1500, dtype="uint16")
    xyz = backproject(depth, cal)
    assert xyz.shape == (424, 512, 3) and xyz.dtype == np.float32
    np.testing.assert_allclose(xyz[..., 2], 1.5)  # millimetres in, metres out
    u, v = 400, 100
    fx, cx, cy = KINECT_V2_DEPTH["fx"], KINECT_V2_DEPTH["cx"], KINECT_V2_DEPTH["cy"]
    np.testing.assert_allclose(xyz[v, u], [(u - cx) / fx * 1.5, (v - cy) / fx * 1.5, 1.5], rtol=1e-6)
    assert xyz[v, u, 0] > 0 and xyz[v, u, 1] < 0  # x to the right of the image, y down
    p = lift_pixel(depth, cx, cy, cal)  # the principal point looks straight ahead
    assert (p.x_m, p.y_m, p.z_m) == pytest.approx((0.0, 0.0, 1.5), abs=1e-12)
    np.testing.assert_allclose(project_points(xyz[v, u][None], cal), [[u, v]], atol=1e-3)


def test_backprojection_puts_the_bed_and_the_head_where_the_generator_drew_them(rec):
    cal = rec.calibration
    for frame in (0, VERSION_FRAME):
        gb = gbuffer(rec, frame)
        exact = backproject(gb.z * 1000.0, cal)  # float depth in mm: no noise, no quantisation
        sheet = exact[gb.material == MAT["sheet"]]
        assert len(sheet) > 1000
        np.testing.assert_allclose(sheet[:, 2], BED_TOP_DEPTH_M, atol=1e-4)
        assert np.abs(sheet[:, 0]).max() <= BED_LENGTH_M / 2 + 1e-3
        assert np.abs(sheet[:, 1]).max() <= BED_WIDTH_M / 2 + 1e-3
        # Pixels whose point lies on the true head ellipsoid: many, if the camera model is the renderer's.
        d = head_surface_distance_m(rec, frame, exact.reshape(-1, 3))
        on_head = np.abs(d) < 1e-4  # a tenth of a pixel's shift of the principal point leaves < 110 here
        assert on_head.sum() > 250, f"frame {frame}: {on_head.sum()} points on the head"
        # The sensor's depth (noise, quantisation, holes) puts the same pixels within a few mm of it.
        depth = rec.render_frame(frame, ("depth",))["depth"]
        noisy = backproject(depth, cal).reshape(-1, 3)[on_head]
        noisy = noisy[np.isfinite(noisy[:, 2])]
        err_mm = np.abs(head_surface_distance_m(rec, frame, noisy)) * 1000
        assert np.median(err_mm) < 3.0 and np.percentile(err_mm, 95) < 8.0, (np.median(err_mm), err_mm.max())


def test_true_joints_projected_and_lifted_land_on_the_visible_surface_above_them(rec):
    cal = rec.calibration
    checked = 0
    for frame in (0, 120, VERSION_FRAME):
        depth = rec.render_frame(frame, ("depth",))["depth"]
        gb = gbuffer(rec, frame)
        joints = rec.joints_m[frame]
        uv = project_points(joints, cal)
        for j, (u, v) in enumerate(uv):
            p = lift_pixel(depth, u, v, cal)
            np.testing.assert_allclose(project_points(p.xyz_m[None], cal)[0], (u, v), atol=1e-6)  # on the click's ray
            ray = joints[j] / np.linalg.norm(joints[j])
            assert np.linalg.norm(np.cross(p.xyz_m, ray)) < 1e-9  # ... which passes through the joint
            su, sv = p.source_px
            assert abs(p.z_m - gb.z[sv, su]) < 0.012, JOINT_NAMES[j]  # the visible surface, within sensor noise
            if gb.z[sv, su] > joints[j][2] - 0.13:  # not hidden behind another body part
                assert 0 < joints[j][2] - p.z_m < 0.12, JOINT_NAMES[j]  # in front of the joint, by its flesh
                checked += 1
    assert checked >= 36


def test_ir_and_rgb_colour_the_points_of_the_same_surface(rec):
    cal = rec.calibration
    frames = rec.render_frame(VERSION_FRAME)
    cloud = point_cloud(frames["depth"], cal, ir=frames["ir"], rgb=frames["rgb"], stride=2)
    u, v = cloud.uv_px.T
    np.testing.assert_array_equal(cloud.ir, frames["ir"][v, u])  # IR is the depth camera's own image
    # The colour camera shares the depth camera's centre: a point's colour pixel sees the same material.
    material_depth = gbuffer(rec, VERSION_FRAME).material[v, u]
    rgb_uv = np.floor(project_points(cloud.xyz_m, cal, "rgb") + 0.5).astype(int)
    material_rgb = gbuffer(rec, VERSION_FRAME, "rgb").material[rgb_uv[:, 1], rgb_uv[:, 0]]
    assert np.mean(material_depth == material_rgb) > 0.97
    np.testing.assert_array_equal(cloud.rgb, frames["rgb"][rgb_uv[:, 1], rgb_uv[:, 0]])
    skin = material_depth == MAT["skin"]
    skin_rgb = np.array(rec.patient.skin_rgb)
    cosine = cloud.rgb[skin] / 255.0 @ skin_rgb / (np.linalg.norm(cloud.rgb[skin] / 255.0, axis=1)
                                                   * np.linalg.norm(skin_rgb))
    assert np.median(cosine) > 0.99  # skin-coloured


def test_rgb_registration_applies_the_depth_to_rgb_extrinsics():
    cal = default_calibration((64, 48), (128, 96))
    cal["depth_to_rgb"] = {"rotation": np.eye(3).tolist(), "translation_m": [0.052, 0.0, 0.0]}
    points = np.array([[0.0, 0.0, 1.0], [0.1, -0.05, 2.0]])
    rgb_cam = Intrinsics.from_calibration(cal, "rgb")
    uv = project_points(points, cal, "rgb")
    expected = [[rgb_cam.cx + rgb_cam.fx * (x + 0.052) / z, rgb_cam.cy + rgb_cam.fy * y / z] for x, y, z in points]
    np.testing.assert_allclose(uv, expected)
    image = np.zeros((96, 128, 3), dtype="uint8")
    image[..., 0] = np.arange(128)[None, :]  # red = column
    colours, inside = rgb_colours(np.vstack([points, [[5.0, 0.0, 1.0]]]), image, cal)
    assert inside.tolist() == [True, True, False]
    assert colours[:2, 0].tolist() == np.floor(uv[:, 0] + 0.5).astype(int).tolist()


def test_holes_are_dropped_and_clouds_downsample_and_crop():
    cal = default_calibration((64, 48), None)
    rng = np.random.default_rng(0)
    depth = rng.integers(800, 2500, (48, 64)).astype("uint16")
    depth[rng.random(depth.shape) < 0.1] = 0
    full = point_cloud(depth, cal)
    assert len(full) == np.count_nonzero(depth) and np.isfinite(full.xyz_m).all()
    dense = backproject(depth, cal)
    u, v = full.uv_px.T
    np.testing.assert_array_equal(full.xyz_m, dense[v, u])

    strided = point_cloud(depth, cal, stride=4)
    assert len(strided) == np.count_nonzero(depth[::4, ::4])
    assert (strided.uv_px % 4 == 0).all()

    roi = point_cloud(depth, cal, roi_px=(10, 30, 5, 20))
    assert len(roi) == np.count_nonzero(depth[5:20, 10:30])
    assert roi.uv_px[:, 0].min() >= 10 and roi.uv_px[:, 0].max() < 30 and roi.uv_px[:, 1].max() < 20

    box = ((-0.2, -0.1, 1.0), (0.3, 0.2, 2.0))
    boxed = point_cloud(depth, cal, box_m=box)
    inside = np.all((full.xyz_m >= np.float32(box[0])) & (full.xyz_m <= np.float32(box[1])), axis=1)
    assert 0 < len(boxed) == inside.sum() < len(full)

    ir = rng.integers(0, 3000, (48, 64)).astype("uint16")
    voxels = point_cloud(depth, cal, ir=ir, voxel_m=0.1)
    assert 0 < len(voxels) < len(full)
    cells = np.floor(full.xyz_m / np.float32(0.1)).astype(int)
    _, inverse = np.unique(cells, axis=0, return_inverse=True)
    assert len(voxels) == inverse.max() + 1
    first = cells[0]
    members = np.all(cells == first, axis=1)
    hit = np.flatnonzero(np.all(np.floor(voxels.xyz_m / np.float32(0.1)).astype(int) == first, axis=1))
    assert len(hit) == 1
    np.testing.assert_allclose(voxels.xyz_m[hit[0]], full.xyz_m[members].mean(axis=0), rtol=1e-5)
    assert voxels.ir[hit[0]] == pytest.approx(ir[v, u][members].mean(), rel=1e-5)


def test_lift_pixel_takes_the_nearest_reading_around_a_hole_and_says_when_there_is_none():
    cal = default_calibration((32, 24), None)
    depth = np.zeros((24, 32), dtype="uint16")
    depth[10, 13] = 2000  # one pixel away (left)
    depth[10, 17] = 1800  # three pixels away (right)
    p = lift_pixel(depth, 14.2, 9.8, cal)
    assert p.source_px == (13, 10) and p.distance_px == 1.0 and p.depth_mm == 2000
    np.testing.assert_allclose(project_points(p.xyz_m[None], cal)[0], (14.2, 9.8), atol=1e-9)
    depth[10, 15] = 1500  # a tie at distance 1: the one nearer the camera wins
    assert lift_pixel(depth, 14, 10, cal).depth_mm == 1500
    with pytest.raises(ValidationError, match=r"no depth reading within 2 px of pixel \(5, 5\).*search_radius_px"):
        lift_pixel(depth, 5, 5, cal, search_radius_px=2)
    with pytest.raises(ValidationError, match="no depth reading within 0 px"):
        lift_pixel(depth, 14, 10, cal, search_radius_px=0)
    with pytest.raises(ValidationError, match=r"outside the 32x24 depth image; u must be in \[-0.5, 31.5\)"):
        lift_pixel(depth, 40, 3, cal)
    xyz, distance = lift_pixels(depth, [[14, 10], [5, 5], [-3, 0]], cal)
    assert np.isfinite(xyz[0]).all() and np.isnan(xyz[1:]).all() and distance[0] == 1.0


@pytest.mark.parametrize("frame, message", [
    (np.zeros((24, 32, 1), "uint16"), "must be 2-D"),
    (np.zeros((24, 32), bool), "dtype bool"),
    (np.zeros((24, 32), complex), "dtype complex"),
    (np.zeros((48, 64), "uint16"), "the depth frame is 48x64 .* depth camera is 24x32"),
])
def test_bad_depth_frames_are_refused_with_what_is_allowed(frame, message):
    cal = default_calibration((32, 24), None)
    for call in (point_cloud, backproject, lambda f, c: lift_pixel(f, 1, 1, c)):
        with pytest.raises(ValidationError, match=message):
            call(frame, cal)


def test_bad_options_and_calibrations_are_refused():
    cal = default_calibration((32, 24), None)
    depth = np.full((24, 32), 1000, "uint16")
    with pytest.raises(ValidationError, match="stride must be an integer >= 1"):
        point_cloud(depth, cal, stride=0)
    with pytest.raises(ValidationError, match="voxel_m must be a positive number"):
        point_cloud(depth, cal, voxel_m=-0.01)
    with pytest.raises(ValidationError, match=r"roi_px \(40, 50, 0, 10\) selects no pixel"):
        point_cloud(depth, cal, roi_px=(40, 50, 0, 10))
    with pytest.raises(ValidationError, match="box_m must be"):
        point_cloud(depth, cal, box_m=(1, 2))
    with pytest.raises(ValidationError, match="the calibration has no 'rgb' camera"):
        point_cloud(depth, cal, rgb=np.zeros((10, 10, 3), "uint8"))
    with pytest.raises(ValidationError, match=r"the 'depth' calibration lacks \['fx'\]"):
        point_cloud(depth, {"depth": {k: v for k, v in cal["depth"].items() if k != "fx"}})
    with pytest.raises(ValidationError, match="the ir frame has shape"):
        point_cloud(depth, cal, ir=np.zeros((10, 10), "uint16"))
    with pytest.raises(ValidationError, match="camera 'colour' is not one of"):
        project_points([[0, 0, 1]], cal, "colour")
    with pytest.raises(ValidationError, match="calibration must be a dict"):
        point_cloud(depth, [1, 2])


def test_frame_point_cloud_reads_a_stored_recording(tmp_path):
    rec = make_recording(make_cohort_profiles(2, seed=3)[1], 0, seconds=1.0, size="tiny", seed=3)
    ds = deepepil.open_recording(deepepil.ingest(rec, tmp_path, progress=False))
    cloud = frame_point_cloud(ds, 7, colour="rgb", stride=2)
    frames = rec.render_frame(7)
    expected = point_cloud(frames["depth"], rec.calibration, rgb=ds.rgb[7].values, stride=2)
    np.testing.assert_array_equal(cloud.xyz_m, expected.xyz_m)  # depth is stored losslessly
    assert cloud.rgb is not None and cloud.ir is None
    assert len(frame_point_cloud(ds, 7, colour=None)) == np.count_nonzero(frames["depth"])
    with pytest.raises(ValidationError, match="frame_index must be an integer in 0..29"):
        frame_point_cloud(ds, 30)
    with pytest.raises(ValidationError, match="colour must be 'ir', 'rgb' or None"):
        frame_point_cloud(ds, 0, colour="depth")
