"""The rendered images move where and when the ground truth says."""

from __future__ import annotations

import numpy as np
import pytest

from deepepil.synthetic.patient import make_cohort_profiles
from deepepil.synthetic.recording import SyntheticRecording, make_recording
from deepepil.synthetic.vocabulary import JOINT_NAMES, REGION_JOINTS

#: A pixel "moves" between frames when its depth changes by more than this.
MOVING_MM = 20


def region_box(rec: SyntheticRecording, region: str, margin_m: float = 0.08) -> tuple[slice, slice]:
    """Depth-image box around a region's joints over the whole recording."""
    idx = [JOINT_NAMES.index(n) for n in REGION_JOINTS[region]]
    j = rec.joints_m[:, idx].reshape(-1, 3)
    cal = rec.calibration["depth"]
    u = cal["fx"] * j[:, 0] / j[:, 2] + cal["cx"]
    v = cal["fy"] * j[:, 1] / j[:, 2] + cal["cy"]
    m = cal["fx"] * margin_m / 1.5
    return (slice(max(int(v.min() - m), 0), int(v.max() + m) + 1),
            slice(max(int(u.min() - m), 0), int(u.max() + m) + 1))


def moving_fraction(depth: np.ndarray, frames: range, box: tuple[slice, slice]) -> float:
    """Mean fraction of valid pixels in ``box`` whose depth jumps from frame i-1 to i."""
    out = []
    for i in frames:
        a, b = depth[i - 1][box].astype(int), depth[i][box].astype(int)
        ok = (a > 0) & (b > 0)
        out.append((np.abs(a - b)[ok] > MOVING_MM).mean())
    return float(np.mean(out))


def mean_abs_difference(images: np.ndarray, frames: range, box: tuple[slice, slice],
                        skip_zeros: bool = False) -> float:
    """Mean absolute change from frame i-1 to i in ``box`` (optionally ignoring depth holes)."""
    out = []
    for i in frames:
        a, b = images[i - 1][box].astype(int), images[i][box].astype(int)
        ok = (a > 0) & (b > 0) if skip_zeros else np.ones(a.shape, dtype=bool)
        out.append(np.abs(a - b)[ok].mean())
    return float(np.mean(out))


@pytest.fixture(scope="module", params=[("tiny", 0), ("tiny", 1), ("tiny", 2), ("tiny", 3),
                                        ("small", 4), ("small", 5)],
                ids=lambda p: f"{p[0]}-patient{p[1]}")
def rendered(request):
    size, index = request.param
    patient = make_cohort_profiles(6, seed=1)[index]
    rec = make_recording(patient, 0, seconds=4.0, size=size, seed=1)
    depth = np.stack([rec.render_frame(i, ("depth",))["depth"] for i in range(rec.num_frames)])
    return rec, depth


def test_each_region_moves_during_its_moi_and_not_before_onset(rendered):
    rec, depth = rendered
    onset = rec.script.seizure.onset_frame
    baseline = range(1, onset)
    for moi in rec.script.mois:
        box = region_box(rec, moi.region)
        during = moving_fraction(depth, range(moi.start_frame + 1, moi.end_frame), box)
        before = moving_fraction(depth, baseline, box)
        weak = moi.label == "oral automatism"  # a jaw moves a centimetre or two
        if weak and rec.size == "tiny":
            continue  # below one pixel at 64x53
        assert during > (0.0005 if weak else 0.005), (rec.name, moi, during)
        assert during > 10 * before, (rec.name, moi, during, before)


def test_the_body_is_still_after_the_seizure(rendered):
    rec, depth = rendered
    onset, offset = rec.script.seizure.onset_frame, rec.script.seizure.offset_frame
    box = region_box(rec, "whole body")
    seizure = moving_fraction(depth, range(onset + 1, offset), box)
    after = moving_fraction(depth, range(offset + 1, rec.num_frames), box)
    assert after < 0.02 * seizure


def test_hyperkinetic_movement_shows_in_every_stream():
    patient = next(p for p in make_cohort_profiles(4, seed=2) if p.syndrome == "frontal")
    rec = make_recording(patient, 0, seconds=3.0, size="tiny", seed=2)
    moi = next(m for m in rec.script.mois if m.label == "hyperkinetic movement")
    frames = {s: np.stack([f.data for f in rec.iter_frames(s)]) for s in ("rgb", "ir", "depth")}
    baseline = range(1, rec.script.seizure.onset_frame)
    during = range(moi.start_frame + 1, moi.end_frame)
    box = region_box(rec, "whole body")
    for name in ("ir", "depth"):
        skip = name == "depth"
        ratio = (mean_abs_difference(frames[name], during, box, skip)
                 / mean_abs_difference(frames[name], baseline, box, skip))
        assert ratio > {"ir": 1.8, "depth": 4.0}[name], (name, ratio)  # IR is the noisier
    rgb_box = (slice(None), slice(None))
    ratio = (mean_abs_difference(frames["rgb"], during, rgb_box)
             / mean_abs_difference(frames["rgb"], baseline, rgb_box))
    assert ratio > 2.0, ratio
