"""Label snapshots: the same labels give the same hash, and a snapshot never changes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from deepepil.errors import IntegrityError, NotFoundError, ValidationError
from deepepil.labels.db import make_engine
from deepepil.labels.models import LabelSnapshot
from deepepil.labels.snapshot import RECORDING_FIELDS, SNAPSHOT_FIELDS, Snapshot, content_hash

LABELS = [
    ("head/face", "head version", 30, 90, "left"),
    ("trunk", "tonic posturing", 100, 200, None),
    ("left upper limb", "clonic", 40, 80, "left"),
]


def add_all(store, recording_id, order=(0, 1, 2)):
    return [store.add_moi(recording_id, *LABELS[i][:4], LABELS[i][4]) for i in order]


def test_snapshot_content_hash_and_read_back(label_db, open_store):
    ann, dan = open_store("ann"), open_store("dan")
    add_all(ann, label_db.rec)
    snap = dan.create_snapshot("train-1")  # data scientists freeze what they train on
    assert isinstance(snap, Snapshot) and snap.num_mois == 3 and snap.created_by == "dan"
    assert len(snap.content_hash) == 64 and snap.content_hash == content_hash(snap.content)
    assert snap.query == {"recording_ids": None, "authors": None, "sources": ["human"], "regions": None}
    df = snap.mois
    assert list(df.columns) == [*SNAPSHOT_FIELDS, "start_seconds", "end_seconds"]
    assert sorted(df["start_frame"]) == [30, 40, 100]
    assert set(df["storage_uri"]) == {"file:///stores/rec_S01.zarr"} and set(df["author"]) == {"ann"}
    assert "id" not in df.columns and "version" not in df.columns
    for key in (snap.id, snap.content_hash, snap.content_hash[:12].upper()):
        again = dan.snapshot(key)
        assert (again.id, again.content_hash, again.num_mois) == (snap.id, snap.content_hash, 3)
        assert again.content == snap.content
    assert dan.snapshots()["name"].tolist() == ["train-1"]


def test_same_labels_same_hash_whatever_the_ids_order_or_history(label_db, open_store):
    ann = open_store("ann")
    first = add_all(ann, label_db.rec)
    h1 = ann.create_snapshot("one").content_hash
    # the same labels again, made in another order, after edits and deletes (other ids and versions)
    for moi in first:
        ann.delete_moi(moi.id, moi.version)
    again = add_all(ann, label_db.rec, order=(2, 0, 1))
    moved = ann.update_moi(again[0].id, again[0].version, end_frame=81)
    ann.update_moi(moved.id, moved.version, end_frame=80)
    assert ann.create_snapshot("two").content_hash == h1
    ann.add_moi(label_db.rec, "trunk", "clonic", 0, 5)
    assert ann.create_snapshot("three").content_hash != h1


def test_a_later_edit_does_not_change_an_existing_snapshot(label_db, open_store):
    ann = open_store("ann")
    mois = add_all(ann, label_db.rec)
    snap = ann.create_snapshot("frozen")
    ann.update_moi(mois[0].id, mois[0].version, end_frame=95)
    ann.delete_moi(mois[1].id, mois[1].version)
    stored = ann.snapshot(snap.id)
    assert stored.content_hash == snap.content_hash and stored.content == snap.content and stored.num_mois == 3
    assert sorted(stored.mois["end_frame"]) == [80, 90, 200]
    newer = ann.create_snapshot("after edits")
    assert newer.content_hash != snap.content_hash and newer.num_mois == 2


def test_snapshot_filters(label_db, open_store):
    ann, bea, dan, root = open_store("ann"), open_store("bea"), open_store("dan"), open_store("root")
    add_all(ann, label_db.rec)
    bea.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    root.add_moi(label_db.rec_south, "trunk", "clonic", 0, 10)
    suggestion = dan.add_suggestion(label_db.rec, "trunk", "clonic", 20, 30, 0.9, "moi-net:1")
    ann.accept_suggestion(suggestion.id, suggestion.version)
    assert dan.create_snapshot("human").num_mois == 5  # human labels only by default
    assert dan.create_snapshot("all", sources=None).num_mois == 6
    assert dan.create_snapshot("model", sources=["model"]).num_mois == 1
    assert dan.create_snapshot("bea", authors=["bea"]).num_mois == 1
    assert dan.create_snapshot("north", recording_ids=[label_db.rec]).num_mois == 4
    assert dan.create_snapshot("trunk", regions=["trunk"]).num_mois == 3
    assert ann.create_snapshot("a clinician sees her clinic").num_mois == 4
    with pytest.raises(ValidationError, match="selects no MOIs"):
        dan.create_snapshot("nothing", regions=["right lower limb"])
    with pytest.raises(ValidationError, match="unknown source 'robot'"):
        dan.create_snapshot("bad", sources=["robot"])
    with pytest.raises(ValidationError, match="needs a name"):
        dan.create_snapshot(" ")


def test_unknown_ambiguous_and_tampered_snapshots(label_db, open_store):
    ann = open_store("ann")
    add_all(ann, label_db.rec)
    snap = ann.create_snapshot("s")
    with pytest.raises(NotFoundError):
        ann.snapshot(snap.id + 100)
    with pytest.raises(NotFoundError):
        ann.snapshot("0" * 64 if not snap.content_hash.startswith("0") else "f" * 64)
    with pytest.raises(ValidationError, match="at least 8"):
        ann.snapshot(snap.content_hash[:4])
    engine = make_engine(label_db.url)
    try:
        with engine.begin() as conn:  # someone edits the table behind deepepil's back
            content = dict(snap.content, rows=snap.content["rows"][:1])
            conn.execute(sa.update(LabelSnapshot.__table__).values(content=content))
    finally:
        engine.dispose()
    with pytest.raises(IntegrityError, match="does not match its hash"):
        ann.snapshot(snap.id)


def test_the_hash_is_the_same_on_every_backend(label_db, open_store):
    # pinned: the fixture's labels give this hash on SQLite and on PostgreSQL alike (canonical JSON,
    # floats and strings as Python writes them); a change here changes every snapshot's identity
    ann = open_store("ann")
    add_all(ann, label_db.rec, order=(1, 2, 0))
    assert ann.create_snapshot("pinned").content_hash == PINNED_HASH


PINNED_HASH = "75503e858d8a34a3eec2721c8247246862e1dd8866c270d71444cc657a0988e8"


def test_a_snapshot_freezes_its_recordings_classes_and_seizures(label_db, open_store):
    # what a classifier is trained on must not move when a diagnosis or a seizure is edited later
    from deepepil.ml.tables import recording_table, seizure_table

    ann, dan = open_store("ann"), open_store("dan")
    add_all(ann, label_db.rec)
    seizure = ann.add_seizure(label_db.rec, 20, 250, localization="FLE", lateralization="left")
    snap = dan.create_snapshot("classes")
    assert snap.frozen_classes and snap.content["format"] == 2
    frozen = snap.recordings
    assert list(frozen.columns) == list(RECORDING_FIELDS) and frozen["storage_uri"].tolist() == [
        "file:///stores/rec_S01.zarr"]
    assert snap.seizures[["onset_frame", "offset_frame", "localization"]].values.tolist() == [[20, 250, "FLE"]]

    ann.update_seizure(seizure.id, seizure.version, localization="TLE", offset_frame=280)
    engine = make_engine(label_db.url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE patient SET epilepsy_type = 'focal'"))
    engine.dispose()
    again = dan.snapshot(snap.id)
    assert again.content_hash == snap.content_hash
    table = recording_table(again, label_db.url, user="dan")  # classes from the snapshot, ids from the database
    assert table.loc[0, ["syndrome", "localization", "lateralization"]].tolist() == ["FLE", "FLE", "left"]
    assert table["recording_id"].tolist() == [label_db.rec]
    assert seizure_table(again)[["onset_frame", "offset_frame"]].values.tolist() == [[20, 250]]
    live = recording_table(again.mois, label_db.url, user="dan")  # MOIs only: the database as it is now
    assert live.loc[0, ["syndrome", "localization"]].tolist() == ["focal", "TLE"]
    assert live.loc[0, "recording_id"] == label_db.rec
    assert dan.create_snapshot("after the edit").content_hash != snap.content_hash


def test_a_format_1_snapshot_still_loads_and_says_what_it_lacks(label_db, open_store):
    ann = open_store("ann")
    add_all(ann, label_db.rec)
    snap = ann.create_snapshot("v2")
    old = {"format": 1, "fields": snap.content["fields"], "rows": snap.content["rows"]}
    legacy = Snapshot(id=snap.id, name="v1", content_hash=content_hash(old), num_mois=snap.num_mois,
                      query=snap.query, created_by="ann", created_at=snap.created_at, content=old)
    assert not legacy.frozen_classes and len(legacy.mois) == 3
    with pytest.raises(ValidationError, match="froze MOIs only, not its recordings"):
        legacy.recordings
