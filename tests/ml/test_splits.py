"""Patient-grouped splits: no patient in both training and test, every patient tested once."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from deepepil.errors import ValidationError
from deepepil.ml import ClipDataset, grouped_kfold, leave_one_patient_out
from deepepil.ml.splits import Split, check_split


def cohort_codes(patients=12, seed=0):
    """Clip patient codes and labels: patients of two classes with 3 to 9 clips each."""
    rng = np.random.default_rng(seed)
    codes, labels = [], []
    for p in range(patients):
        n = int(rng.integers(3, 10))
        codes += [f"P-{p:03d}"] * n
        labels += [p % 2] * n
    order = rng.permutation(len(codes))  # clips of a patient need not be contiguous
    return np.array(codes)[order], np.array(labels)[order]


def assert_patient_disjoint_and_complete(splits, codes):
    tested = Counter()
    for split in splits:
        train, test = set(codes[split.train]), set(codes[split.test])
        assert not train & test, f"{split.name}: patients in both parts"
        assert len(split.train) + len(split.test) == len(codes)
        assert set(split.test_patients) == test and set(split.train_patients) == train
        check_split(split, codes)
        tested.update(test)
    assert tested == Counter({p: 1 for p in set(codes)})  # each patient tested exactly once


def test_leave_one_patient_out():
    codes, _ = cohort_codes()
    splits = leave_one_patient_out(codes)
    assert len(splits) == 12 and all(len(s.test_patients) == 1 for s in splits)
    assert_patient_disjoint_and_complete(splits, codes)


@pytest.mark.parametrize("n_splits", [2, 3, 5])
def test_grouped_kfold_balances_classes_and_sizes(n_splits):
    codes, labels = cohort_codes()
    splits = grouped_kfold(codes, n_splits, labels=labels, seed=1)
    assert len(splits) == n_splits
    assert_patient_disjoint_and_complete(splits, codes)
    for split in splits:  # 6 patients per class: each fold tests both classes
        assert set(labels[split.test]) == {0, 1}
    sizes = [len(s.test_patients) for s in splits]
    assert max(sizes) - min(sizes) <= 1
    assert grouped_kfold(codes, n_splits, labels=labels, seed=1)[0].test_patients == splits[0].test_patients


def test_splits_of_a_clip_dataset(cohort):
    ds = ClipDataset.from_database(cohort.snapshot, cohort.url, user=cohort.admin, clip_frames=8, size=(32, 32))
    codes = ds.patient_codes
    assert_patient_disjoint_and_complete(leave_one_patient_out(ds), codes)
    folds = grouped_kfold(ds, 2)
    assert_patient_disjoint_and_complete(folds, codes)
    for fold in folds:  # two FLE and two TLE patients: one of each in every test part
        assert sorted(ds.index["target"].iloc[fold.test].unique()) == ["FLE", "TLE"]
        train = ds.subset(fold.train)
        assert set(train.patient_codes).isdisjoint(fold.test_patients) and train.classes == ds.classes
    assert_patient_disjoint_and_complete(leave_one_patient_out(ds.index), codes)


def test_bad_split_requests():
    with pytest.raises(ValidationError, match="at least 2 patients, the data has 1"):
        leave_one_patient_out(["P-1", "P-1"])
    codes, _ = cohort_codes(patients=4)
    with pytest.raises(ValidationError, match=r"n_splits must be from 2 to the number of patients \(4\)"):
        grouped_kfold(codes, 5)
    with pytest.raises(ValidationError, match="labels has 2 entries"):
        grouped_kfold(codes, 2, labels=[0, 1])
    leaky = Split("leaky", np.array([0, 1]), np.array([2]), ("a",), ("a",))
    with pytest.raises(ValidationError, match="patients in both training and test: a"):
        check_split(leaky, ["a", "b", "a"])
