"""Agreement between two annotators of one recording, per body region.

Two measures, one row per region:

* **Frame-level Cohen's kappa** of *presence*: every frame of the recording is "marked" or
  "not marked" for the region by each annotator (any MOI label of that region counts;
  ``by="label"`` instead compares each label separately). Kappa is undefined (NaN, with a
  ``note``) when both annotators give every frame the same value, e.g. neither marked the
  region at all.
* **Interval-overlap F1**: MOIs of A and B are matched one-to-one when their labels are equal
  and their intersection over union (IoU, in frames) is at least ``iou_threshold``; the
  matching has the largest possible number of pairs. ``F1 = 2 * matched / (n_a + n_b)``;
  precision is ``matched / n_b`` and recall ``matched / n_a`` (A taken as the reference).

Intervals are half-open frame ranges, ``start_frame <= i < end_frame``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd

from deepepil.errors import ValidationError

__all__ = ["agreement", "cohen_kappa", "interval_iou", "match_intervals", "AGREEMENT_COLUMNS"]

AGREEMENT_COLUMNS: tuple[str, ...] = (
    "region", "label", "num_frames", "frames_a", "frames_b", "frames_both", "observed_agreement",
    "expected_agreement", "kappa", "n_a", "n_b", "matched", "precision", "recall", "f1", "note",
)
_NEEDED = ("author", "region", "label", "start_frame", "end_frame")


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Cohen's kappa of two boolean sequences: ``(kappa, observed, expected)``; kappa NaN when expected is 1."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two non-empty 1-d sequences of equal length, got {a.shape} and {b.shape}")
    observed = float(np.mean(a == b))
    pa, pb = float(a.mean()), float(b.mean())
    expected = pa * pb + (1 - pa) * (1 - pb)
    if math.isclose(expected, 1.0):
        return math.nan, observed, expected
    return (observed - expected) / (1 - expected), observed, expected


def interval_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Intersection over union of two half-open frame intervals."""
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def match_intervals(a: Sequence[tuple[int, int, str]], b: Sequence[tuple[int, int, str]],
                    iou_threshold: float) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(index_a, index_b, iou)`` of intervals ``(start, end, label)``.

    Pairs qualify when labels are equal and IoU >= ``iou_threshold`` (and > 0); the result has
    the largest number of pairs (augmenting paths, trying higher IoU first).
    """
    candidates: dict[int, list[tuple[float, int]]] = {}
    for i, (s1, e1, l1) in enumerate(a):
        for j, (s2, e2, l2) in enumerate(b):
            if l1 != l2:
                continue
            iou = interval_iou((s1, e1), (s2, e2))
            if iou > 0 and iou >= iou_threshold:
                candidates.setdefault(i, []).append((iou, j))
    for options in candidates.values():
        options.sort(key=lambda t: (-t[0], t[1]))
    owner: dict[int, int] = {}  # index in b -> index in a

    def augment(i: int, seen: set[int]) -> bool:
        for _iou, j in candidates.get(i, []):
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    best_first = sorted(candidates, key=lambda i: (-candidates[i][0][0], i))
    for i in best_first:
        augment(i, set())
    return sorted((i, j, interval_iou(a[i][:2], b[j][:2])) for j, i in owner.items())


def _coverage(intervals: Sequence[tuple[int, int]], num_frames: int) -> np.ndarray:
    marks = np.zeros(num_frames + 1, dtype=np.int64)
    for start, end in intervals:
        start, end = max(0, int(start)), min(num_frames, int(end))
        if end > start:
            marks[start] += 1
            marks[end] -= 1
    return np.cumsum(marks[:-1]) > 0


def _labels_frame(store_or_df: Any, recording_id: int, annotators: list[str],
                  num_frames: Optional[int]) -> tuple[pd.DataFrame, int]:
    if isinstance(store_or_df, pd.DataFrame):
        df = store_or_df
        missing = [c for c in _NEEDED if c not in df.columns]
        if missing:
            raise ValidationError(f"the DataFrame lacks column(s) {missing}; it needs {', '.join(_NEEDED)} "
                                  f"(as store.mois() returns)")
        if "recording_id" in df.columns:
            df = df[df["recording_id"] == recording_id]
        if "deleted" in df.columns:
            df = df[~df["deleted"].astype(bool)]
        if num_frames is None:
            raise ValidationError("with a DataFrame, pass num_frames= (the recording's frame count): kappa counts "
                                  "the frames nobody marked too")
    else:
        df = store_or_df.mois(recording_id, author=annotators)
        if num_frames is None:
            num_frames = store_or_df.recording(recording_id).num_frames
    if int(num_frames) <= 0:
        raise ValidationError(f"num_frames must be positive, got {num_frames}")
    return df[df["author"].isin(annotators)], int(num_frames)


def agreement(store_or_df: Any, recording_id: int, annotator_a: str, annotator_b: str, *,
              iou_threshold: float = 0.5, by: Literal["region", "label"] = "region",
              regions: Optional[Sequence[str]] = None, num_frames: Optional[int] = None) -> pd.DataFrame:
    """Agreement of two annotators on one recording, one row per region (or per region and label).

    Parameters
    ----------
    store_or_df : LabelStore or DataFrame
        Where the MOIs come from: a store (its live MOIs), or a DataFrame like ``store.mois()``
        (then ``num_frames`` is required).
    recording_id : int
        The recording.
    annotator_a, annotator_b : str
        User names (the ``author`` of the MOIs); A is the reference for precision and recall.
    iou_threshold : float
        Minimum IoU, in (0, 1], for two intervals to match.
    by : {"region", "label"}
        Kappa on region presence (any label; default), or per (region, label).
    regions : sequence of str, optional
        Regions to report; default the vocabulary's regions, then any other region used.
    num_frames : int, optional
        Frame count of the recording (read from the store when not given).

    Returns
    -------
    DataFrame
        Columns :data:`AGREEMENT_COLUMNS` (``label`` is None with ``by="region"``); ``note`` says why a
        value is NaN.
    """
    from deepepil.labels.vocabulary import REGIONS

    if by not in ("region", "label"):
        raise ValidationError(f"by must be 'region' or 'label', got {by!r}")
    if not (isinstance(iou_threshold, (int, float)) and 0 < iou_threshold <= 1):
        raise ValidationError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    df, n = _labels_frame(store_or_df, recording_id, [annotator_a, annotator_b], num_frames)
    used = list(dict.fromkeys(df["region"]))
    wanted = list(regions) if regions is not None else [*REGIONS, *sorted(r for r in used if r not in REGIONS)]
    if by == "region":
        keys: list[tuple[str, Optional[str]]] = [(region, None) for region in wanted]
    else:
        pairs = df[["region", "label"]].drop_duplicates()
        keys = sorted((r, lab) for r, lab in pairs.itertuples(index=False) if r in wanted)
    rows = []
    for region, label in keys:
        part = df[df["region"] == region]
        if label is not None:
            part = part[part["label"] == label]
        side = {who: part[part["author"] == who] for who in (annotator_a, annotator_b)}
        ivals = {who: list(zip(s["start_frame"].astype(int), s["end_frame"].astype(int), s["label"]))
                 for who, s in side.items()}
        rows.append(_row(region, label, n, ivals[annotator_a], ivals[annotator_b], iou_threshold,
                         annotator_a, annotator_b))
    out = pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
    return out


def _row(region: str, label: Optional[str], n: int, a: list, b: list, iou_threshold: float,
         name_a: str, name_b: str) -> dict[str, Any]:
    cover_a = _coverage([(s, e) for s, e, _ in a], n)
    cover_b = _coverage([(s, e) for s, e, _ in b], n)
    kappa, observed, expected = cohen_kappa(cover_a, cover_b)
    notes = []
    if not a and not b:
        notes.append("neither annotator marked this: kappa and F1 undefined")
    elif math.isnan(kappa):
        notes.append("both annotators marked every frame: kappa undefined")
    elif not a or not b:
        notes.append(f"only {name_b if not a else name_a} marked this")
    matched = len(match_intervals(a, b, iou_threshold))
    n_a, n_b = len(a), len(b)
    return {
        "region": region, "label": label, "num_frames": n, "frames_a": int(cover_a.sum()),
        "frames_b": int(cover_b.sum()), "frames_both": int((cover_a & cover_b).sum()),
        "observed_agreement": observed, "expected_agreement": expected, "kappa": kappa,
        "n_a": n_a, "n_b": n_b, "matched": matched,
        "precision": matched / n_b if n_b else math.nan, "recall": matched / n_a if n_a else math.nan,
        "f1": 2 * matched / (n_a + n_b) if n_a + n_b else math.nan, "note": "; ".join(notes),
    }
