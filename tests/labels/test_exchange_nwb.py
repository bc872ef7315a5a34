"""NWB export of a recording's MOIs as a TimeIntervals table (optional extra ``nwb``)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from deepepil.labels.exchange import nwb

pynwb = pytest.importorskip("pynwb", reason="the optional extra 'nwb' (pynwb) is not installed")


def test_store_export_reads_back_with_pynwb(label_db, open_store, tmp_path):
    ann = open_store("ann")
    added = [
        ann.add_moi(label_db.rec, "head/face", "head version", 10, 40, "left"),
        ann.add_moi(label_db.rec, "trunk", "clonic", 0, 300, centricity="axial"),
    ]
    path = nwb.export_nwb(ann, label_db.rec, tmp_path / "rec.nwb")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        f = io.read()
        df = f.intervals[nwb.NWB_TABLE].to_dataframe()
        assert f.session_start_time == dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        assert "fps=30.0" in f.notes
    df = df.sort_values("start_frame").reset_index(drop=True)
    assert df["moi_id"].tolist() == [added[1].id, added[0].id]
    assert df[["region", "label", "laterality", "centricity", "author", "source"]].values.tolist() == [
        ["trunk", "clonic", "", "axial", "ann", "human"],
        ["head/face", "head version", "left", "", "ann", "human"],
    ]
    assert df[["start_frame", "end_frame"]].values.tolist() == [[0, 300], [10, 40]]
    np.testing.assert_allclose(df[["start_time", "stop_time"]].values, [[0.0, 10.0], [10 / 30, 40 / 30]])
    # seconds * fps gives the frames back exactly
    assert np.array_equal(np.floor(df["start_time"].values * 30 + 0.5), df["start_frame"].values)


def test_naive_session_start_time_is_refused(label_db, open_store, tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        nwb.export_nwb(open_store("ann"), label_db.rec, tmp_path / "x.nwb",
                       session_start_time=dt.datetime(2024, 1, 1))
