"""Patient-grouped splits: no patient is ever in both the training and the test part.

Clips of one patient look alike (same body, same bed, same seizure type), so a split by
clip would test on patients the model has seen. Both splitters group by patient code:

>>> for split in leave_one_patient_out(dataset):           # doctest: +SKIP
...     train, test = dataset.subset(split.train), dataset.subset(split.test)
>>> folds = grouped_kfold(dataset, n_splits=5, seed=0)     # classes balanced across folds
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from deepepil.errors import ValidationError

__all__ = ["Split", "leave_one_patient_out", "grouped_kfold", "check_split"]


@dataclasses.dataclass(frozen=True)
class Split:
    """One fold: clip positions for training and testing, and whose clips they are."""

    name: str
    train: np.ndarray
    test: np.ndarray
    train_patients: tuple[str, ...]
    test_patients: tuple[str, ...]

    def __repr__(self) -> str:
        return (f"Split({self.name!r}: train {len(self.train)} clips / {len(self.train_patients)} patients, "
                f"test {len(self.test)} clips / {len(self.test_patients)} patients)")


def _groups(data: Any) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Patient code per clip, and class per clip when the data carries it."""
    if hasattr(data, "patient_codes") and hasattr(data, "targets"):  # a ClipDataset
        return np.asarray(data.patient_codes, dtype=object), np.asarray(data.targets)
    if isinstance(data, pd.DataFrame):
        if "patient_code" not in data.columns:
            raise ValidationError("a DataFrame to split needs a patient_code column (e.g. ClipDataset.index)")
        labels = data["target_index"].to_numpy() if "target_index" in data.columns else None
        return data["patient_code"].to_numpy(dtype=object), labels
    return np.asarray(list(data), dtype=object), None


def _split(name: str, codes: np.ndarray, test_patients: Sequence[str]) -> Split:
    is_test = np.isin(codes, list(test_patients))
    train_patients = tuple(sorted(set(codes[~is_test])))
    return Split(name, np.flatnonzero(~is_test), np.flatnonzero(is_test), train_patients,
                 tuple(sorted(test_patients)))


def _check_patients(codes: np.ndarray, at_least: int, what: str) -> list[str]:
    if any(c is None or (isinstance(c, float) and np.isnan(c)) for c in codes):
        raise ValidationError("every clip needs a patient code to split by patient")
    patients = sorted(set(codes))
    if len(patients) < at_least:
        raise ValidationError(f"{what} needs at least {at_least} patients, the data has {len(patients)} "
                              f"({', '.join(map(str, patients))})")
    return patients


def leave_one_patient_out(data: Union[Any, pd.DataFrame, Sequence[str]]) -> list[Split]:
    """One split per patient: that patient's clips are the test part, everyone else's the training part.

    Parameters
    ----------
    data : ClipDataset, DataFrame with ``patient_code``, or the patient code of every clip
    """
    codes, _ = _groups(data)
    patients = _check_patients(codes, 2, "leave-one-patient-out")
    return [_split(str(p), codes, [p]) for p in patients]


def grouped_kfold(data: Union[Any, pd.DataFrame, Sequence[str]], n_splits: int = 5, *,
                  labels: Optional[Sequence[Any]] = None, seed: int = 0) -> list[Split]:
    """``n_splits`` folds of whole patients, each patient in exactly one test part.

    Patients are dealt to folds so that each fold gets a share of every class (the class
    of a patient is the most frequent class of its clips) and folds have similar numbers
    of clips; ``seed`` shuffles patients of equal size.

    Parameters
    ----------
    data : ClipDataset, DataFrame with ``patient_code``, or the patient code of every clip
    n_splits : int
        Number of folds, from 2 to the number of patients.
    labels : sequence, optional
        Class of every clip; default the dataset's targets when ``data`` is a ClipDataset.
    seed : int
        Seed of the shuffle.
    """
    codes, found = _groups(data)
    labels_arr = np.asarray(labels) if labels is not None else found
    if labels_arr is not None and len(labels_arr) != len(codes):
        raise ValidationError(f"labels has {len(labels_arr)} entries for {len(codes)} clips")
    patients = _check_patients(codes, 2, "grouped k-fold")
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) \
            or not 2 <= n_splits <= len(patients):
        raise ValidationError(f"n_splits must be from 2 to the number of patients ({len(patients)}), got "
                              f"{n_splits!r}; leave_one_patient_out is the largest split")
    sizes = Counter(codes.tolist())
    if labels_arr is not None:
        major = {p: Counter(labels_arr[codes == p].tolist()).most_common(1)[0][0] for p in patients}
    else:
        major = {p: 0 for p in patients}
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(patients)))
    ranked = sorted(zip(order, patients), key=lambda t: (str(major[t[1]]), -sizes[t[1]], t[0]))
    fold_clips = [0] * n_splits
    fold_class: list[Counter] = [Counter() for _ in range(n_splits)]
    members: list[list[str]] = [[] for _ in range(n_splits)]
    for _, p in ranked:
        k = min(range(n_splits), key=lambda f: (fold_class[f][major[p]], len(members[f]), fold_clips[f], f))
        members[k].append(p)
        fold_clips[k] += sizes[p]
        fold_class[k][major[p]] += 1
    return [_split(f"fold {k}", codes, members[k]) for k in range(n_splits)]


def check_split(split: Split, data: Union[Any, pd.DataFrame, Sequence[str]]) -> None:
    """Raise :class:`ValidationError` when a patient has clips in both parts of ``split``."""
    codes, _ = _groups(data)
    both = sorted(set(codes[split.train]) & set(codes[split.test]))
    if both:
        raise ValidationError(f"split {split.name!r} has patients in both training and test: {', '.join(both)}")
