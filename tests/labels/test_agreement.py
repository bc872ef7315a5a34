"""Agreement between two annotators: frame-level Cohen's kappa and interval-overlap F1 per region."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deepepil.errors import ValidationError
from deepepil.labels.agreement import AGREEMENT_COLUMNS, agreement, cohen_kappa, match_intervals
from deepepil.labels.vocabulary import REGIONS


def labels(*rows: tuple) -> pd.DataFrame:
    """MOIs as (author, region, label, start_frame, end_frame)."""
    return pd.DataFrame(rows, columns=["author", "region", "label", "start_frame", "end_frame"])


def by_region(table: pd.DataFrame) -> dict[str, dict]:
    return {row["region"]: row for row in table.to_dict("records")}


def test_hand_computed_example():
    # 10 frames; A marks [0, 4), B marks [2, 6):
    #   A 1111000000 / B 0011110000 -> observed 6/10, p_a = p_b = 0.4,
    #   expected 0.4*0.4 + 0.6*0.6 = 0.52, kappa = (0.6 - 0.52) / 0.48 = 1/6; IoU = 2/6
    df = labels(("a", "trunk", "clonic", 0, 4), ("b", "trunk", "clonic", 2, 6))
    row = by_region(agreement(df, 1, "a", "b", num_frames=10))["trunk"]
    assert row["kappa"] == pytest.approx(1 / 6)
    assert row["observed_agreement"] == pytest.approx(0.6) and row["expected_agreement"] == pytest.approx(0.52)
    assert (row["frames_a"], row["frames_b"], row["frames_both"]) == (4, 4, 2)
    assert (row["n_a"], row["n_b"], row["matched"], row["f1"]) == (1, 1, 0, 0.0)  # IoU 1/3 < 0.5
    loose = by_region(agreement(df, 1, "a", "b", num_frames=10, iou_threshold=0.3))["trunk"]
    assert (loose["matched"], loose["f1"], loose["precision"], loose["recall"]) == (1, 1.0, 1.0, 1.0)


def test_perfect_agreement_and_disagreement():
    same = labels(("a", "trunk", "clonic", 10, 20), ("b", "trunk", "clonic", 10, 20))
    row = by_region(agreement(same, 1, "a", "b", num_frames=100))["trunk"]
    assert row["kappa"] == 1.0 and row["f1"] == 1.0 and row["note"] == ""
    apart = labels(("a", "trunk", "clonic", 0, 50), ("b", "trunk", "clonic", 50, 100))
    row = by_region(agreement(apart, 1, "a", "b", num_frames=100))["trunk"]
    assert row["kappa"] == -1.0 and row["f1"] == 0.0


def test_degenerate_regions_give_nan_with_a_note_not_a_crash():
    df = labels(("a", "trunk", "clonic", 0, 10), ("b", "whole body", "tonic-clonic phase", 0, 100),
                ("a", "whole body", "tonic-clonic phase", 0, 100))
    table = agreement(df, 1, "a", "b", num_frames=100)
    assert list(table.columns) == list(AGREEMENT_COLUMNS)
    assert table["region"].tolist() == list(REGIONS)  # every region, marked or not
    rows = by_region(table)
    nobody = rows["head/face"]
    assert math.isnan(nobody["kappa"]) and math.isnan(nobody["f1"]) and "neither annotator" in nobody["note"]
    everything = rows["whole body"]
    assert math.isnan(everything["kappa"]) and "every frame" in everything["note"] and everything["f1"] == 1.0
    one_sided = rows["trunk"]
    assert one_sided["kappa"] == 0.0 and one_sided["f1"] == 0.0 and one_sided["note"] == "only a marked this"
    assert math.isnan(one_sided["precision"]) and one_sided["recall"] == 0.0


def test_kappa_is_on_region_presence_but_f1_needs_equal_labels():
    df = labels(("a", "trunk", "clonic", 0, 50), ("b", "trunk", "tonic posturing", 0, 50))
    row = by_region(agreement(df, 1, "a", "b", num_frames=100))["trunk"]
    assert row["kappa"] == 1.0 and row["matched"] == 0 and row["f1"] == 0.0
    per_label = agreement(df, 1, "a", "b", num_frames=100, by="label")
    assert [(r, lab) for r, lab in zip(per_label["region"], per_label["label"])] == [
        ("trunk", "clonic"), ("trunk", "tonic posturing")]
    assert per_label["kappa"].tolist() == [0.0, 0.0]


def test_matching_is_one_to_one_and_maximal():
    # one long interval of A against two halves of B: one match at most
    long_vs_pieces = labels(("a", "trunk", "clonic", 0, 100), ("b", "trunk", "clonic", 0, 60),
                            ("b", "trunk", "clonic", 60, 100))
    row = by_region(agreement(long_vs_pieces, 1, "a", "b", num_frames=100, iou_threshold=0.3))["trunk"]
    assert (row["n_a"], row["n_b"], row["matched"]) == (1, 2, 1)
    assert row["f1"] == pytest.approx(2 / 3) and row["precision"] == 0.5 and row["recall"] == 1.0
    # greedy by IoU would pair (a1, b0) = 0.92 first and leave a0 unmatched; the maximal matching pairs both
    a = [(0, 10, "x"), (0, 12, "x")]
    b = [(0, 11, "x"), (5, 12, "x")]
    pairs = match_intervals(a, b, iou_threshold=0.5)
    assert len(pairs) == 2 and sorted(j for _, j, _ in pairs) == [0, 1]


def test_other_recordings_deleted_rows_and_other_annotators_are_ignored():
    df = labels(("a", "trunk", "clonic", 0, 10), ("b", "trunk", "clonic", 0, 10), ("c", "trunk", "clonic", 50, 90),
                ("b", "trunk", "clonic", 40, 60), ("a", "trunk", "clonic", 70, 80))
    df["recording_id"] = [1, 1, 1, 2, 1]
    df["deleted"] = [False, False, False, False, True]
    row = by_region(agreement(df, 1, "a", "b", num_frames=100))["trunk"]
    assert row["kappa"] == 1.0 and (row["n_a"], row["n_b"]) == (1, 1)


def test_bad_arguments():
    df = labels(("a", "trunk", "clonic", 0, 10))
    with pytest.raises(ValidationError, match="pass num_frames"):
        agreement(df, 1, "a", "b")
    with pytest.raises(ValidationError, match="iou_threshold"):
        agreement(df, 1, "a", "b", num_frames=10, iou_threshold=0)
    with pytest.raises(ValidationError, match="lacks column"):
        agreement(df.drop(columns="label"), 1, "a", "b", num_frames=10)


def test_kappa_matches_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.random(200) < rng.random(), rng.random(200) < rng.random()
        kappa, _, _ = cohen_kappa(a, b)
        assert kappa == pytest.approx(sklearn_metrics.cohen_kappa_score(a, b))


def test_kappa_against_a_direct_count():
    # the 2x2 table by hand: kappa = 2 (ad - bc) / ((a+b)(b+d) + (a+c)(c+d))
    rng = np.random.default_rng(1)
    for _ in range(20):
        x, y = rng.random(300) < 0.3, rng.random(300) < 0.6
        a, b = np.sum(x & y), np.sum(x & ~y)
        c, d = np.sum(~x & y), np.sum(~x & ~y)
        expected = 2 * (a * d - b * c) / ((a + b) * (b + d) + (a + c) * (c + d))
        assert cohen_kappa(x, y)[0] == pytest.approx(expected)


def test_agreement_from_the_store(label_db, open_store):
    ann, bea = open_store("ann"), open_store("bea")
    ann.add_moi(label_db.rec, "head/face", "head version", 0, 4, "left")
    bea.add_moi(label_db.rec, "head/face", "head version", 2, 6, "left")
    ann.add_moi(label_db.rec, "trunk", "tonic posturing", 100, 200)
    bea.add_moi(label_db.rec, "trunk", "tonic posturing", 110, 200)
    gone = bea.add_moi(label_db.rec, "trunk", "clonic", 0, 300)
    bea.delete_moi(gone.id, gone.version)
    table = ann.agreement(label_db.rec, "ann", "bea")
    rows = by_region(table)
    # 300 frames: A [0,4), B [2,6) -> observed 296/300, p = 4/300 each
    p = 4 / 300
    expected = p * p + (1 - p) ** 2
    assert rows["head/face"]["kappa"] == pytest.approx((296 / 300 - expected) / (1 - expected))
    assert rows["trunk"]["matched"] == 1 and rows["trunk"]["f1"] == 1.0  # IoU 0.9
    assert rows["trunk"]["num_frames"] == 300
    assert "neither annotator" in rows["left upper limb"]["note"]
