"""CSV export and import: the documented header, exact frames, every bad line listed, all or nothing."""

from __future__ import annotations

import csv
import re

import pandas as pd
import pytest

from deepepil.errors import AccessDeniedError, ImportFileError, NotFoundError
from deepepil.labels._rows import RecordingInfo
from deepepil.labels.exchange import csv as csv_exchange
from deepepil.labels.exchange._common import seed_vocabulary

FPS = 30.0
NUM_FRAMES = 300
KEY = ["recording_id", "region", "label", "laterality", "centricity", "start_frame", "end_frame"]
HEADER = ("recording_id,recording,region,label,laterality,centricity,start_frame,end_frame,start_seconds,"
          "end_seconds,author,source")


def _rec(rid: int, name: str, fps: float = FPS, num_frames: int = NUM_FRAMES) -> RecordingInfo:
    return RecordingInfo(id=rid, name=name, storage_uri=f"file:///{name}", clinic_id=1, clinic="North", fps=fps,
                         num_frames=num_frames, duration_seconds=num_frames / fps)


RECS = [_rec(1, "rec_S01"), _rec(2, "rec_S02", fps=25.0, num_frames=250), _rec(3, "twin"), _rec(4, "twin")]


def _read(path, **kwargs) -> pd.DataFrame:
    return csv_exchange.read_csv(path, vocabulary=seed_vocabulary(), recordings=RECS, **kwargs)


def _problems(path, **kwargs) -> list[str]:
    with pytest.raises(ImportFileError) as info:
        _read(path, **kwargs)
    return info.value.problems


def _plain(df: pd.DataFrame) -> list[list]:
    return df[KEY].astype(object).where(df[KEY].notna(), None).values.tolist()


def test_the_documented_header():
    assert ",".join(csv_exchange.CSV_COLUMNS) == HEADER
    assert HEADER in (csv_exchange.__doc__ or "")


def test_write_then_read_round_trips_exactly(tmp_path):
    mois = pd.DataFrame([
        dict(recording_id=1, region="head/face", label="head version", laterality="left", centricity=None,
             start_frame=1, end_frame=2, author="ann", source="human"),
        dict(recording_id=2, region="trunk", label="tonic posturing", laterality=None, centricity="axial",
             start_frame=0, end_frame=250, author="ann", source="model"),
    ])
    path = csv_exchange.write_csv(mois, tmp_path / "m.csv", recordings={r.id: r for r in RECS})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == [
        HEADER,
        "1,rec_S01,head/face,head version,left,,1,2,0.033333,0.066667,ann,human",
        "2,rec_S02,trunk,tonic posturing,,axial,0,250,0.000000,10.000000,ann,model",
    ]
    df = _read(path)
    assert _plain(df) == _plain(mois)
    assert df["source"].tolist() == ["human", "model"] and df["line"].tolist() == [2, 3]


def test_seconds_only_names_recordings_semicolons_and_a_bom(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffrecording;region;label;start_seconds;end_seconds\n"
                     "rec_S02;left lower limb;clonic;0.5;1.02\n".encode("utf-8"))
    df = _read(path)
    assert _plain(df) == [[2, "left lower limb", "clonic", None, None, 13, 26]]  # 0.5 s * 25 = 12.5 -> 13 (half up)


def test_every_bad_line_is_listed(tmp_path):
    path = tmp_path / "bad.csv"
    rows = [
        HEADER,
        "1,rec_S01,head/face,head version,left,,10,40,,,ann,human",        # 2: fine
        "1,rec_S01,head/fac,head version,,,10,40,,,,",                     # 3: unknown region
        "1,rec_S01,trunk,clonus,,,10,40,,,,",                              # 4: unknown label
        "1,rec_S01,trunk,clonic,up,,10,40,,,,",                            # 5: unknown laterality
        "1,rec_S01,trunk,clonic,,,40,10,,,,",                              # 6: reversed
        "1,rec_S01,trunk,clonic,,,10,400,,,,",                             # 7: outside the recording
        "1,rec_S01,head/face,head version,left,,10,40,,,bea,human",        # 8: duplicate of line 2
        "9,,trunk,clonic,,,10,40,,,,",                                     # 9: unknown recording
        ",twin,trunk,clonic,,,10,40,,,,",                                  # 10: ambiguous name
        "1,rec_S01,trunk,clonic,,,ten,40,,,,",                             # 11: not a frame
        "1,rec_S01,trunk,clonic,,,10,40,0.5,,,",                           # 12: seconds disagree with frames
        "1,rec_S01,trunk,clonic,,,10,40,,,,robot",                         # 13: bad source
        "1,rec_S01,trunk",                                                 # 14: too few fields
        '1,rec_S01,trunk,"clonic',                                         # 15-16: a quoted field over two lines
        'x",,,10,40,,,,',
        "2,rec_S01,trunk,clonic,,,10,40,,,,",                              # 17: id and name disagree
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    problems = _problems(path)
    expected = [
        r"line 3: unknown region 'head/fac'; valid regions: 'head/face'",
        r"line 4: unknown label 'clonus'; closest valid MOI labels: 'clonic'",
        r"line 5: unknown laterality 'up'; valid lateralities: 'left', 'right', 'bilateral'",
        r"line 6: end_frame 10 is not after start_frame 40",
        r"line 7: frames 10-400 are outside the recording: recording 1 \('rec_S01'\) has 300 frames",
        r"line 8: exact duplicate of line 2",
        r"line 9: recording 9 does not exist or is not visible to you",
        r"line 10: 2 recordings are named 'twin' \(ids 3, 4\); use recording_id",
        r"line 11: start_frame 'ten' is not a whole number",
        r"line 12: start_seconds 0.5 is frame 15 at 30 fps, but start_frame says 10",
        r"line 13: source 'robot' is not one of 'human', 'model'",
        r"line 14: has 3 fields, the header has 12",
        r"line 15: unknown label 'clonic\\nx'",
        r"line 17: recording_id 2 is named 'rec_S02', not 'rec_S01'",
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for problem, pattern in zip(problems, expected):
        assert re.match(pattern, problem), f"{problem!r} does not match {pattern!r}"


@pytest.mark.parametrize("header, message", [
    ("recording_id,region,lable,start_frame,end_frame", r"line 1: unknown column\(s\) 'lable'; the columns are: "),
    ("recording_id,region,label,start_frame", r"line 1: missing column\(s\): start_frame and end_frame \(or "),
    ("region,label,start_frame,end_frame", r"line 1: missing column\(s\): recording_id or recording"),
    ("recording_id,region,region,label,start_frame,end_frame", r"line 1: column\(s\) 'region' appear more than"),
    ("", r"line 1: the file is empty"),
])
def test_header_problems(tmp_path, header, message):
    path = tmp_path / "h.csv"
    path.write_text(header + ("\n" if header else ""), encoding="utf-8")
    problem = _problems(path)[0]
    assert re.match(message, problem), problem


def test_a_fixed_recording_needs_no_recording_column_and_must_match_one(tmp_path):
    path = tmp_path / "fixed.csv"
    path.write_text("region,label,start_frame,end_frame\ntrunk,clonic,0,5\n", encoding="utf-8")
    assert _plain(_read(path, recording_id=2)) == [[2, "trunk", "clonic", None, None, 0, 5]]
    path.write_text("recording_id,recording,region,label,start_frame,end_frame\n1,,trunk,clonic,0,5\n"
                    ",rec_S01,trunk,clonic,0,5\n", encoding="utf-8")
    assert _problems(path, recording_id=2) == [
        "line 2: recording_id 1 differs from the recording imported into (2, 'rec_S02')",
        "line 3: recording 'rec_S01' differs from the recording imported into (2, 'rec_S02')",
    ]


def test_not_utf8_is_one_clear_problem(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "\n1,rec_S01,trunk,clonic,,,0,5,,,Müller,\n").encode("latin-1"))
    [problem] = _problems(path)
    assert problem.startswith("not UTF-8 text") and "save the file as CSV UTF-8" in problem


# --- through the label service, on SQLite and PostgreSQL ------------------------------------------------


def test_store_export_import_round_trips_exactly(label_db, open_store, tmp_path):
    ann, bea, root = open_store("ann"), open_store("bea"), open_store("root")
    ann.add_moi(label_db.rec, "head/face", "head version", 10, 40, "left")
    ann.add_moi(label_db.rec, "trunk", "clonic", 0, 300, centricity="axial")
    root.add_moi(label_db.rec_south, "whole body", "postictal", 100, 101)
    path = csv_exchange.export_csv(root, tmp_path / "all.csv")  # every recording root sees
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["recording"] for r in rows] == ["rec_S01", "rec_S01", "rec_south_S01"]
    assert {r["author"] for r in rows} == {"ann", "root"}
    only_north = csv_exchange.export_csv(ann, tmp_path / "north.csv", recording_id=label_db.rec)
    ids = csv_exchange.import_csv(bea, only_north)
    assert len(ids) == 2
    mois = bea.mois(label_db.rec)
    mine, theirs = mois[mois["author"] == "bea"], mois[mois["author"] == "ann"]
    key = KEY[1:]
    assert sorted(map(tuple, mine[key].astype(object).where(mine[key].notna(), None).values.tolist())) == \
        sorted(map(tuple, theirs[key].astype(object).where(theirs[key].notna(), None).values.tolist()))


def test_store_import_is_all_or_nothing(label_db, open_store, tmp_path):
    bea = open_store("bea")
    path = tmp_path / "mixed.csv"
    path.write_text(HEADER + "\n"
                    f"{label_db.rec},,trunk,clonic,,,0,10,,,,\n"
                    f"{label_db.rec},,trunk,clonic,,,0,1000,,,,\n"
                    f"{label_db.rec_south},,trunk,clonic,,,0,10,,,,\n", encoding="utf-8")
    with pytest.raises(ImportFileError) as info:
        csv_exchange.import_csv(bea, path)
    assert [p.split(":")[0] for p in info.value.problems] == ["line 3", "line 4"]
    assert "is not visible to you" in info.value.problems[1]  # bea is a clinician of the other clinic
    assert len(bea.mois()) == 0


def test_store_import_of_existing_labels_or_without_the_right_is_refused(label_db, open_store, tmp_path):
    ann = open_store("ann")
    ann.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    path = tmp_path / "again.csv"
    path.write_text(HEADER + "\n"
                    f"{label_db.rec},,trunk,clonic,,,0,10,,,,\n"
                    f"{label_db.rec},,trunk,clonic,,,10,20,,,,\n", encoding="utf-8")
    with pytest.raises(ImportFileError) as info:
        csv_exchange.import_csv(ann, path, recording_id=label_db.rec)
    [problem] = info.value.problems
    assert problem.startswith("line 2: repeats MOI ")
    assert len(ann.mois(label_db.rec)) == 1
    dan = open_store("dan")  # a data scientist may not add MOIs: refused before the file is read
    with pytest.raises(AccessDeniedError, match="may not import labels"):
        csv_exchange.import_csv(dan, path, recording_id=label_db.rec)
    carl = open_store("carl")  # a clinician of the other clinic
    with pytest.raises(NotFoundError):
        csv_exchange.import_csv(carl, path, recording_id=label_db.rec)
    assert len(ann.mois(label_db.rec)) == 1


def test_store_import_by_recording_name(label_db, open_store, tmp_path):
    bea = open_store("bea")
    path = tmp_path / "named.csv"
    path.write_text("recording,region,label,start_seconds,end_seconds\nrec_S01,trunk,clonic,1.0,2.0\n",
                    encoding="utf-8")
    [moi_id] = csv_exchange.import_csv(bea, path)
    moi = bea.moi(moi_id)
    assert (moi.recording_id, moi.start_frame, moi.end_frame, moi.source) == (label_db.rec, 30, 60, "human")
