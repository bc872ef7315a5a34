"""LabelSession: the labeling app's edits go through the label service, with conflicts, undo and faults."""

from __future__ import annotations

import datetime as dt

import pytest

from deepepil.errors import NotFoundError
from deepepil.ui.session import MOI_ROW_FIELDS, SEIZURE_ROW_FIELDS, SUGGESTION_ROW_FIELDS, LabelSession

ADD = {"region": "left upper limb", "label": "clonic", "laterality": "left", "start_frame": 5, "end_frame": 25}


def _loaded(store, recording_id: int, events: list | None = None) -> LabelSession:
    """A loaded LabelSession on ``store``; its events appended to ``events`` as ``(kind, payload)`` when given."""
    on_event = None if events is None else (lambda kind, payload: events.append((kind, payload)))
    session = LabelSession(store, recording_id, on_event=on_event)
    session.load()
    return session


@pytest.fixture
def sessions(ui_db, open_label_store):
    """``sessions(user, recording=None)``: a LabelSession as ``user`` on ``ui_db.rec``; closed after the test."""
    made = []

    def make(user: str, recording: int | None = None, events: list | None = None) -> LabelSession:
        session = _loaded(open_label_store(user), recording or ui_db.rec, events)
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()


def _ok(result: dict) -> dict:
    assert result["ok"], result["error"]
    assert result["error"] is None
    return result["changes"]


def _live_mois(store, recording_id):
    return store.mois(recording_id).set_index("id")


def test_load_gives_the_readme_row_shapes(ui_db, open_label_store, sessions):
    root = open_label_store("root")
    root.add_moi(ui_db.rec, "trunk", "tonic posturing", 0, 30)
    root.add_seizure(ui_db.rec, 3, None, seizure_type="focal aware")
    labels = sessions("ann").load()
    assert [tuple(r) for r in labels["mois"]] == [MOI_ROW_FIELDS]
    assert [tuple(r) for r in labels["suggestions"]] == [SUGGESTION_ROW_FIELDS] * 2
    assert [tuple(r) for r in labels["seizures"]] == [SEIZURE_ROW_FIELDS]
    moi, seizure = labels["mois"][0], labels["seizures"][0]
    assert moi["laterality"] is None and moi["confidence"] is None and moi["seizure_id"] is None
    assert type(moi["start_frame"]) is int and type(moi["end_frame"]) is int and moi["author"] == "root"
    assert seizure["onset_frame"] == 3 and seizure["offset_frame"] is None
    assert {s["decision"] for s in labels["suggestions"]} == {"pending"}


def test_add_resize_move_relabel_delete_are_stored(ui_db, open_label_store, sessions):
    session, check = sessions("ann"), open_label_store("root")
    changes = _ok(session.apply("add_moi", ADD))
    (row,) = changes["mois"]
    assert row["version"] == 1 and row["author"] == "ann" and row["source"] == "human"
    assert changes["mois_removed"] == [] and changes["seizures"] == []
    stored = _live_mois(check, ui_db.rec).loc[row["id"]]
    assert (stored.start_frame, stored.end_frame, stored.laterality) == (5, 25, "left")

    resized = _ok(session.apply("update_moi", {"id": row["id"], "version": 1, "changes": {"end_frame": 31}}))["mois"][0]
    moved = _ok(session.apply("update_moi", {"id": row["id"], "version": resized["version"],
                                             "changes": {"start_frame": 10, "end_frame": 36}}))["mois"][0]
    relabeled = _ok(session.apply("update_moi", {"id": row["id"], "version": moved["version"],
                                                 "changes": {"label": "myoclonic", "laterality": "bilateral"}}))
    row = relabeled["mois"][0]
    assert (row["start_frame"], row["end_frame"], row["label"], row["laterality"], row["version"]) == \
        (10, 36, "myoclonic", "bilateral", 4)
    stored = _live_mois(check, ui_db.rec).loc[row["id"]]
    assert (stored.start_frame, stored.end_frame, stored.label, stored.version) == (10, 36, "myoclonic", 4)

    removed = _ok(session.apply("delete_moi", {"id": row["id"], "version": 4}))
    assert removed["mois_removed"] == [row["id"]] and removed["mois"] == []
    assert check.mois(ui_db.rec).empty
    assert check.revisions("moi", row["id"])["action"].tolist() == ["create", "update", "update", "update", "delete"]
    assert session.status["state"] == "saved"


def test_accept_and_reject_suggestions(ui_db, open_label_store, sessions):
    session, check = sessions("ann"), open_label_store("root")
    first, second = ui_db.suggestions
    changes = _ok(session.apply("accept_suggestion", {"id": first, "version": 1}))
    (moi,) = changes["mois"]
    (suggestion,) = changes["suggestions"]
    assert (moi["source"], moi["label"], moi["start_frame"], moi["end_frame"], moi["confidence"]) == \
        ("model", "head version", 10, 20, 0.9)
    assert suggestion == {**suggestion, "id": first, "decision": "accepted", "version": 2}
    rejected = _ok(session.apply("reject_suggestion", {"id": second, "version": 1}))["suggestions"][0]
    assert rejected["decision"] == "rejected"
    stored = check.suggestions(ui_db.rec).set_index("id")
    assert stored.loc[first, "decision"] == "accepted" and stored.loc[second, "decision"] == "rejected"
    assert check.mois(ui_db.rec)["suggestion_id"].tolist() == [first]


def test_seizures_add_update_delete(ui_db, open_label_store, sessions):
    session, check = sessions("ann"), open_label_store("root")
    (seizure,) = _ok(session.apply("add_seizure", {"onset_frame": 4, "offset_frame": None,
                                                   "seizure_type": "focal aware"}))["seizures"]
    assert seizure["offset_frame"] is None and seizure["author"] == "ann"
    updated = _ok(session.apply("update_seizure", {"id": seizure["id"], "version": 1, "changes": {
        "offset_frame": 50, "awareness": "impaired awareness", "lateralization": "right", "localization": "TLE"}}))
    row = updated["seizures"][0]
    assert (row["offset_frame"], row["awareness"], row["localization"]) == (50, "impaired awareness", "TLE")
    assert check.seizures(ui_db.rec).loc[0, "offset_frame"] == 50
    gone = _ok(session.apply("delete_seizure", {"id": seizure["id"], "version": row["version"]}))
    assert gone["seizures_removed"] == [seizure["id"]]
    assert check.seizures(ui_db.rec).empty


def test_undo_and_redo_go_through_the_store(ui_db, open_label_store, sessions):
    session, check = sessions("ann"), open_label_store("root")
    assert (session.can_undo, session.can_redo) == (False, False)
    row = _ok(session.apply("add_moi", ADD))["mois"][0]
    _ok(session.apply("update_moi", {"id": row["id"], "version": 1, "changes": {"end_frame": 40}}))
    assert (session.can_undo, session.can_redo) == (True, False)

    undone = _ok(session.apply("undo"))
    assert undone["mois"][0]["end_frame"] == 25
    assert check.mois(ui_db.rec)["end_frame"].tolist() == [25]
    assert (session.can_undo, session.can_redo) == (True, True)
    assert _ok(session.apply("undo"))["mois_removed"] == [row["id"]]
    assert check.mois(ui_db.rec).empty
    assert session.can_undo is False

    assert _ok(session.apply("redo"))["mois"][0]["id"] == row["id"]
    assert _ok(session.apply("redo"))["mois"][0]["end_frame"] == 40
    assert check.mois(ui_db.rec)["end_frame"].tolist() == [40]
    nothing = session.apply("redo")
    assert nothing["ok"] is False and nothing["error"]["kind"] == "validation"
    assert "nothing to redo" in nothing["error"]["message"]

    # accepting a suggestion is one change: one undo takes back the MOI and the decision
    _ok(session.apply("accept_suggestion", {"id": ui_db.suggestions[0], "version": 1}))
    back = _ok(session.apply("undo"))
    assert back["suggestions"][0]["decision"] == "pending" and len(back["mois_removed"]) == 1


def test_undo_never_reaches_into_another_recording(ui_db, open_label_store, sessions, store_copy):
    other, _ = store_copy("other")
    session = sessions("ann")
    _ok(session.apply("add_moi", ADD))
    open_label_store("ann").add_moi(other, "trunk", "clonic", 0, 10)
    session.poll()
    assert session.can_undo is False
    result = session.apply("undo")
    assert result["error"]["kind"] == "validation"
    assert f"recording {other}" in result["error"]["message"]
    assert len(open_label_store("root").mois(ui_db.rec)) == 1


def test_conflict_between_two_clinicians_and_its_resolution(ui_db, open_label_store, sessions):
    ann, bea, check = sessions("ann"), sessions("bea"), open_label_store("root")
    row = _ok(ann.apply("add_moi", ADD))["mois"][0]
    _ok(bea.apply("update_moi", {"id": row["id"], "version": 1, "changes": {"end_frame": 30}}))

    result = ann.apply("update_moi", {"id": row["id"], "version": 1, "changes": {"end_frame": 40}})
    assert result["ok"] is False
    error = result["error"]
    assert error["kind"] == "conflict" and "bea" in error["message"]
    assert error["current"]["end_frame"] == 30 and error["current"]["version"] == 2
    assert set(MOI_ROW_FIELDS) <= set(error["current"])
    # the conflict dialog says who changed it and when
    assert error["current"]["updated_by"] == "bea"
    changed_at = dt.datetime.fromisoformat(error["current"]["updated_at"])
    assert abs((dt.datetime.now(dt.timezone.utc) - changed_at).total_seconds()) < 300
    assert check.mois(ui_db.rec)["end_frame"].tolist() == [30]
    assert ann.status["state"] == "conflict"

    mine = _ok(ann.apply("resolve_conflict", {"table": "moi", "id": row["id"], "choice": "mine"}))
    assert mine["mois"][0]["end_frame"] == 40 and mine["mois"][0]["version"] == 3
    assert check.mois(ui_db.rec)["end_frame"].tolist() == [40]
    assert ann.status["state"] == "saved"

    # the other way round: bea's stale delete, then she keeps the stored row ("theirs")
    gone = bea.apply("delete_moi", {"id": row["id"], "version": 2})
    assert gone["error"]["kind"] == "conflict"
    theirs = _ok(bea.apply("resolve_conflict", {"table": "mois", "id": row["id"], "choice": "theirs",
                                                "changes": {}}))
    assert theirs["mois"][0]["end_frame"] == 40 and theirs["mois_removed"] == []
    assert len(check.mois(ui_db.rec)) == 1


def test_resolving_mine_restores_a_row_the_other_deleted(ui_db, open_label_store, sessions):
    ann, bea, check = sessions("ann"), sessions("bea"), open_label_store("root")
    row = _ok(ann.apply("add_moi", ADD))["mois"][0]
    _ok(bea.apply("delete_moi", {"id": row["id"], "version": 1}))
    result = ann.apply("update_moi", {"id": row["id"], "version": 1, "changes": {"label": "myoclonic"}})
    assert result["error"]["kind"] == "conflict" and result["error"]["current"]["deleted"] is True
    kept = _ok(ann.apply("resolve_conflict", {"table": "moi", "id": row["id"], "choice": "mine",
                                              "changes": {"label": "myoclonic"}}))
    assert kept["mois"][0]["label"] == "myoclonic"
    assert check.mois(ui_db.rec)["label"].tolist() == ["myoclonic"]


@pytest.mark.parametrize("op, args, expected", [
    ("add_moi", {**ADD, "end_frame": 61}, "end_frame 61 is outside the recording"),
    ("add_moi", {**ADD, "start_frame": -1}, "start_frame -1 is outside the recording"),
    ("add_moi", {**ADD, "end_frame": 5}, "must be after start_frame"),
    ("add_moi", {**ADD, "label": "wiggling"}, "unknown label 'wiggling'"),
    ("add_moi", {**ADD, "region": "tail"}, "unknown region 'tail'"),
    ("add_moi", {**ADD, "start_frame": 1.5}, "integer frame index"),
    ("add_moi", {"region": "trunk", "label": "clonic"}, "add_moi needs start_frame, end_frame"),
    ("add_moi", {**ADD, "colour": "red"}, "add_moi does not take ['colour']"),
    ("update_moi", {"changes": {"end_frame": 9}}, "needs the row's id and version"),
    ("add_seizure", {"onset_frame": 70}, "onset_frame 70 is outside the recording"),
    ("add_seizure", {"onset_frame": 1, "seizure_type": "grand mal"}, "unknown seizure_type 'grand mal'"),
    ("dance", {}, "unknown edit op 'dance'"),
    ("undo", {}, "nothing to undo"),
])
def test_invalid_edits_are_refused_and_nothing_is_stored(ui_db, open_label_store, sessions, op, args, expected):
    session, check = sessions("ann"), open_label_store("root")
    result = session.apply(op, args)
    assert result["ok"] is False
    assert result["error"]["kind"] == "validation"
    assert expected in result["error"]["message"]
    assert check.mois(ui_db.rec).empty and check.seizures(ui_db.rec).empty
    assert check.revisions("moi").empty
    assert session.status["state"] == "idle"  # a refused edit is not a save error


def test_an_identical_moi_is_refused(ui_db, open_label_store, sessions):
    session = sessions("ann")
    _ok(session.apply("add_moi", ADD))
    again = session.apply("add_moi", ADD)
    assert again["error"]["kind"] == "validation" and "identical MOI exists already" in again["error"]["message"]
    assert len(open_label_store("root").mois(ui_db.rec)) == 1
    assert session.status["state"] == "saved"


def test_rows_of_another_recording_are_refused(ui_db, open_label_store, sessions):
    other = open_label_store("root").add_moi(ui_db.rec_south, "trunk", "clonic", 0, 10)
    session = sessions("root")
    result = session.apply("update_moi", {"id": other.id, "version": 1, "changes": {"end_frame": 12}})
    assert result["error"]["kind"] == "validation" and "not to the open recording" in result["error"]["message"]
    assert open_label_store("root").moi(other.id).end_frame == 10


def test_access_is_checked_by_the_service(ui_db, open_label_store, sessions):
    with pytest.raises(NotFoundError):
        LabelSession(open_label_store("carl"), ui_db.rec)  # another clinic's recording is not visible
    scientist = sessions("dan")
    result = scientist.apply("add_moi", ADD)
    assert result["error"]["kind"] == "denied" and "clinician or admin" in result["error"]["message"]
    assert open_label_store("root").mois(ui_db.rec).empty


def test_poll_pushes_the_other_clinicians_changes_only(ui_db, open_label_store, sessions):
    events: list = []
    ann, bea = sessions("ann", events=events), sessions("bea")
    mine = _ok(ann.apply("add_moi", ADD))["mois"][0]
    assert ann.poll() is None  # ann's own change is known to her front end already
    theirs = _ok(bea.apply("add_moi", {**ADD, "label": "myoclonic"}))["mois"][0]
    _ok(bea.apply("update_moi", {"id": mine["id"], "version": 1, "changes": {"end_frame": 33}}))
    _ok(bea.apply("accept_suggestion", {"id": ui_db.suggestions[0], "version": 1}))
    changes = ann.poll()
    assert {r["id"]: r["version"] for r in changes["mois"]} == {
        theirs["id"]: 1, mine["id"]: 2, theirs["id"] + 1: 1}
    assert [s["decision"] for s in changes["suggestions"]] == ["accepted"]
    assert ("labels_changed", changes) in events
    _ok(bea.apply("delete_moi", {"id": theirs["id"], "version": 1}))
    open_label_store("root").add_moi(ui_db.rec_south, "trunk", "clonic", 0, 10)  # another recording: not pushed
    assert ann.poll()["mois_removed"] == [theirs["id"]]
    assert ann.poll() is None


def test_the_background_thread_pushes_changes(ui_db, open_label_store, sessions):
    import threading

    arrived = threading.Event()
    events: list = []

    def on_event(kind, payload):
        events.append((kind, payload))
        if kind == "labels_changed":
            arrived.set()

    ann = sessions("ann")
    ann.on_event = on_event
    ann.start(poll_seconds=0.1)
    sessions("bea").apply("add_moi", ADD)
    assert arrived.wait(10), events
    ann.close()
    assert not any(t.name.startswith("deepepil-labels") for t in threading.enumerate())


def test_database_unreachable_edits_are_kept_and_land_once_in_order(private_postgres, tiny_stores):
    from deepepil.labels.service import connect

    db, server = private_postgres
    events: list = []
    with connect(db.url, user="ann") as store, connect(db.url, user="root") as check:
        session = _loaded(store, db.rec, events)
        row = _ok(session.apply("add_moi", ADD))["mois"][0]

        server.pause()
        first = session.apply("update_moi", {"id": row["id"], "version": 1, "changes": {"end_frame": 30}})
        assert first["ok"] is False and first["error"]["kind"] == "offline" and first["error"]["queued"] is True
        assert "not saved yet" in first["error"]["message"]
        assert session.status["state"] == "offline" and session.status["pending"] == 1
        assert any(kind == "notify" and payload["level"] == "error" for kind, payload in events)
        # made on the row as the clinician sees it (version 1): rebased on the queued edit's version
        second = session.apply("update_moi", {"id": row["id"], "version": 1, "changes": {"label": "myoclonic"}})
        added = session.apply("add_moi", {**ADD, "region": "trunk"})
        refused = session.apply("redo")
        assert second["error"]["queued"] and added["error"]["queued"] and not refused["error"]["queued"]
        assert session.status["pending"] == 3 and session.can_undo is True and session.can_redo is False
        assert session.poll() is None and session.status["state"] == "offline"
        assert not any(kind == "status" and payload["state"] == "saved" for kind, payload in events[2:])

        server.resume()
        events.clear()
        assert session.flush() is True
        landed = [payload for kind, payload in events if kind == "labels_changed"]
        assert len(landed) == 1
        versions = {r["id"]: (r["version"], r["end_frame"], r["label"]) for r in landed[0]["mois"]}
        assert versions[row["id"]] == (3, 30, "myoclonic")
        stored = check.mois(db.rec)
        assert sorted(stored["region"]) == ["left upper limb", "trunk"]
        assert check.revisions("moi", row["id"])["action"].tolist() == ["create", "update", "update"]
        assert session.status == {**session.status, "state": "saved", "pending": 0}
        assert session.flush() is True and len(check.mois(db.rec)) == 2  # nothing lands twice
        session.close()


def test_undo_while_offline_takes_back_the_last_kept_edit(private_postgres):
    from deepepil.labels.service import connect

    db, server = private_postgres
    with connect(db.url, user="ann") as store, connect(db.url, user="root") as check:
        session = _loaded(store, db.rec)
        server.pause()
        assert session.apply("add_moi", ADD)["error"]["queued"]
        assert session.apply("add_moi", {**ADD, "region": "trunk"})["error"]["queued"]
        assert session.apply("undo")["ok"] is True
        assert session.pending == 1
        server.resume()
        assert session.flush()
        assert check.mois(db.rec)["region"].tolist() == ["left upper limb"]


def test_a_kept_edit_that_conflicts_when_it_lands_is_reported(private_postgres):
    from deepepil.labels.service import connect

    db, server = private_postgres
    events: list = []
    with connect(db.url, user="ann") as store, connect(db.url, user="bea") as bea:
        session = _loaded(store, db.rec, events)
        row = _ok(session.apply("add_moi", ADD))["mois"][0]
        server.pause()
        assert session.apply("delete_moi", {"id": row["id"], "version": 1})["error"]["queued"]
        server.resume()
        bea.update_moi(row["id"], 1, end_frame=40)  # bea got there first
        events.clear()
        assert session.flush() is True
        texts = [payload["text"] for kind, payload in events if kind == "notify"]
        assert any("could not be saved" in text and "bea" in text for text in texts)
        assert session.status["state"] == "conflict"
        pushed = [payload for kind, payload in events if kind == "labels_changed"]
        assert pushed and pushed[0]["mois"][0]["end_frame"] == 40
        assert bea.moi(row["id"]).deleted is False
        # the clinician decides: her delete, at the current version
        _ok(session.apply("resolve_conflict", {"table": "moi", "id": row["id"], "choice": "mine"}))
        assert bea.moi(row["id"]).deleted is True
