"""SyntheticRecording as a RecordingSource: sizes, determinism, sensor-like images."""

from __future__ import annotations

import numpy as np
import pytest

from deepepil.recordings.calibration import default_calibration
from deepepil.recordings.source import Frame, RecordingSource
from deepepil.synthetic.patient import make_cohort_profiles
from deepepil.synthetic.recording import SIZES, SyntheticRecording, make_recording


@pytest.fixture(scope="module")
def patients():
    return make_cohort_profiles(4, seed=0)


@pytest.fixture(scope="module")
def tiny(patients):
    return make_recording(patients[0], 0, seconds=2.0, size="tiny", seed=0)


def test_sizes_table():
    assert SIZES["tiny"] == {"depth_size": (64, 53), "rgb_size": (96, 54)}
    assert SIZES["small"] == {"depth_size": (256, 212), "rgb_size": (480, 270)}
    assert SIZES["full"] == {"depth_size": (512, 424), "rgb_size": (1920, 1080)}


def test_invalid_size_lists_the_valid_ones(patients):
    with pytest.raises(ValueError, match="'tiny', 'small', 'full'"):
        make_recording(patients[0], 0, seconds=2.0, size="huge")


@pytest.mark.parametrize("size", ["tiny", "small", "full"])
def test_frame_shapes_and_dtypes(patients, size):
    rec = make_recording(patients[1], 0, seconds=1.0, size=size, seed=0)
    assert isinstance(rec, RecordingSource)
    (dw, dh), (cw, ch) = SIZES[size]["depth_size"], SIZES[size]["rgb_size"]
    assert rec.streams["depth"].frame_shape == (dh, dw)
    assert rec.streams["ir"].frame_shape == (dh, dw)
    assert rec.streams["rgb"].frame_shape == (ch, cw, 3)
    for info in rec.streams.values():
        assert info.num_frames == 30 and info.fps == 30.0
    frame = rec.render_frame(12)
    assert frame["depth"].shape == (dh, dw) and frame["depth"].dtype == np.uint16
    assert frame["ir"].shape == (dh, dw) and frame["ir"].dtype == np.uint16
    assert frame["rgb"].shape == (ch, cw, 3) and frame["rgb"].dtype == np.uint8


def test_num_frames_is_rounded_seconds_times_fps(patients):
    assert make_recording(patients[0], 0, seconds=2.49, size="tiny").num_frames == 75


def test_metadata(tiny, patients):
    assert tiny.attrs["synthetic"] is True
    assert tiny.attrs["patient_code"] == patients[0].code
    assert tiny.attrs["syndrome"] == patients[0].syndrome
    assert tiny.attrs["seed"] == 0 and tiny.attrs["size"] == "tiny"
    expected = default_calibration((64, 53), (96, 54))
    assert tiny.calibration["device"] == "synthetic_kinect"
    assert tiny.calibration["depth"] == expected["depth"]
    assert tiny.calibration["rgb"] == expected["rgb"]
    assert tiny.name == f"{patients[0].code}_S01"
    assert tiny.name in repr(tiny)


def test_iter_frames_is_lazy_ordered_and_matches_render_frame(tiny):
    frames = tiny.iter_frames("depth")
    first = next(frames)
    assert isinstance(first, Frame) and first.index == 0 and first.pts_seconds == 0.0
    rest = list(frames)
    assert len(rest) == tiny.num_frames - 1
    assert rest[-1].index == 59 and rest[-1].pts_seconds == pytest.approx(59 / 30)
    for i in (0, 17, 59):
        expected = tiny.render_frame(i)
        got = first if i == 0 else rest[i - 1]
        np.testing.assert_array_equal(got.data, expected["depth"])
    # interleaved iteration of all streams gives the same as one stream at a time
    for rgb, ir, depth in zip(*(tiny.iter_frames(s) for s in ("rgb", "ir", "depth"))):
        if rgb.index in (3, 40):
            fresh = make_recording(tiny.patient, 0, seconds=2.0, size="tiny", seed=0)
            frame = fresh.render_frame(rgb.index)
            for name, got in (("rgb", rgb), ("ir", ir), ("depth", depth)):
                np.testing.assert_array_equal(got.data, frame[name])
    # the memoised frame is shared between calls, so it cannot be changed by accident
    assert not tiny.render_frame(5)["depth"].flags.writeable
    with pytest.raises(ValueError, match="stream"):
        next(tiny.iter_frames("eeg"))
    with pytest.raises(IndexError):
        tiny.render_frame(60)


def test_same_seed_gives_identical_frames_in_any_order(patients):
    a = make_recording(patients[2], 1, seconds=2.0, size="small", seed=7)
    b = make_recording(patients[2], 1, seconds=2.0, size="small", seed=7)
    late_a = a.render_frame(40)
    early_a = a.render_frame(5)
    early_b = b.render_frame(5)
    late_b = b.render_frame(40)
    for name in ("rgb", "ir", "depth"):
        np.testing.assert_array_equal(early_a[name], early_b[name])
        np.testing.assert_array_equal(late_a[name], late_b[name])
    assert a.ground_truth == b.ground_truth


def test_different_seed_or_recording_gives_different_data(patients):
    a = make_recording(patients[2], 0, seconds=2.0, size="tiny", seed=7)
    b = make_recording(patients[2], 0, seconds=2.0, size="tiny", seed=8)
    c = make_recording(patients[2], 1, seconds=2.0, size="tiny", seed=7)
    for other in (b, c):
        assert a.ground_truth["mois"] != other.ground_truth["mois"]
        fa, fo = a.render_frame(30), other.render_frame(30)
        for name in ("rgb", "ir", "depth"):
            assert not np.array_equal(fa[name], fo[name]), name


def test_consecutive_frames_differ_by_noise(tiny):
    """Noise is drawn per frame: even a still scene changes slightly."""
    a, b = tiny.render_frame(1)["depth"], tiny.render_frame(2)["depth"]
    assert not np.array_equal(a, b)


def test_depth_is_plausible(patients):
    rec = make_recording(patients[1], 0, seconds=1.0, size="small", seed=0)
    depth = rec.render_frame(0)["depth"]
    valid = depth[depth > 0].astype(int)
    # the bed top, 1.6 m below the camera, is the most common depth nearer than the floor
    near = valid[valid < 2000]
    values, counts = np.unique(near // 10 * 10, return_counts=True)
    assert 1580 <= values[np.argmax(counts)] <= 1620
    assert 0.2 < (np.abs(valid - 1600) < 10).mean() < 0.8
    # the body is closer than the bed, the floor farther
    chest = rec.joints_m[0, 2:4].mean(axis=0) * 0.6 + rec.joints_m[0, 8:10].mean(axis=0) * 0.4
    cal = rec.calibration["depth"]
    u = int(round(cal["fx"] * chest[0] / chest[2] + cal["cx"]))
    v = int(round(cal["fy"] * chest[1] / chest[2] + cal["cy"]))
    patch = depth[v - 2:v + 3, u - 2:u + 3]
    assert 1350 < np.median(patch[patch > 0]) < 1540
    assert valid.min() > 1200
    assert 2150 < valid.max() < 2300
    # holes: present but rare; more of them at depth edges
    hole_fraction = (depth == 0).mean()
    assert 0.003 < hole_fraction < 0.06
    clean = rec.renderer.gbuffer("depth", [])  # bed and floor only: edges at the bed border
    jump = np.zeros(depth.shape, dtype=bool)
    jump[:, 1:] |= np.abs(np.diff(clean.z, axis=1)) > 0.3
    jump[:, :-1] |= np.abs(np.diff(clean.z, axis=1)) > 0.3
    assert (depth[jump] == 0).mean() > 5 * hole_fraction


def test_depth_noise_is_small_and_depth_dependent(patients):
    rec = make_recording(patients[1], 0, seconds=1.0, size="small", seed=0)
    stack = np.stack([rec.render_frame(i)["depth"] for i in range(4)]).astype(float)
    valid = (stack > 0).all(axis=0)
    bed = valid & (np.abs(stack[0] - 1600) < 15)
    floor = valid & (np.abs(stack[0] - 2200) < 25)
    bed_sd = stack[:, bed].std(axis=0).mean()
    floor_sd = stack[:, floor].std(axis=0).mean()
    assert 0.3 < bed_sd < 4.0
    assert floor_sd > bed_sd


def test_ir_is_sixteen_bit_kinect_like(patients):
    rec = make_recording(patients[0], 0, seconds=1.0, size="small", seed=0)
    frame = rec.render_frame(0)
    ir, depth = frame["ir"].astype(int), frame["depth"].astype(int)
    assert np.percentile(ir, 99) < 3000
    assert ir.max() < 65535
    bed = np.abs(depth - 1600) < 10
    floor = np.abs(depth - 2200) < 20
    assert ir[bed].mean() > 600
    assert ir[bed].mean() > 1.5 * ir[floor].mean()  # light falls with distance


def test_rgb_shows_a_scene(patients):
    rec = make_recording(patients[0], 0, seconds=1.0, size="small", seed=0)
    rgb = rec.render_frame(0)["rgb"].astype(int)
    assert rgb.std() > 20
    centre = rgb[120:150, 220:260].reshape(-1, 3).mean(axis=0)
    corner = rgb[:10, :10].reshape(-1, 3).mean(axis=0)
    assert np.abs(centre - corner).sum() > 30  # patient/bed differ from the floor


def test_blanket_hides_the_legs_but_follows_them(patients):
    with_blanket = [p for p in make_cohort_profiles(12, seed=0) if p.blanket]
    assert with_blanket
    rec = make_recording(with_blanket[0], 0, seconds=1.0, size="small", seed=0)
    gb = rec.renderer.gbuffer("depth", rec_primitives(rec, 0))
    from deepepil.synthetic.scene import MAT

    cal = rec.calibration["depth"]
    knee = rec.joints_m[0, 10]
    u = int(round(cal["fx"] * knee[0] / knee[2] + cal["cx"]))
    v = int(round(cal["fy"] * knee[1] / knee[2] + cal["cy"]))
    assert gb.material[v, u] == MAT["blanket"]
    assert gb.z[v, u] < 1.58  # the blanket rises over the knee


def rec_primitives(rec: SyntheticRecording, index: int):
    from deepepil.synthetic.scene import body_primitives

    return body_primitives(rec.patient, rec.skeleton, index)
