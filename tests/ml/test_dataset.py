"""ClipDataset on a tiny labelled synthetic cohort: shapes, targets, crops, augmentation, workers, bad input."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

import deepepil
from deepepil.errors import ValidationError
from deepepil.labels import catalog, connect
from deepepil.ml import Augment, ClipDataset, recording_table, seizure_table
from deepepil.ml.clips import clip_frame_indices
from deepepil.errors import ClipTooLongError, EmptyLabelsError, MissingStreamError, SingleClassError
from deepepil.ml.transforms import patient_box

ADMIN = "root"  # tests/ml/conftest.py: the cohort's admin (cohort.admin)
SMALL = dict(clip_frames=8, fps=15.0, size=(32, 32))


@pytest.fixture(scope="module")
def syndrome_ds(cohort):
    return ClipDataset.from_database(cohort.snapshot, cohort.url, user=ADMIN, target="syndrome",
                                     streams=("ir", "depth"), **SMALL)


def test_tables_from_the_label_database(cohort):
    recs = recording_table(cohort.snapshot, cohort.url, user=ADMIN)
    assert sorted(recs["name"]) == sorted(cohort.truth)
    by_name = recs.set_index("name")
    for name, truth in cohort.truth.items():
        # the patient's class: no epilepsy type recorded, so the seizures' localization
        assert by_name.loc[name, "syndrome"] == truth["seizure"]["localization"]
        assert by_name.loc[name, "patient_code"] == truth["patient_code"]
    seizures = seizure_table(cohort.snapshot, cohort.url, user=ADMIN)
    assert len(seizures) == len(cohort.truth) and seizures["offset_frame"].notna().all()


def test_syndrome_clips_shapes_classes_and_patients(cohort, syndrome_ds):
    ds = syndrome_ds
    assert ds.classes == ["FLE", "TLE"] and ds.channels == ("ir", "depth") and ds.in_channels == 2
    assert ds.snapshot_hash == cohort.snapshot.content_hash
    clip, target = ds[0]
    assert clip.shape == (2, 8, 32, 32) and clip.dtype == torch.float32 and target.dtype == torch.int64
    assert torch.isfinite(clip).all()
    # every clip lies inside its recording's seizure and carries its patient's class
    for row in ds.index.itertuples():
        truth = cohort.truth[row.recording]
        seizure = truth["seizure"]
        assert row.patient_code == truth["patient_code"]
        assert ds.classes[row.target_index] == seizure["localization"]
        assert row.end_frame - row.start_frame == 15  # 8 frames at 15 fps from 30 fps
        overlap = min(row.end_frame, seizure["offset_frame"]) - max(row.start_frame, seizure["onset_frame"])
        assert overlap > 0
    assert ds.class_counts()["patients"].tolist() == [2, 2]
    assert set(ds.patient_codes) == {t["patient_code"] for t in cohort.truth.values()}


def test_clip_frames_are_the_recordings_frames_subsampled(syndrome_ds):
    ds = syndrome_ds
    row = ds.index.iloc[3]
    raw = ds.read_raw(3)
    frames = clip_frame_indices(row.start_frame, 8, row.frame_step)
    assert frames.tolist() == list(range(row.start_frame, row.start_frame + 16, 2))
    rec = deepepil.open_recording(row.storage_uri)
    np.testing.assert_array_equal(raw["ir"], rec["ir"].isel(time=frames).values)
    np.testing.assert_array_equal(raw["depth"], rec["depth"].isel(time=frames).values)


def test_rgb_channels_and_moi_targets(cohort):
    ds = ClipDataset.from_database(cohort.snapshot, cohort.url, user=ADMIN, target="moi:left upper limb",
                                   streams=("rgb", "ir"), window="recording", **SMALL)
    assert ds.channels == ("rgb.r", "rgb.g", "rgb.b", "ir")
    assert "none" in ds.classes and len(ds.classes) >= 2
    clip, _ = ds[len(ds) // 2]
    assert clip.shape == (4, 8, 32, 32)
    rgb_only = ClipDataset.from_database(cohort.snapshot, cohort.url, user=ADMIN, streams="rgb", **SMALL)
    assert rgb_only[0][0].shape == (3, 8, 32, 32)  # the patient is still found in depth
    labelled = ds.index[ds.index["target"] != "none"]
    truth_labels = {m["label"] for t in cohort.truth.values() for m in t["mois"] if m["region"] == "left upper limb"}
    assert set(labelled["target"]) == truth_labels


def test_normalization_uses_the_stores_display_ranges_and_measured_stats(syndrome_ds):
    ds = syndrome_ds.subset(range(len(syndrome_ds)), stats={"ir": (0.0, 1.0), "depth": (0.0, 1.0)})
    clip, _ = ds[0]
    assert clip.min() >= 0.0 and clip.max() <= 1.0  # mapped to [0, 1] before standardizing
    assert clip[1].max() > 0.5 and (clip[1] == 0).any()  # depth: near is bright, outside the range 0
    stats = syndrome_ds.measure_stats(max_clips=6)
    assert set(stats) == {"ir", "depth"} and all(s > 0 for _, s in stats.values())
    standard = syndrome_ds.subset(range(len(syndrome_ds)), stats=stats)
    picks = np.unique(np.linspace(0, len(standard) - 1, 6).round().astype(int))
    values = torch.stack([standard[int(i)][0] for i in picks])
    assert values[:, 0].mean().abs() < 0.05 and (values[:, 0].std() - 1).abs() < 0.05
    with pytest.raises(ValidationError, match="unknown channels"):
        syndrome_ds.subset([0], stats={"rgb.r": (0.5, 0.2)})


def test_depth_crop_finds_the_patient(syndrome_ds, cohort):
    ds = syndrome_ds
    raw = ds.read_raw(0)
    box = patient_box(raw["depth"])
    bed = patient_box(raw["depth"], target="bed")
    h, w = raw["depth"].shape[1:]
    assert box is not None and bed is not None
    assert bed.y0 <= box.y0 and box.y1 <= bed.y1 and bed.x0 <= box.x0 and box.x1 <= bed.x1
    assert box.height * box.width < 0.8 * h * w  # tighter than the frame
    whole = ClipDataset.from_database(cohort.snapshot, cohort.url, user=ADMIN, streams=("ir", "depth"), crop=None,
                                      **SMALL)
    assert whole[0][0].shape == ds[0][0].shape and not torch.equal(whole[0][0], ds[0][0])


def synthetic_depth(tilt_mm_per_px=0.0):
    """Floor at 2200 mm, a bed (rows 20..80, cols 10..150) at 1600, a patient (rows 40..60, cols 30..120) at 1450."""
    d = np.full((100, 160), 2200, np.uint16)
    ys, xs = np.mgrid[0:100, 0:160]
    bed = (ys >= 20) & (ys < 80) & (xs >= 10) & (xs < 150)
    d[bed] = (1600 + tilt_mm_per_px * xs[bed]).astype(np.uint16)
    patient = (ys >= 40) & (ys < 60) & (xs >= 30) & (xs < 120)
    d[patient] = (1450 + tilt_mm_per_px * xs[patient]).astype(np.uint16)
    d[5, 5] = 0  # a hole
    return d


@pytest.mark.parametrize("tilt", [0.0, 2.0])
def test_patient_box_on_a_known_scene(tilt):
    box = patient_box(synthetic_depth(tilt))
    assert (box.y0, box.y1, box.x0, box.x1) == pytest.approx((40, 60, 30, 120), abs=2)
    bed = patient_box(synthetic_depth(tilt), target="bed")
    assert (bed.y0, bed.y1, bed.x0, bed.x1) == pytest.approx((20, 80, 10, 150), abs=2)
    assert patient_box(np.full((50, 50), 1600, np.uint16)) is None  # nothing nearer than the rest: no bed


def test_flip_swaps_the_target_and_mirrors_the_pixels(cohort):
    plain = ClipDataset.from_database(cohort.snapshot, cohort.url, user=ADMIN, target="moi:left upper limb",
                                      streams=("ir",), window="recording", **SMALL)
    i = int(np.flatnonzero(plain.index["mirrored_target"] != plain.index["target"])[0])
    flip = Augment(flip_p=1.0, crop_scale=(1.0, 1.0), brightness=0.0, contrast=0.0, temporal_jitter_frames=0)
    flipped = plain.subset(range(len(plain)), augment=flip)
    clip, target = flipped[i]
    assert int(target) == plain.index.loc[i, "mirrored_index"] != plain.index.loc[i, "target_index"]
    torch.testing.assert_close(clip, plain[i][0].flip(-1))


def test_random_augmentation_changes_clips_but_not_their_shape(syndrome_ds):
    torch.manual_seed(0)
    aug = syndrome_ds.subset(range(len(syndrome_ds)), augment=Augment(flip_p=0.0))
    a, b = aug[2][0], aug[2][0]
    assert a.shape == b.shape == syndrome_ds[2][0].shape and not torch.equal(a, b)
    with pytest.raises(ValidationError, match="flip_p"):
        Augment(flip_p=2.0)


def test_safe_with_two_dataloader_workers(syndrome_ds):
    ds = syndrome_ds.subset(range(min(6, len(syndrome_ds))))
    expected = torch.stack([ds[i][0] for i in range(len(ds))])  # the parent has readers open now
    state = pickle.loads(pickle.dumps(ds)).__dict__
    assert state["_state"] is None  # no reader (no open store) travels to a worker
    for context in (None, "spawn"):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context=context)
        clips = torch.cat([x for x, _ in loader])
        torch.testing.assert_close(clips, expected)


def test_bad_input_fails_before_training(cohort):
    snap, url = cohort.snapshot, cohort.url
    recs = recording_table(snap, url, user=ADMIN)
    with pytest.raises(EmptyLabelsError, match="no MOIs"):
        ClipDataset(snap.mois.iloc[:0], recs)
    with pytest.raises(ValidationError, match="streams must be distinct names from ir, depth, rgb"):
        ClipDataset(snap, recs, streams=("thermal",))
    with pytest.raises(ValidationError, match="unknown target 'seizure'"):
        ClipDataset(snap, recs, target="seizure")
    with pytest.raises(ValidationError, match="unknown region 'tail'"):
        ClipDataset(snap, recs, target="moi:tail")
    with pytest.raises(ClipTooLongError, match="has 120 frames"):
        ClipDataset(snap, recs, clip_frames=100, fps=15.0)
    with pytest.raises(ValidationError, match="not in recordings"):
        ClipDataset(snap, recs.iloc[:1])
    frontal = [cohort.recording_ids[n] for n, s in cohort.syndromes.items() if s == "FLE"]
    with connect(url, user=ADMIN) as store:
        one_class = store.create_snapshot("frontal only", recording_ids=frontal)
    with pytest.raises(SingleClassError, match="class 'FLE'"):
        ClipDataset.from_database(one_class, url, user=ADMIN)
    no_class = recs.assign(syndrome=None)
    with pytest.raises(ValidationError, match="needs a class for every recording"):
        ClipDataset(snap, no_class)
    # a class per recording given directly
    ds = ClipDataset(snap, no_class, class_of=cohort.syndromes, **SMALL)
    assert ds.classes == ["FLE", "TLE"]


def test_a_recording_without_the_stream_is_refused(cohort, tmp_path):
    from deepepil.recordings.ingest import ingest
    from deepepil.synthetic import make_cohort_profiles, make_recording

    profile = make_cohort_profiles(5, seed=0)[4]
    path = ingest(make_recording(profile, 0, seconds=2.0, size="tiny", seed=0), tmp_path, streams=["ir"],
                  progress=False)
    rid = catalog.register_recording(path, cohort.clinic, profile.code, url=cohort.url, user=cohort.admin)
    with connect(cohort.url, user=ADMIN) as store:
        store.add_moi(rid, "trunk", "clonic", 10, 30)
        snap = store.create_snapshot("ir only", recording_ids=[rid])
    recs = recording_table(snap, cohort.url, user=ADMIN)
    with pytest.raises(MissingStreamError, match="has no depth stream; it has ir") as err:
        ClipDataset(snap, recs, streams=("ir", "depth"), class_of={path.stem: "FLE"})
    assert isinstance(err.value, ValidationError)
    with pytest.raises(MissingStreamError, match="pass crop=None"):
        ClipDataset(snap, recs, streams=("ir",), class_of={path.stem: "FLE"})
    ds = ClipDataset(snap, recs, target="moi:trunk", streams=("ir",), crop=None, window="recording", **SMALL)
    assert ds.classes == ["clonic", "none"] and ds[0][0].shape == (1, 8, 32, 32)  # whole frames need no depth


def test_fingerprint_and_config_identify_the_data(syndrome_ds, cohort):
    again = ClipDataset.from_database(cohort.snapshot, cohort.url, user=ADMIN, target="syndrome",
                                      streams=("ir", "depth"), **SMALL)
    assert again.fingerprint == syndrome_ds.fingerprint
    assert syndrome_ds.subset([0, 1]).fingerprint != syndrome_ds.fingerprint
    config = syndrome_ds.config()
    assert config["snapshot_hash"] == cohort.snapshot.content_hash and config["classes"] == ["FLE", "TLE"]
    assert json.loads(json.dumps(config)) == config  # JSON as it is (for run tracking)


def test_motion_channels_are_the_frame_differences(cohort, syndrome_ds):
    # motion=True: one more channel per image channel, each frame minus the one before
    moving = ClipDataset.from_database(cohort.snapshot, cohort.url, user=ADMIN, target="syndrome",
                                       streams=("ir", "depth"), motion=True,
                                       stats={c: (0.0, 1.0) for c in ("ir", "depth", "ir_motion", "depth_motion")},
                                       **SMALL)
    still = syndrome_ds.subset(np.arange(len(syndrome_ds)), stats={"ir": (0.0, 1.0), "depth": (0.0, 1.0)})
    assert moving.channels == ("ir", "depth", "ir_motion", "depth_motion") and moving.in_channels == 4
    clip, target = moving[3]
    plain, same_target = still[3]
    assert clip.shape == (4, 8, 32, 32) and int(target) == int(same_target)
    torch.testing.assert_close(clip[:2], plain)
    torch.testing.assert_close(clip[2:, 1:], plain[:, 1:] - plain[:, :-1])
    torch.testing.assert_close(clip[2:, 0], clip[2:, 1])
    assert clip[2:].abs().sum() > 0  # a seizure clip moves
    assert moving.config()["motion"] is True and moving.fingerprint != still.fingerprint
