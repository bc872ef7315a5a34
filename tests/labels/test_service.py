"""The label service: create/read/update/delete, validation, access, history and undo, on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

import deepepil.labels
from deepepil.errors import AccessDeniedError, ConflictError, NotFoundError, SchemaBehindError, ValidationError
from deepepil.labels import admin
from deepepil.labels._rows import MOI_COLUMNS, REVISION_COLUMNS
from deepepil.labels.db import make_engine
from deepepil.labels.models import MOI, Revision, Seizure, Suggestion
from deepepil.labels.service import LabelStore, Moi, connect

FPS, NUM_FRAMES = 30.0, 300  # the recordings of the label_db fixture (tests/labels/conftest.py)


def count(url: str, model) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(model)).scalar()
    finally:
        engine.dispose()


@pytest.fixture
def ann(open_store) -> LabelStore:
    return open_store("ann")


# --- create and read back ------------------------------------------------------------------

def test_connect_is_exported_and_the_user_is_the_author(label_db):
    with deepepil.labels.connect(label_db.url, user="ann") as store:
        assert store.user.username == "ann" and store.user.role == "clinician"
        moi = store.add_moi(label_db.rec, "head/face", "head version", 30, 90, "left")
        assert "ann" in repr(store)
    assert moi.author == "ann" and moi.version == 1 and moi.source == "human"


def test_a_label_set_at_frame_k_reads_back_at_frame_k(label_db, ann):
    added = {}
    for k in (0, 1, 29, 30, 31, 149, 298):
        moi = ann.add_moi(label_db.rec, "trunk", "tonic posturing", k, k + 1, centricity="axial")
        added[moi.id] = k
        assert (moi.start_frame, moi.end_frame) == (k, k + 1)
        assert moi.start_seconds == k / FPS and moi.end_seconds == (k + 1) / FPS
    df = ann.mois(label_db.rec)
    assert dict(zip(df["id"], df["start_frame"])) == added
    assert (df["start_seconds"] * FPS).round().astype(int).tolist() == df["start_frame"].tolist()
    for moi_id, k in added.items():
        assert ann.moi(moi_id).start_frame == k


def test_times_in_seconds_round_to_the_nearest_frame(label_db, ann):
    for k in (0, 1, 7, 150, 299):
        moi = ann.add_moi_seconds(label_db.rec, "head/face", "oral automatism", k / FPS, (k + 1) / FPS)
        assert (moi.start_frame, moi.end_frame) == (k, k + 1)
        assert ann.moi(moi.id).start_seconds == pytest.approx(k / FPS)
    moi = ann.add_moi_seconds(label_db.rec, "trunk", "clonic", 1.001, 2.49)
    assert (moi.start_frame, moi.end_frame) == (30, 75)
    moved = ann.update_moi(moi.id, moi.version, end_seconds=3.0)
    assert moved.end_frame == 90


def test_mois_dataframe_columns_filters_and_empty(label_db, open_store):
    ann, bea = open_store("ann"), open_store("bea")
    empty = ann.mois(label_db.rec)
    assert list(empty.columns) == list(MOI_COLUMNS) and len(empty) == 0
    for required in ("id", "version", "recording_id", "region", "label", "laterality", "centricity", "start_frame",
                     "end_frame", "start_seconds", "end_seconds", "author", "source", "confidence", "seizure_id",
                     "created_at", "updated_at"):
        assert required in empty.columns
    ann.add_moi(label_db.rec, "head/face", "head version", 10, 20, "left", confidence=0.8)
    ann.add_moi(label_db.rec, "trunk", "tonic posturing", 10, 20)
    bea.add_moi(label_db.rec, "head/face", "head version", 12, 22, "left")
    df = ann.mois(label_db.rec)
    assert list(df.columns) == list(MOI_COLUMNS) and len(df) == 3
    assert df["created_at"].dt.tz is not None and df["start_frame"].dtype == "int64"
    assert ann.mois(author="bea")["author"].tolist() == ["bea"]
    assert len(ann.mois(region="head/face")) == 2
    assert len(ann.mois(label=["tonic posturing", "clonic"])) == 1
    assert len(ann.mois(author=["ann", "bea"], region="head/face")) == 2
    assert len(ann.mois(source="model")) == 0
    assert len(ann.mois()) == 3


# --- update and versions -------------------------------------------------------------------

def test_update_bumps_the_version_and_writes_revisions(label_db, ann):
    moi = ann.add_moi(label_db.rec, "head/face", "head version", 30, 90, "left")
    v2 = ann.update_moi(moi.id, 1, end_frame=95)
    v3 = ann.update_moi(moi.id, 2, laterality="right", confidence=0.5)
    assert (v2.version, v3.version) == (2, 3)
    assert (v3.end_frame, v3.laterality, v3.confidence) == (95, "right", 0.5)
    assert v3.updated_at >= v2.updated_at >= moi.created_at
    unchanged = ann.update_moi(moi.id, 3, end_frame=95)
    assert unchanged.version == 3  # nothing changed, nothing written
    history = ann.revisions("moi", moi.id)
    assert list(history.columns) == list(REVISION_COLUMNS)
    assert history["action"].tolist() == ["create", "update", "update"]
    assert history["user"].unique().tolist() == ["ann"]
    last = history.iloc[-1]
    assert last["before"]["laterality"] == "left" and last["after"]["laterality"] == "right"
    assert (last["before"]["version"], last["after"]["version"]) == (2, 3)
    assert history.iloc[0]["before"] is None


def test_stale_update_raises_conflict_with_the_current_row_and_overwrites_nothing(label_db, open_store):
    ann, bea = open_store("ann"), open_store("bea")
    moi = ann.add_moi(label_db.rec, "head/face", "head version", 30, 90, "left")
    ann.update_moi(moi.id, moi.version, end_frame=100)
    with pytest.raises(ConflictError) as err:
        bea.update_moi(moi.id, moi.version, end_frame=120)
    assert err.value.current["version"] == 2 and err.value.current["end_frame"] == 100
    message = str(err.value)
    assert "ann" in message and "version 1" in message and "version 2" in message and "UTC" in message
    assert ann.moi(moi.id).end_frame == 100
    retried = bea.update_moi(moi.id, err.value.current["version"], end_frame=120)
    assert retried.version == 3 and retried.author == "ann"  # the author stays; the revision names bea
    assert ann.revisions("moi", moi.id)["user"].tolist() == ["ann", "ann", "bea"]


def test_update_rejects_unknown_fields_and_deleted_rows(label_db, ann):
    moi = ann.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    with pytest.raises(ValidationError, match="editable"):
        ann.update_moi(moi.id, 1, author_id=3)
    gone = ann.delete_moi(moi.id, 1)
    with pytest.raises(ValidationError, match="restore_moi"):
        ann.update_moi(moi.id, gone.version, end_frame=20)
    with pytest.raises(NotFoundError):
        ann.update_moi(9999, 1, end_frame=20)


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "expected"), [
    ((-1, 10), r"start_frame -1 is outside the recording: recording \d+ \('rec_S01'\) has 300 frames \(10\.00 s"),
    ((290, 301), r"end_frame 301 is outside the recording.*300 frames \(10\.00 s at 30 fps\).*<= 300"),
    ((50, 40), r"end_frame \(40\) must be after start_frame \(50\)"),
    ((50, 50), r"must be after start_frame"),
    ((1.5, 10), r"start_frame must be an integer frame index.*add_moi_seconds"),
])
def test_bad_frames_are_refused_and_nothing_is_stored(label_db, ann, args, expected):
    with pytest.raises(ValidationError, match=expected):
        ann.add_moi(label_db.rec, "trunk", "clonic", *args)
    assert count(label_db.url, MOI) == 0 and count(label_db.url, Revision) == 0


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"region": "head"}, r"unknown region 'head'; valid regions: 'head/face', 'trunk'.*'whole body'"),
    ({"label": "head versoin"}, r"unknown label 'head versoin'; closest valid MOI labels: 'head version'"),
    ({"label": "sneezing"}, r"unknown label 'sneezing'; no close match among the 17 valid MOI labels"),
    ({"laterality": "both"}, r"unknown laterality 'both'; valid lateralities: 'left', 'right', 'bilateral'"),
    ({"centricity": "central"}, r"unknown centricity 'central'; valid centricities: 'axial', 'proximal', 'distal'"),
    ({"confidence": 1.5}, r"confidence must be between 0 and 1"),
    ({"source": "robot"}, r"source must be one of 'human', 'model'"),
])
def test_unknown_vocabulary_is_refused_with_the_valid_values(label_db, ann, kwargs, expected):
    args = {"region": "trunk", "label": "clonic", "start_frame": 0, "end_frame": 10, **kwargs}
    with pytest.raises(ValidationError, match=expected):
        ann.add_moi(label_db.rec, **args)
    assert count(label_db.url, MOI) == 0 and count(label_db.url, Revision) == 0


def test_unknown_recording(label_db, ann):
    with pytest.raises(NotFoundError, match="recording 4242 does not exist"):
        ann.add_moi(4242, "trunk", "clonic", 0, 10)


def test_exact_duplicates_are_refused(label_db, open_store):
    ann, bea = open_store("ann"), open_store("bea")
    first = ann.add_moi(label_db.rec, "head/face", "head version", 30, 90, "left")
    with pytest.raises(ValidationError, match=rf"identical MOI exists already by ann: MOI {first.id}"):
        ann.add_moi(label_db.rec, "head/face", "head version", 30, 90, "left")
    # anything different is not a duplicate: laterality, frames, another author
    ann.add_moi(label_db.rec, "head/face", "head version", 30, 90, "right")
    ann.add_moi(label_db.rec, "head/face", "head version", 30, 91, "left")
    ann.add_moi(label_db.rec, "head/face", "head version", 30, 90)
    bea.add_moi(label_db.rec, "head/face", "head version", 30, 90, "left")
    other = ann.add_moi(label_db.rec, "head/face", "head version", 31, 90, "left")
    with pytest.raises(ValidationError, match="identical MOI"):
        ann.update_moi(other.id, other.version, start_frame=30)
    assert count(label_db.url, MOI) == 6
    deleted = ann.delete_moi(first.id, first.version)
    again = ann.add_moi(label_db.rec, "head/face", "head version", 30, 90, "left")  # the first one is deleted
    with pytest.raises(ValidationError, match=f"cannot restore MOI {first.id}: MOI {again.id} is identical"):
        ann.restore_moi(first.id, deleted.version)


def test_retired_terms_keep_old_labels_editable_but_not_new_ones(label_db, ann):
    moi = ann.add_moi(label_db.rec, "trunk", "figure-of-4", 0, 10)
    admin.retire_term("moi_label", "figure-of-4", url=label_db.url)
    moved = ann.update_moi(moi.id, moi.version, end_frame=20)
    assert moved.label == "figure-of-4"
    with pytest.raises(ValidationError, match=r"label 'figure-of-4' was retired in vocabulary version 2"):
        ann.add_moi(label_db.rec, "trunk", "figure-of-4", 30, 40)
    assert "figure-of-4" not in ann.vocabulary("moi_label")


def test_add_mois_stores_all_or_nothing_and_lists_every_error(label_db, ann):
    good = {"recording_id": label_db.rec, "region": "trunk", "label": "clonic", "start_frame": 0, "end_frame": 10}
    records = [good, {**good, "region": "tail"}, {**good, "start_frame": 20}, {**good, "end_frame": 999},
               {**good, "start_frame": 10, "end_frame": 20}, {**good, "start_frame": 10, "end_frame": 20}]
    with pytest.raises(ValidationError) as err:
        ann.add_mois(records)
    assert [i for i, _ in err.value.problems] == [1, 2, 3, 5]
    assert "record 1: unknown region 'tail'" in str(err.value) and "record 5: an identical MOI" in str(err.value)
    assert count(label_db.url, MOI) == 0 and count(label_db.url, Revision) == 0
    frame = pd.DataFrame([good, {**good, "start_frame": 10, "end_frame": 20, "laterality": "left"},
                          {**good, "start_frame": 20, "end_frame": 30, "laterality": float("nan")}])
    added = ann.add_mois(frame)
    assert [m.laterality for m in added] == [None, "left", None]
    assert count(label_db.url, MOI) == 3


def test_batch_is_one_transaction_and_one_undo(label_db, ann):
    with pytest.raises(ValidationError):
        with ann.batch():
            ann.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
            ann.add_moi(label_db.rec, "trunk", "clonic", 20, 10)
    assert count(label_db.url, MOI) == 0 and count(label_db.url, Revision) == 0
    with ann.batch():
        first = ann.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
        ann.update_moi(first.id, first.version, end_frame=15)
        try:  # a failed call inside a batch leaves nothing of its own
            ann.add_moi(label_db.rec, "trunk", "clonic", 0, 15)
        except ValidationError:
            pass
        ann.add_moi(label_db.rec, "head/face", "head version", 5, 10, "left")
    assert len(ann.mois()) == 2
    result = ann.undo()
    assert [c["reverted"] for c in result["changes"]] == ["create", "update", "create"]
    assert len(ann.mois()) == 0 and len(ann.mois(include_deleted=True)) == 2


# --- delete and restore --------------------------------------------------------------------

def test_delete_and_restore(label_db, ann):
    moi = ann.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    gone = ann.delete_moi(moi.id, moi.version)
    assert gone.deleted and gone.version == 2
    assert len(ann.mois()) == 0 and ann.mois(include_deleted=True)["deleted"].tolist() == [True]
    with pytest.raises(ConflictError):
        ann.restore_moi(moi.id, 1)
    with pytest.raises(ValidationError, match="deleted already"):
        ann.delete_moi(moi.id, 2)
    back = ann.restore_moi(moi.id, 2)
    assert not back.deleted and back.version == 3 and len(ann.mois()) == 1
    assert ann.revisions("moi", moi.id)["action"].tolist() == ["create", "delete", "restore"]
    assert count(label_db.url, MOI) == 1


# --- access --------------------------------------------------------------------------------

def test_clinicians_write_only_for_their_own_clinic(label_db, open_store):
    ann, carl = open_store("ann"), open_store("carl")
    with pytest.raises(AccessDeniedError, match=r"carl may not add labels to recording \d+: it belongs to clinic"):
        carl.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    moi = ann.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    with pytest.raises(NotFoundError):  # other clinics' labels are not visible at all
        carl.update_moi(moi.id, moi.version, end_frame=20)
    with pytest.raises(NotFoundError):
        carl.moi(moi.id)
    assert len(carl.mois()) == 0 and len(carl.mois(label_db.rec)) == 0
    carl.add_moi(label_db.rec_south, "trunk", "clonic", 0, 10)
    assert len(carl.mois()) == 1 and len(ann.mois()) == 1
    root = open_store("root")
    root.add_moi(label_db.rec_south, "trunk", "clonic", 0, 20)
    assert len(root.mois()) == 3
    with pytest.raises(AccessDeniedError, match="needs the role clinician or admin"):
        open_store("dan").add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    assert count(label_db.url, MOI) == 3


def test_unregistered_users(label_db, monkeypatch):
    monkeypatch.delenv("DEEPEPIL_USER", raising=False)
    if label_db.url.startswith("sqlite"):  # the embedded database is single-user: registered as admin
        with connect(label_db.url, user="newcomer") as store:
            assert store.user.role == "admin"
    else:
        with pytest.raises(AccessDeniedError, match="not registered"):
            connect(label_db.url, user="newcomer")
    monkeypatch.setenv("DEEPEPIL_USER", "bea")
    with connect(label_db.url) as store:
        assert store.user.username == "bea"


def test_an_empty_database_asks_for_an_upgrade(db_url):
    with pytest.raises(SchemaBehindError, match="deepepil db upgrade"):
        connect(db_url, user="ann")


# --- history and undo ----------------------------------------------------------------------

def test_undo_reverts_only_the_callers_last_change(label_db, open_store):
    ann, bea = open_store("ann"), open_store("bea")
    moi = ann.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    moi = ann.update_moi(moi.id, moi.version, end_frame=20)
    other = bea.add_moi(label_db.rec, "head/face", "head version", 0, 10, "left")
    result = ann.undo()  # ann's update, not bea's newer create
    (change,) = result["changes"]
    assert (change["table"], change["row_id"], change["reverted"]) == ("moi", moi.id, "update")
    assert change["row"]["end_frame"] == 10 and change["row"]["version"] == 3
    assert ann.moi(moi.id).end_frame == 10 and not bea.moi(other.id).deleted
    ann.undo()  # ann's create: the MOI is deleted
    assert ann.moi(moi.id).deleted
    with pytest.raises(NotFoundError, match="nothing to undo"):
        ann.undo()
    redone = ann.redo()
    assert redone["changes"][0]["reverted"] == "undo" and not ann.moi(moi.id).deleted
    ann.redo()
    assert ann.moi(moi.id).end_frame == 20
    with pytest.raises(NotFoundError, match="nothing to redo"):
        ann.redo()
    history = ann.revisions("moi", moi.id)
    assert history["action"].tolist() == ["create", "update", "undo", "undo", "redo", "redo"]
    assert history["undoes_id"].iloc[2] == history["id"].iloc[1]
    bea.undo()
    assert bea.moi(other.id).deleted


def test_undo_refuses_when_someone_changed_the_row_since(label_db, open_store):
    ann, bea = open_store("ann"), open_store("bea")
    moi = ann.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    moi = ann.update_moi(moi.id, moi.version, end_frame=20)
    bea.update_moi(moi.id, moi.version, end_frame=30)
    with pytest.raises(ConflictError, match=f"MOI {moi.id} was changed by bea") as err:
        ann.undo()
    assert err.value.current["end_frame"] == 30
    assert ann.moi(moi.id).end_frame == 30 and ann.moi(moi.id).version == 3


def test_redo_is_gone_after_a_new_change(label_db, ann):
    a = ann.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    ann.undo()
    ann.add_moi(label_db.rec, "trunk", "clonic", 20, 30)
    with pytest.raises(NotFoundError, match="new change after the last undo"):
        ann.redo()
    assert ann.moi(a.id).deleted


def test_revisions_are_append_only_through_the_service(label_db, ann):
    moi = ann.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    ann.update_moi(moi.id, 1, end_frame=20)
    ann.delete_moi(moi.id, 2)
    ann.undo()
    before = ann.revisions()
    assert [name for name in dir(ann) if "revision" in name.lower()] == ["revisions"]
    ann.add_moi(label_db.rec, "trunk", "clonic", 50, 60)
    after = ann.revisions()
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)
    assert after["action"].tolist() == ["create", "update", "delete", "undo", "create"]


# --- seizures and keypoints ----------------------------------------------------------------

def test_seizures(label_db, ann):
    seizure = ann.add_seizure(label_db.rec, 30, 240, seizure_type="focal motor onset: hyperkinetic",
                              awareness="impaired awareness", lateralization="left", localization="FLE")
    assert seizure.onset_seconds == 1.0 and seizure.offset_seconds == 8.0 and seizure.status == "draft"
    final = ann.update_seizure(seizure.id, seizure.version, status="final", offset_frame=250)
    assert (final.status, final.offset_frame, final.version) == ("final", 250, 2)
    with pytest.raises(ValidationError, match=r"closest valid seizure types: 'focal motor onset: hyperkinetic'"):
        ann.add_seizure(label_db.rec, 10, seizure_type="focal motor onset: hyperkinetc")
    with pytest.raises(ValidationError, match="status must be one of 'draft', 'final', 'reviewed'"):
        ann.update_seizure(seizure.id, 2, status="done")
    with pytest.raises(ValidationError, match="offset_frame 400 is outside the recording"):
        ann.add_seizure(label_db.rec, 10, 400)
    open_ended = ann.add_seizure(label_db.rec, 100)
    assert open_ended.offset_frame is None and open_ended.offset_seconds is None
    moi = ann.add_moi(label_db.rec, "trunk", "tonic posturing", 40, 80, seizure_id=seizure.id)
    assert moi.seizure_id == seizure.id
    ann.delete_seizure(open_ended.id, 1)
    with pytest.raises(ValidationError, match=f"seizure_id {open_ended.id} is not a seizure of recording"):
        ann.add_moi(label_db.rec, "trunk", "clonic", 0, 10, seizure_id=open_ended.id)
    df = ann.seizures(label_db.rec)
    assert df["id"].tolist() == [seizure.id] and df["status"].tolist() == ["final"]
    assert len(ann.seizures(include_deleted=True)) == 2
    assert ann.restore_seizure(open_ended.id, 2).version == 3
    undone = [ann.undo()["changes"][0] for _ in range(5)]
    assert [(c["table"], c["reverted"]) for c in undone] == [
        ("seizure", "restore"), ("seizure", "delete"), ("moi", "create"), ("seizure", "create"), ("seizure", "update")]
    back = ann.seizure(seizure.id)
    assert (back.status, back.offset_frame) == ("draft", 240)
    assert count(label_db.url, Seizure) == 2


def test_keypoints(label_db, ann):
    kp = ann.add_keypoint(label_db.rec, 12, "left_wrist", 100.5, 200.25, x_m=0.1, y_m=-0.2, z_m=1.5,
                          confidence=0.9)
    assert kp.frame_index == 12 and kp.seconds == 12 / FPS and kp.z_m == 1.5
    ann.add_keypoint(label_db.rec, 12, "head", 50, 60)
    ann.add_keypoint(label_db.rec, 13, "head", 51, 61)
    with pytest.raises(ValidationError, match=f"placed already by this author \\(keypoint {kp.id}\\)"):
        ann.add_keypoint(label_db.rec, 12, "left_wrist", 1, 2)
    with pytest.raises(ValidationError, match="closest valid joints: 'left_wrist'"):
        ann.add_keypoint(label_db.rec, 12, "left wrist", 1, 2)
    with pytest.raises(ValidationError, match=f"frame_index {NUM_FRAMES} is outside the recording"):
        ann.add_keypoint(label_db.rec, NUM_FRAMES, "head", 1, 2)
    with pytest.raises(ValidationError, match="x_m, y_m and z_m go together"):
        ann.add_keypoint(label_db.rec, 14, "head", 1, 2, z_m=1.0)
    moved = ann.update_keypoint(kp.id, kp.version, u_px=101.0)
    assert moved.u_px == 101.0 and moved.version == 2
    frame12 = ann.keypoints(label_db.rec, frame_index=12)
    assert sorted(frame12["joint"]) == ["head", "left_wrist"]
    ann.delete_keypoint(kp.id, 2)
    assert len(ann.keypoints(label_db.rec)) == 2


# --- suggestions ---------------------------------------------------------------------------

def test_suggestions_accept_and_reject(label_db, open_store):
    dan, ann, carl = open_store("dan"), open_store("ann"), open_store("carl")
    with pytest.raises(AccessDeniedError, match="data_scientist or admin"):
        ann.add_suggestion(label_db.rec, "trunk", "clonic", 0, 10, 0.9, "moi-net:1")
    s1 = dan.add_suggestion(label_db.rec, "head/face", "head version", 30, 60, 0.87, "moi-net:1", "left")
    s2 = dan.add_suggestion(label_db.rec, "trunk", "clonic", 100, 130, 0.4, "moi-net:1")
    with pytest.raises(ValidationError, match="same proposal"):
        dan.add_suggestion(label_db.rec, "trunk", "clonic", 100, 130, 0.5, "moi-net:1")
    with pytest.raises(ValidationError, match="score must be between 0 and 1"):
        dan.add_suggestion(label_db.rec, "trunk", "clonic", 0, 10, 7.0, "moi-net:1")
    assert ann.suggestions(label_db.rec, "pending")["id"].tolist() == [s1.id, s2.id]
    with pytest.raises(NotFoundError):  # another clinic's suggestions are not visible
        carl.accept_suggestion(s1.id, s1.version)
    with pytest.raises(ConflictError):
        ann.accept_suggestion(s1.id, s1.version + 1)
    moi = ann.accept_suggestion(s1.id, s1.version)
    assert isinstance(moi, Moi)
    assert (moi.source, moi.author, moi.suggestion_id, moi.confidence) == ("model", "ann", s1.id, 0.87)
    assert (moi.region, moi.label, moi.laterality, moi.start_frame, moi.end_frame) == (
        "head/face", "head version", "left", 30, 60)
    decided = ann.suggestion(s1.id)
    assert (decided.decision, decided.decided_by, decided.version) == ("accepted", "ann", 2)
    with pytest.raises(ValidationError, match="accepted by ann already"):
        ann.accept_suggestion(s1.id, 2)
    rejected = ann.reject_suggestion(s2.id, s2.version)
    assert rejected.decision == "rejected"
    assert ann.suggestions(decision="pending").empty and len(ann.suggestions()) == 2
    assert ann.mois(source="model")["id"].tolist() == [moi.id]
    # undo takes back the whole reject, then the whole accept (MOI and decision together)
    ann.undo()
    assert ann.suggestion(s2.id).decision == "pending"
    result = ann.undo()
    assert sorted(c["table"] for c in result["changes"]) == ["moi", "suggestion"]
    assert ann.suggestion(s1.id).decision == "pending" and ann.moi(moi.id).deleted
    ann.redo()
    redone = ann.suggestion(s1.id)
    assert (redone.decision, redone.decided_by, redone.decided_at) == ("accepted", "ann", decided.decided_at)
    assert not ann.moi(moi.id).deleted
    assert count(label_db.url, Suggestion) == 2


def test_a_suggestion_carries_its_explanation_uri(label_db, open_store):
    dan, ann = open_store("dan"), open_store("ann")
    uri = "/srv/deepepil/shared/explanations/moi-net-v1/rec1/30-60-head-version-left.npz"
    s1 = dan.add_suggestion(label_db.rec, "head/face", "head version", 30, 60, 0.87, "moi-net:1", "left",
                            explanation_uri=uri)
    s2 = dan.add_suggestion(label_db.rec, "trunk", "clonic", 100, 130, 0.4, "moi-net:1")
    assert (s1.explanation_uri, s2.explanation_uri) == (uri, None)
    assert ann.suggestion(s1.id).explanation_uri == uri  # the clinician reads it
    shown = ann.suggestions(label_db.rec).set_index("id")
    assert "explanation_uri" in shown.columns
    assert shown.loc[s1.id, "explanation_uri"] == uri and shown.loc[s2.id, "explanation_uri"] is None
    assert dan.revisions("suggestion", s1.id)["after"].iloc[0]["explanation_uri"] == uri
    # accepting keeps it on the suggestion (the MOI points at the suggestion)
    moi = ann.accept_suggestion(s1.id, s1.version)
    assert moi.suggestion_id == s1.id and ann.suggestion(s1.id).explanation_uri == uri
    for bad, match in (("x" * 1001, "1001 characters long; at most 1000"), ("", "non-empty string"),
                       ("   ", "non-empty string"), (42, "got 42")):
        with pytest.raises(ValidationError, match=f"explanation_uri.*{match}"):
            dan.add_suggestion(label_db.rec, "trunk", "tonic posturing", 0, 10, 0.5, "moi-net:1",
                               explanation_uri=bad)
    assert count(label_db.url, Suggestion) == 2 and len(dan.revisions("suggestion")) == 3
    at_limit = "/" + "x" * 999
    assert dan.add_suggestion(label_db.rec, "trunk", "tonic posturing", 0, 10, 0.5, "moi-net:1",
                              explanation_uri=at_limit).explanation_uri == at_limit
