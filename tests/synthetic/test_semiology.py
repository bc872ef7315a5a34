"""Ground truth: valid MOIs and seizures, joints that move in the labelled regions only,
syndromes that differ in learnable ways."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepepil.synthetic.patient import make_cohort_profiles
from deepepil.synthetic.recording import make_recording
from deepepil.synthetic.vocabulary import (
    JOINT_NAMES,
    LATERALITIES,
    MOI_LABELS,
    REGION_JOINTS,
    REGIONS,
    SEIZURE_TYPES,
)

FPS = 30.0


@pytest.fixture(scope="module")
def cohort():
    """Two recordings each of eight patients (scripts only matter here; tiny images)."""
    profiles = make_cohort_profiles(8, seed=5)
    return [make_recording(p, k, seconds=10.0, size="tiny", seed=5)
            for p in profiles for k in range(2)]


def joint_speed_m_per_s(joints: np.ndarray) -> np.ndarray:
    """``(T-1, J)`` speed of each joint between consecutive frames."""
    return np.linalg.norm(np.diff(joints, axis=0), axis=2) * FPS


def region_index(region: str) -> list[int]:
    return [JOINT_NAMES.index(n) for n in REGION_JOINTS[region]]


def test_ground_truth_is_valid_and_json(cohort):
    for rec in cohort:
        truth = json.loads(json.dumps(rec.ground_truth))
        n = truth["num_frames"]
        assert n == rec.num_frames == 300
        assert truth["fps"] == FPS
        assert truth["patient_code"] == rec.patient.code
        assert truth["joint_names"] == list(JOINT_NAMES)
        joints = np.asarray(truth["joints_m"])
        assert joints.shape == (n, 14, 3)
        np.testing.assert_allclose(joints, rec.joints_m, atol=6e-5)
        assert truth["calibration"]["depth"]["width"] == 64
        seizure = truth["seizure"]
        assert seizure["type"] in SEIZURE_TYPES
        expected_localization = {"frontal": "FLE", "temporal": "TLE"}[rec.patient.syndrome]
        assert seizure["localization"] == expected_localization
        assert seizure["lateralization"] == rec.patient.lateralization
        assert 0 < seizure["onset_frame"] < seizure["offset_frame"] < n
        assert seizure["onset_seconds"] == pytest.approx(seizure["onset_frame"] / FPS)
        assert truth["mois"]
        for moi in truth["mois"]:
            assert set(moi) == {"region", "label", "laterality", "start_frame", "end_frame",
                                "start_seconds", "end_seconds"}
            assert moi["region"] in REGIONS
            assert moi["label"] in MOI_LABELS
            assert moi["laterality"] is None or moi["laterality"] in LATERALITIES
            assert 0 <= moi["start_frame"] < moi["end_frame"] < n
            assert moi["end_seconds"] == pytest.approx(moi["end_frame"] / FPS)
            assert seizure["onset_frame"] <= moi["start_frame"]
            assert moi["end_frame"] <= seizure["offset_frame"]
        assert seizure["onset_frame"] == min(m["start_frame"] for m in truth["mois"])
        assert seizure["offset_frame"] == max(m["end_frame"] for m in truth["mois"])


def test_syndrome_scripts_follow_their_semiology(cohort):
    for rec in cohort:
        p = rec.patient
        labels = {m.label: m for m in rec.script.mois}
        seizure = rec.script.seizure
        if p.syndrome == "frontal":
            assert seizure.type == "focal motor onset: hyperkinetic"
            assert labels["hyperkinetic movement"].region == "whole body"
            for m in rec.script.mois:
                if m.label in ("tonic posturing", "clonic", "head version"):
                    assert m.laterality == p.contralateral
        else:
            assert seizure.type == "focal impaired awareness: automatisms"
            assert labels["manual automatism"].region == f"{p.lateralization} upper limb"
            assert labels["dystonic posturing"].region == f"{p.contralateral} upper limb"
            version = labels["head version"]
            assert version.laterality == p.contralateral
            # version comes late: after the automatisms began
            assert version.start_frame > labels["manual automatism"].start_frame


def test_head_version_turns_towards_its_side(cohort):
    checked = 0
    for rec in cohort:
        for moi in rec.script.mois:
            if moi.label != "head version":
                continue
            j = rec.joints_m
            left_dir = (j[0, JOINT_NAMES.index("left_shoulder")]
                        - j[0, JOINT_NAMES.index("right_shoulder")])
            left_dir /= np.linalg.norm(left_dir)
            middle = (moi.start_frame + moi.end_frame) // 2
            shift = (j[middle, 0] - j[moi.start_frame, 0]) @ left_dir
            assert shift * (1 if moi.laterality == "left" else -1) > 0.02, (rec.name, shift)
            checked += 1
    assert checked >= 4


def test_joints_move_in_the_labelled_region_during_each_moi(cohort):
    for rec in cohort:
        speed = joint_speed_m_per_s(rec.joints_m)
        onset = rec.script.seizure.onset_frame
        for moi in rec.script.mois:
            idx = region_index(moi.region)
            during = speed[moi.start_frame:moi.end_frame - 1, idx].mean()
            before = speed[:onset - 1, idx].mean()
            assert during > 0.01, (rec.name, moi)
            assert during > 20 * before, (rec.name, moi, during, before)


def test_a_limb_moves_more_than_its_counterpart_during_its_moi(cohort):
    checked = 0
    for rec in cohort:
        speed = joint_speed_m_per_s(rec.joints_m)
        for moi in rec.script.mois:
            if not moi.region.endswith("upper limb"):
                continue
            other_side = "right" if moi.region.startswith("left") else "left"
            other = f"{other_side} upper limb"
            busy = np.zeros(rec.num_frames, dtype=bool)  # frames where the other arm is labelled
            for m in rec.script.mois:
                if m.region in (other, "whole body"):
                    busy[m.start_frame:m.end_frame] = True
            frames = [i for i in range(moi.start_frame, moi.end_frame - 1) if not busy[i]]
            if len(frames) < 5:
                continue
            mine = speed[frames][:, region_index(moi.region)[1:]].mean()  # elbow, wrist
            theirs = speed[frames][:, region_index(other)[1:]].mean()
            assert mine > 5 * theirs, (rec.name, moi, mine, theirs)
            checked += 1
    assert checked >= 6


def test_nothing_moves_outside_the_mois(cohort):
    for rec in cohort:
        speed = joint_speed_m_per_s(rec.joints_m)
        labelled = np.zeros(len(speed), dtype=bool)
        for m in rec.script.mois:
            labelled[max(m.start_frame - 1, 0):m.end_frame] = True
        assert speed[~labelled].max() < 0.01, rec.name


def test_syndromes_differ_learnably(cohort):
    """Onset time and amount of motion separate the classes across patients."""
    features = {"frontal": [], "temporal": []}
    for rec in cohort:
        seizure = rec.script.seizure
        speed = joint_speed_m_per_s(rec.joints_m)
        motion = speed[seizure.onset_frame:seizure.offset_frame - 1].mean()
        features[rec.patient.syndrome].append(
            (seizure.onset_frame / rec.num_frames,
             (seizure.offset_frame - seizure.onset_frame) / rec.num_frames, motion))
    fle, tle = np.array(features["frontal"]), np.array(features["temporal"])
    assert len(fle) == len(tle) == 8
    assert fle[:, 0].max() < tle[:, 0].min()  # frontal seizures start earlier
    assert fle[:, 1].max() < tle[:, 1].min()  # and are shorter
    assert fle[:, 2].min() > 3 * tle[:, 2].max()  # and move much more


def test_recordings_of_one_patient_differ_and_patients_differ(cohort):
    a, b = cohort[0], cohort[1]  # same patient, two recordings
    assert a.patient == b.patient
    assert a.script.seizure.onset_frame != b.script.seizure.onset_frame
    assert not np.allclose(a.joints_m, b.joints_m)
    resting_pelvis = [rec.joints_m[0, JOINT_NAMES.index("left_hip")] for rec in cohort[::2]]
    distances = [np.linalg.norm(p - q) for i, p in enumerate(resting_pelvis)
                 for q in resting_pelvis[i + 1:]]
    assert min(distances) > 0.005


def test_too_short_recording_is_refused():
    p = make_cohort_profiles(1, seed=0)[0]
    with pytest.raises(ValueError, match="at least 30 frames"):
        make_recording(p, 0, seconds=0.5)
