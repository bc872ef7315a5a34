"""The clip index: where clips lie and what their targets are (tables only, no pixels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepepil.errors import ValidationError
from deepepil.ml.clips import (
    BACKGROUND, INDEX_COLUMNS, ClipSpec, build_clip_index, clip_frame_indices, mirror_name, parse_target,
)
from deepepil.errors import ClipTooLongError, EmptyLabelsError, SingleClassError


def moi(uri, region, label, start, end, laterality=None):
    return {"storage_uri": uri, "recording_name": uri, "region": region, "label": label,
            "laterality": laterality, "start_frame": start, "end_frame": end, "fps": 30.0}


def recordings(*rows):
    return pd.DataFrame([{"storage_uri": u, "name": u, "patient_code": p, "num_frames": n, "fps": 30.0,
                          "syndrome": s} for u, p, n, s in rows])


MOIS = pd.DataFrame([
    moi("a", "left upper limb", "clonic", 100, 160, "left"),
    moi("a", "head/face", "head version", 90, 130, "right"),
    moi("b", "right upper limb", "dystonic posturing", 40, 100, "right"),
])
RECS = recordings(("a", "P-A", 300, "FLE"), ("b", "P-B", 200, "TLE"))


def test_frames_of_a_clip_subsample_the_recording():
    spec = ClipSpec(clip_frames=16, fps=15.0)
    assert spec.frame_step(30.0) == 2.0 and spec.span_frames(30.0) == 31 and spec.stride(30.0) == 15
    assert clip_frame_indices(10, 4, 2.0).tolist() == [10, 12, 14, 16]
    assert clip_frame_indices(0, 4, 2.5).tolist() == [0, 2, 5, 8]  # 30 -> 12 fps: rounded positions
    assert ClipSpec(clip_frames=8, fps=None).span_frames(30.0) == 8
    with pytest.raises(ValidationError, match="only subsample"):
        ClipSpec(fps=60.0).frame_step(30.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"clip_frames": 0}, "clip_frames"), ({"fps": -1.0}, "fps"), ({"stride_frames": 0}, "stride_frames"),
    ({"window": "everything"}, "windows are seizure, moi, recording"), ({"context_frames": -3}, "context_frames"),
])
def test_bad_clip_specs_are_refused(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        ClipSpec(**kwargs)


def test_targets_are_parsed_and_unknown_ones_listed():
    assert parse_target("syndrome").name == "syndrome"
    assert parse_target("moi:trunk", ["trunk"]).region == "trunk"
    with pytest.raises(ValidationError, match="targets are 'syndrome'"):
        parse_target("seizure type")
    with pytest.raises(ValidationError, match="regions are: trunk"):
        parse_target("moi:tail", ["trunk"])


def test_syndrome_clips_cover_the_seizure_windows():
    seizures = pd.DataFrame({"storage_uri": ["a", "b"], "onset_frame": [80, 30], "offset_frame": [200, pd.NA]})
    seizures["offset_frame"] = seizures["offset_frame"].astype("Int64")
    index, classes = build_clip_index(MOIS, RECS, ClipSpec(clip_frames=16, fps=15.0, stride_frames=20),
                                      parse_target("syndrome"), seizures=seizures)
    assert list(index.columns) == list(INDEX_COLUMNS) and classes == ["FLE", "TLE"]
    a = index[index["recording"] == "a"]
    assert a["start_frame"].tolist() == list(range(80, 200 - 31 + 1, 20))
    assert (a["end_frame"] - a["start_frame"]).eq(31).all() and a["target"].eq("FLE").all()
    b = index[index["recording"] == "b"]  # no offset: the seizure lasts to the end of the recording
    assert b["start_frame"].min() == 30 and b["end_frame"].max() <= 200 and b["target_index"].eq(1).all()
    assert set(index["patient_code"]) == {"P-A", "P-B"}
    # without seizure rows the window is the span of the recording's MOIs
    index, _ = build_clip_index(MOIS, RECS, ClipSpec(clip_frames=16, fps=15.0, stride_frames=20),
                                parse_target("syndrome"))
    assert index[index["recording"] == "a"]["start_frame"].tolist() == [90, 110]


def test_a_window_shorter_than_a_clip_gets_one_centred_clip_inside_the_recording():
    mois = pd.DataFrame([moi("a", "trunk", "clonic", 290, 296), moi("b", "trunk", "tonic posturing", 0, 4)])
    index, _ = build_clip_index(mois, RECS, ClipSpec(clip_frames=16, fps=15.0), parse_target("moi:trunk"),
                                classes=None)
    assert index.set_index("recording")["start_frame"].to_dict() == {"a": 300 - 31, "b": 0}


def test_moi_targets_and_their_mirror_images():
    spec = ClipSpec(clip_frames=8, fps=30.0, stride_frames=10, window="recording")
    index, classes = build_clip_index(MOIS, RECS, spec, parse_target("moi:left upper limb"))
    assert classes == ["clonic", "dystonic posturing", BACKGROUND]
    by = index.set_index(["recording", "start_frame"])
    assert by.loc[("a", 120), "target"] == "clonic"            # centre frame 124 inside 100..160
    assert by.loc[("a", 200), "target"] == BACKGROUND
    # flipped, the left arm is the right arm: its MOIs become the target
    assert by.loc[("b", 50), "target"] == BACKGROUND and by.loc[("b", 50), "mirrored_target"] == "dystonic posturing"
    assert by.loc[("a", 120), "mirrored_target"] == BACKGROUND
    # with the side in the class, a flip swaps it too (also for regions without a side)
    index, classes = build_clip_index(MOIS, RECS, spec, parse_target("moi:head/face"), laterality_in_class=True)
    row = index.set_index(["recording", "start_frame"]).loc[("a", 100)]
    assert (row["target"], row["mirrored_target"]) == ("head version (right)", "head version (left)")
    assert "head version (left)" in classes and row["mirrored_index"] == classes.index("head version (left)")


def test_moi_window_lays_clips_over_the_regions_movements_only():
    spec = ClipSpec(clip_frames=8, fps=30.0, stride_frames=4, window="moi")
    index, _ = build_clip_index(MOIS, RECS, spec, parse_target("moi:left upper limb"))
    a = index[index["recording"] == "a"]
    assert a["start_frame"].min() == 100 and a["end_frame"].max() <= 160 and a["target"].eq("clonic").all()
    assert index[index["recording"] == "b"]["target"].eq("dystonic posturing").sum() == 0  # mirrored region only
    assert index[index["recording"] == "b"]["mirrored_target"].eq("dystonic posturing").all()


def test_bad_label_sets_fail_before_any_training():
    spec = ClipSpec(clip_frames=16, fps=15.0)
    with pytest.raises(EmptyLabelsError, match="no MOIs"):
        build_clip_index(MOIS.iloc[:0], RECS, spec, parse_target("syndrome"))
    one_class = RECS.assign(syndrome="FLE")
    with pytest.raises(SingleClassError, match="class 'FLE'.*2 recording"):
        build_clip_index(MOIS, one_class, spec, parse_target("syndrome"))
    with pytest.raises(SingleClassError, match="window='recording'"):
        build_clip_index(MOIS, RECS, ClipSpec(window="moi"), parse_target("moi:head/face"))
    with pytest.raises(ClipTooLongError, match=r"'b' has 200 frames.*spans 299.*at most 100"):
        build_clip_index(MOIS, RECS, ClipSpec(clip_frames=150, fps=15.0), parse_target("syndrome"))
    with pytest.raises(ValidationError, match=r"targets \['TLE'\] are not in classes"):
        build_clip_index(MOIS, RECS, spec, parse_target("syndrome"), classes=["FLE", "other"])


def test_mirror_name_swaps_whole_words_only():
    assert mirror_name("left upper limb") == "right upper limb"
    assert mirror_name("clonic (right)") == "clonic (left)"
    assert mirror_name("leftover") == "leftover" and mirror_name(None) is None
    assert np.array_equal(clip_frame_indices(5, 3, 1.0), [5, 6, 7])
