"""LabelingApp without a browser: traits, and the front end's messages delivered through the widget's comm path."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import sqlalchemy as sa

from deepepil.errors import DeepEpilError
from deepepil.labels.db import make_engine
from deepepil.labels.service import connect
from deepepil.ui import LabelingApp, LabelSession

ROOT = Path(__file__).resolve().parents[2]
ADD = {"region": "left upper limb", "label": "clonic", "laterality": "left", "start_frame": 5, "end_frame": 25}
GENERATED_CODE = re.compile(r"^P-[A-Z2-7]{8}$")


def edit(ask, app, op, **args):
    return ask(app, {"type": "edit", "op": op, "args": args})


def pushed(app, kind):
    return [content for content, _ in app.sent if content.get("type") == kind and "req" not in content]


def opened(ask, app, recording_id):
    reply = ask(app, {"type": "open", "recording_id": recording_id})
    assert reply == {"type": "opened", "req": reply["req"], "ok": True, "error": None}
    return reply


def test_the_prepared_notebook_is_one_cell_without_outputs():
    nb = nbformat.read(ROOT / "notebooks" / "labeling.ipynb", as_version=4)
    assert len(nb.cells) == 1 and nb.cells[0].cell_type == "code"
    assert nb.cells[0].source == "from deepepil.ui import LabelingApp\nLabelingApp()"
    assert nb.cells[0].outputs == [] and nb.cells[0].execution_count is None


def test_the_prepared_notebook_runs_in_a_kernel(ui_sqlite_db, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("DEEPEPIL_DATABASE_URL", ui_sqlite_db.url)
    monkeypatch.setenv("DEEPEPIL_USER", "ann")
    nb = nbformat.read(ROOT / "notebooks" / "labeling.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    (output,) = nb.cells[0].outputs
    assert output.output_type == "execute_result"
    assert "application/vnd.jupyter.widget-view+json" in output.data
    assert "LabelingApp ann (clinician, North)" in output.data["text/plain"]


def test_no_arguments_reads_the_environment(ui_db, monkeypatch, tiny_stores):
    monkeypatch.setenv("DEEPEPIL_DATABASE_URL", ui_db.url)
    monkeypatch.setenv("DEEPEPIL_USER", "ann")
    monkeypatch.setenv("DEEPEPIL_STORE", str(tiny_stores[0].parent))
    app = LabelingApp(poll_seconds=0)
    try:
        assert app.user == {"username": "ann", "role": "clinician", "clinic": "North"}
        assert app.screen == "landing" and app.recording is None and app.status["state"] == "idle"
        assert app.recordings_root == tiny_stores[0].parent
        vocab = app.vocabulary
        assert "left upper limb" in vocab["regions"] and "clonic" in vocab["labels"]["trunk"]
        assert vocab["lateralization"] == ["left", "right", "bilateral"] and "TLE" in vocab["localization"]
        assert "focal aware" in vocab["seizure_type"] and "aware" in vocab["awareness"]
    finally:
        app.close()


def test_the_embedded_database_registers_the_local_stores(tmp_path, monkeypatch, tiny_stores, recorded, ask):
    """No database named (the demo): the SQLite default is created and DEEPEPIL_STORE's stores listed."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("DEEPEPIL_STORE", str(tiny_stores[0].parent))
    monkeypatch.setenv("DEEPEPIL_USER", "clinician1")
    app = LabelingApp(poll_seconds=0)
    try:
        assert (tmp_path / "data" / "deepepil" / "labels.sqlite").exists()
        assert app.user == {"username": "clinician1", "role": "admin", "clinic": None}
        assert sorted(r["name"] for r in app.recordings) == ["north", "south"]
        assert {r["clinic"] for r in app.recordings} == {"Local"}
        assert {r["patient_code"] for r in app.recordings} == {"SYN-4OAMYS"}  # the synthetic patient's code
        recorded(app)
        created = ask(app, {"type": "patient", "op": "create", "fields": {"sex": "female"}})
        assert created["ok"] and created["patient"]["clinic"] == "Local"
    finally:
        app.close()
    again = LabelingApp(poll_seconds=0)  # a second start registers nothing twice
    try:
        assert len(again.recordings) == 2
    finally:
        again.close()


def test_landing_list_shows_the_clinicians_clinic_only(ui_db, make_app, ask, open_label_store):
    ann = make_app("ann")
    assert [(r["id"], r["patient_code"], r["clinic"], r["status"]) for r in ann.recordings] == [
        (ui_db.rec, "SYN-NORTH1", "North", "new")]
    row = ann.recordings[0]
    assert row["streams"] == ["rgb", "ir", "depth"] and row["n_mois"] == 0 and row["duration_seconds"] == 2.0
    carl = make_app("carl")
    assert [r["id"] for r in carl.recordings] == [ui_db.rec_south]
    assert sorted(r["id"] for r in make_app("root").recordings) == [ui_db.rec, ui_db.rec_south]

    open_label_store("bea").add_moi(ui_db.rec, "trunk", "clonic", 0, 10)
    engine = make_engine(ui_db.url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE recording SET status = 'done' WHERE id = :id"), {"id": ui_db.rec_south})
    engine.dispose()
    reply = ask(ann, {"type": "refresh"})
    assert reply["type"] == "refreshed" and reply["ok"]
    assert [(r["status"], r["n_mois"]) for r in ann.recordings] == [("in_progress", 1)]
    ask(carl, {"type": "refresh"})
    assert [r["status"] for r in carl.recordings] == ["done"]


def test_open_shows_progress_then_the_recording_and_its_labels(ui_db, make_app, ask, open_label_store):
    open_label_store("bea").add_moi(ui_db.rec, "trunk", "clonic", 0, 10)
    app = make_app("ann")
    progress = []
    app.observe(lambda change: progress.append(change["new"]), "loading")
    opened(ask, app, ui_db.rec)
    steps = [p["message"] for p in progress if p["active"]]
    assert steps[0] == "Finding the recording" and "Reading the labels" in steps
    fractions = [p["fraction"] for p in progress if p["active"]]
    assert fractions == sorted(fractions) and progress[-1] == {"active": False, "message": "", "fraction": None}
    rec = app.recording
    assert (rec["id"], rec["name"], rec["patient_code"], rec["fps"], rec["n_frames"]) == \
        (ui_db.rec, "north", "SYN-NORTH1", 30.0, 60)
    assert rec["streams"] == [{"name": "rgb", "width": 96, "height": 54}, {"name": "ir", "width": 64, "height": 53},
                              {"name": "depth", "width": 64, "height": 53}]
    assert set(rec["display"]) == {"depth_range_mm", "ir_range"}
    assert app.screen == "labeling"
    assert [m["label"] for m in app.labels["mois"]] == ["clonic"]
    assert [s["id"] for s in app.labels["suggestions"]] == list(ui_db.suggestions)
    assert app.patient["code"] == "SYN-NORTH1" and app.patient["complete"] is False
    json.dumps([app.recording, app.labels, app.patient, app.vocabulary, app.recordings])  # all JSON-ready


def test_frames_are_answered_as_image_buffers(ui_db, make_app, ask):
    app = make_app("ann")
    early = ask(app, {"type": "frames", "stream": "ir", "indices": [0]})
    assert early["error"] == "no recording is open"
    opened(ask, app, ui_db.rec)
    reply = ask(app, {"type": "frames", "stream": "depth", "indices": [0, 59, 60], "format": "png"})
    assert reply["type"] == "frames" and reply["mime"] == "image/png" and list(reply["errors"]) == ["60"]
    buffers = next(b for c, b in app.sent if c is reply)
    assert len(buffers) == 2 and all(bytes(b).startswith(b"\x89PNG") for b in buffers)


def test_edits_through_messages_are_stored(ui_db, make_app, ask, open_label_store):
    app, check = make_app("ann"), open_label_store("root")
    opened(ask, app, ui_db.rec)
    statuses = []
    app.observe(lambda change: statuses.append(change["new"]["state"]), "status")
    reply = edit(ask, app, "add_moi", **ADD)
    assert reply["type"] == "edit_result" and reply["ok"] and reply["error"] is None
    moi = reply["changes"]["mois"][0]
    assert statuses == ["saving", "saved"] and app.can_undo is True
    moi = edit(ask, app, "update_moi", id=moi["id"], version=1, changes={"end_frame": 40})["changes"]["mois"][0]
    moi = edit(ask, app, "update_moi", id=moi["id"], version=2,
               changes={"start_frame": 15, "end_frame": 50})["changes"]["mois"][0]
    moi = edit(ask, app, "update_moi", id=moi["id"], version=3,
               changes={"label": "myoclonic", "laterality": None})["changes"]["mois"][0]
    stored = check.moi(moi["id"])
    assert (stored.start_frame, stored.end_frame, stored.label, stored.laterality, stored.version) == \
        (15, 50, "myoclonic", None, 4)
    accepted = edit(ask, app, "accept_suggestion", id=ui_db.suggestions[0], version=1)["changes"]
    assert accepted["suggestions"][0]["decision"] == "accepted" and accepted["mois"][0]["source"] == "model"
    rejected = edit(ask, app, "reject_suggestion", id=ui_db.suggestions[1], version=1)["changes"]
    assert rejected["suggestions"][0]["decision"] == "rejected"
    assert edit(ask, app, "delete_moi", id=moi["id"], version=4)["changes"]["mois_removed"] == [moi["id"]]
    assert check.mois(ui_db.rec)["source"].tolist() == ["model"]

    undone = edit(ask, app, "undo")["changes"]
    assert undone["mois"][0]["id"] == moi["id"] and app.can_redo is True
    assert sorted(check.mois(ui_db.rec)["source"]) == ["human", "model"]
    assert edit(ask, app, "redo")["changes"]["mois_removed"] == [moi["id"]]
    assert check.mois(ui_db.rec)["source"].tolist() == ["model"]
    assert app.status["state"] == "saved" and app.can_redo is False


def test_validation_errors_are_clear_and_store_nothing(ui_db, make_app, ask, open_label_store):
    app, check = make_app("ann"), open_label_store("root")
    opened(ask, app, ui_db.rec)
    cases = [
        ({**ADD, "end_frame": 600}, "outside the recording", "allowed is 0 <= start_frame < end_frame <= 60"),
        ({**ADD, "label": "clonik"}, "unknown label 'clonik'", "closest valid MOI labels: 'clonic'"),
        ({**ADD, "laterality": "up"}, "unknown laterality 'up'", "'left', 'right', 'bilateral'"),
    ]
    for args, what, allowed in cases:
        reply = edit(ask, app, "add_moi", **args)
        assert reply["ok"] is False and reply["error"]["kind"] == "validation"
        assert what in reply["error"]["message"] and allowed in reply["error"]["message"]
    assert edit(ask, app, "add_moi", **ADD)["ok"]
    duplicate = edit(ask, app, "add_moi", **ADD)
    assert "identical MOI exists already" in duplicate["error"]["message"]
    assert len(check.mois(ui_db.rec)) == 1 and app.status["state"] == "saved"


def test_messages_never_raise_into_the_comm(ui_db, make_app, ask):
    app = make_app("ann")
    before = ask(app, {"type": "edit", "op": "add_moi", "args": ADD})
    assert before["ok"] is False and "no recording is open" in before["error"]["message"]
    assert ask(app, {"type": "dance"})["error"]["message"].startswith("unknown message type 'dance'")
    assert ask(app, {"type": "open", "recording_id": "north"})["error"]["kind"] == "validation"
    missing = ask(app, {"type": "open", "recording_id": 999})
    assert missing["ok"] is False and "recording 999 does not exist" in missing["error"]["message"]
    south = ask(app, {"type": "open", "recording_id": ui_db.rec_south})
    assert "not visible to ann" in south["error"]["message"]
    opened(ask, app, ui_db.rec)
    assert edit(ask, app, "update_moi", id="x", version=1, changes={})["error"]["kind"] == "validation"
    assert ask(app, {"type": "edit", "op": "add_moi", "args": [1, 2]})["error"]["kind"] == "validation"
    assert ask(app, {"type": "frames", "stream": "eeg", "indices": [0]})["error"].startswith("recording 'north' has no")
    app._handle_msg({"content": {"data": {"method": "custom", "content": "garbage"}}, "buffers": []})
    assert app.sent[-1][0]["ok"] is False


def test_the_playhead_frame_comes_from_the_front_end(ui_db, make_app, ask):
    app = make_app("ann")
    opened(ask, app, ui_db.rec)
    app._handle_msg({"content": {"data": {"method": "update", "state": {"frame": 42}, "buffer_paths": []}},
                     "buffers": []})
    assert app.frame == 42
    assert repr(app) == ("<LabelingApp ann (clinician, North): recording 1 'north' at frame 42 of 60, 0 MOI(s) at "
                         "open; idle>").replace("recording 1", f"recording {ui_db.rec}")


def test_two_clinicians_conflict_and_resolve(ui_db, make_app, ask, open_label_store):
    ann, bea, check = make_app("ann"), make_app("bea"), open_label_store("root")
    opened(ask, ann, ui_db.rec)
    opened(ask, bea, ui_db.rec)
    moi = edit(ask, ann, "add_moi", **ADD)["changes"]["mois"][0]
    ann.session.poll(), bea.session.poll()
    assert [c["changes"]["mois"][0]["id"] for c in pushed(bea, "labels_changed")] == [moi["id"]]
    assert pushed(ann, "labels_changed") == []  # her own edit came back in the reply

    assert edit(ask, bea, "update_moi", id=moi["id"], version=1, changes={"end_frame": 30})["ok"]
    clash = edit(ask, ann, "update_moi", id=moi["id"], version=1, changes={"end_frame": 45})
    assert clash["ok"] is False and clash["error"]["kind"] == "conflict"
    assert clash["error"]["current"]["end_frame"] == 30 and "bea" in clash["error"]["message"]
    assert ann.status["state"] == "conflict"
    resolved = edit(ask, ann, "resolve_conflict", table="mois", id=moi["id"], choice="mine",
                    changes={"end_frame": 45})
    assert resolved["ok"] and resolved["changes"]["mois"][0]["end_frame"] == 45
    assert check.moi(moi["id"]).end_frame == 45 and ann.status["state"] == "saved"

    stale = edit(ask, bea, "delete_moi", id=moi["id"], version=2)
    assert stale["error"]["kind"] == "conflict"
    theirs = edit(ask, bea, "resolve_conflict", table="mois", id=moi["id"], choice="theirs", changes={})
    assert theirs["changes"]["mois"][0]["end_frame"] == 45 and check.moi(moi["id"]).deleted is False


def test_restart_comes_back_exactly_as_saved(ui_db, make_app, ask):
    app = make_app("ann")
    opened(ask, app, ui_db.rec)
    moi = edit(ask, app, "add_moi", **ADD)["changes"]["mois"][0]
    edit(ask, app, "update_moi", id=moi["id"], version=1, changes={"end_frame": 33})
    edit(ask, app, "accept_suggestion", id=ui_db.suggestions[0], version=1)
    edit(ask, app, "add_seizure", onset_frame=2, offset_frame=58, seizure_type="focal aware")
    edit(ask, app, "add_moi", **{**ADD, "region": "trunk"})
    edit(ask, app, "undo")
    app.close()  # the kernel restarts: nothing of the old app survives

    again = make_app("ann", recording_id=ui_db.rec)
    with connect(ui_db.url, user="ann") as store:
        saved = LabelSession(store, ui_db.rec).load()
    assert again.labels == saved
    assert [(m["end_frame"], m["source"]) for m in again.labels["mois"]] == [(33, "human"), (20, "model")]
    assert again.labels["seizures"][0]["offset_frame"] == 58
    assert again.can_undo is True and again.can_redo is True  # the undo history lives in the database too
    assert again.screen == "labeling"


def test_recording_id_that_cannot_be_opened_raises(ui_db, make_app):
    with pytest.raises(DeepEpilError, match="recording 999 does not exist"):
        make_app("ann", recording_id=999)


def test_a_recording_without_rgb_opens_with_its_streams(ui_db, make_app, ask, tmp_path):
    import deepepil
    from deepepil.labels import catalog
    from deepepil.synthetic.patient import make_cohort_profiles
    from deepepil.synthetic.recording import make_recording

    source = make_recording(make_cohort_profiles(1, 0)[0], seconds=1.0, size="tiny", seed=0)
    path = deepepil.ingest(source, tmp_path, name="ir_depth", streams=["ir", "depth"], progress=False)
    rec = catalog.register_recording(path, "North", None, ui_db.url, user="root")
    app = make_app("ann")
    opened(ask, app, rec)
    assert [s["name"] for s in app.recording["streams"]] == ["ir", "depth"]
    rgb = ask(app, {"type": "frames", "stream": "rgb", "indices": [0]})
    assert "has no stream 'rgb'; it has: ir, depth" in rgb["error"]


@pytest.mark.parametrize("damage, expected", [
    ("remove", "no recording store here"),
    ("truncate", "ir/c/1/0/0 has"),
    ("drop_stream", "missing file depth/"),
    ("replace_manifest", "differs from the one registered in the catalog"),
])
def test_a_recording_that_fails_to_open_is_reported(ui_db, make_app, ask, store_copy, damage, expected):
    from deepepil.recordings.store import write_manifest

    rec, path = store_copy("damaged")
    if damage == "remove":
        shutil.rmtree(path)
    elif damage == "truncate":
        chunk = path / "ir" / "c" / "1" / "0" / "0"
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    elif damage == "drop_stream":
        shutil.rmtree(path / "depth")
    else:
        (path / "ir" / "zarr.json").write_text((path / "ir" / "zarr.json").read_text().replace("uint16", "uint16 "))
        write_manifest(path)
    app = make_app("ann")
    reply = ask(app, {"type": "open", "recording_id": rec})
    assert reply["ok"] is False
    assert reply["error"]["message"].startswith(f"cannot open recording {rec} (north): ")
    assert expected in reply["error"]["message"] and str(path) in reply["error"]["message"]
    assert pushed(app, "notify")[-1] == {"type": "notify", "level": "error", "text": reply["error"]["message"]}
    assert app.loading == {"active": False, "message": reply["error"]["message"], "fraction": None}
    assert app.screen == "landing" and app.recording is None and app.session is None


def test_patient_form_creates_and_updates_pseudonymous_patients(ui_db, make_app, ask):
    app = make_app("ann")
    created = ask(app, {"type": "patient", "op": "create", "fields": {
        "sex": "male", "age_at_recording_years": 41, "epilepsy_type": "focal", "localization_hypothesis": "TLE",
        "lateralization_hypothesis": "left", "imaging_finding": "left hippocampal sclerosis", "notes": None}})
    assert created["type"] == "patient_result" and created["ok"], created["error"]
    patient = created["patient"]
    assert GENERATED_CODE.match(patient["code"]) and patient["clinic"] == "North" and patient["complete"] is True
    assert patient["fields"]["age_at_recording_years"] == 41

    identifying = ask(app, {"type": "patient", "op": "create", "fields": {"name": "Jane Doe", "sex": "female"}})
    assert identifying["ok"] is False and "'name' cannot be stored: patients are pseudonymous" in \
        identifying["error"]["message"]
    bad = ask(app, {"type": "patient", "op": "update", "id": patient["id"],
                    "fields": {"age_at_recording_years": 200, "sex": "yes"}})
    assert set(bad["error"]["fields"]) == {"age_at_recording_years", "sex"}

    opened(ask, app, ui_db.rec)
    updated = ask(app, {"type": "patient", "op": "update", "fields": {"sex": "female", "age_at_recording_years": "7"}})
    assert updated["ok"] and app.patient["fields"]["sex"] == "female" and app.patient["version"] == 2
    engine = make_engine(ui_db.url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT code, sex, age_at_recording_years FROM patient ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("SYN-NORTH1", "female", 7), ("SYN-SOUTH1", None, None),
                                        (patient["code"], "male", 41)]
    denied = ask(make_app("dan"), {"type": "patient", "op": "create", "fields": {}})
    assert denied["error"]["kind"] == "denied"


def test_close_goes_back_to_the_landing_list(ui_db, make_app, ask):
    app = make_app("ann")
    opened(ask, app, ui_db.rec)
    edit(ask, app, "add_moi", **ADD)
    reply = ask(app, {"type": "close"})
    assert reply["type"] == "closed" and reply["ok"]
    assert app.screen == "landing" and app.recording is None and app.session is None
    assert app.labels == {"mois": [], "suggestions": [], "seizures": [], "keypoints": []}
    assert app.recordings[0]["status"] == "in_progress"


def test_an_unreachable_database_at_start_is_shown_not_raised(recorded, ask):
    app = LabelingApp("postgresql+psycopg2://nobody@127.0.0.1:9/nothing", user="ann", poll_seconds=0)
    try:
        recorded(app)
        assert app.status["state"] == "offline" and "cannot connect to the label database" in app.status["message"]
        assert app.recordings == [] and app.store is None
        reply = ask(app, {"type": "refresh"})
        assert reply["ok"] is False and reply["error"]["kind"] == "offline"
        assert "cannot be reached" in reply["error"]["message"]
    finally:
        app.close()


def test_database_lost_mid_session_is_shown_at_once_and_kept_edits_land_once(private_postgres, ask, recorded):
    db, server = private_postgres
    app = LabelingApp(db.url, user="ann", poll_seconds=0)
    recorded(app)
    states = []
    app.observe(lambda change: states.append(change["new"]["state"]), "status")
    try:
        opened(ask, app, db.rec)
        moi = edit(ask, app, "add_moi", **ADD)["changes"]["mois"][0]
        server.pause()
        app.session.poll()  # the background thread's look at the database
        assert app.status["state"] == "offline" and states[-1] == "offline"
        assert "cannot be reached" in pushed(app, "notify")[-1]["text"]
        states.clear()
        kept = edit(ask, app, "update_moi", id=moi["id"], version=1, changes={"end_frame": 44})
        assert kept["ok"] is False and kept["error"]["kind"] == "offline" and kept["error"]["queued"]
        added = edit(ask, app, "add_moi", **{**ADD, "region": "trunk"})
        assert added["error"]["queued"] and app.status["pending"] == 2
        assert "saved" not in states and set(states) <= {"offline"}
        closing = ask(app, {"type": "close"})
        assert closing["ok"] is False and "2 change(s) are not saved yet" in closing["error"]["message"]

        server.resume()
        app.session.poll()
        landed = pushed(app, "labels_changed")
        assert len(landed) == 1
        assert sorted((m["region"], m["end_frame"]) for m in landed[0]["changes"]["mois"]) == [
            ("left upper limb", 44), ("trunk", 25)]
        assert app.status == {"state": "saved", "message": app.status["message"], "pending": 0}
        with connect(db.url, user="root") as check:
            assert sorted(check.mois(db.rec)["end_frame"]) == [25, 44]
            assert len(check.revisions("moi")) == 3
        assert ask(app, {"type": "close"})["ok"]
    finally:
        app.close()


def test_shortcuts_are_the_defaults_with_the_users_changes(ui_db, make_app, monkeypatch, tmp_path):
    from deepepil.errors import ValidationError
    from deepepil.ui.shortcuts import DEFAULT_SHORTCUTS, SHORTCUT_GROUPS

    monkeypatch.setenv("HOME", str(tmp_path))
    app = make_app("ann")
    assert app.shortcuts["play_pause"] == DEFAULT_SHORTCUTS["play_pause"] and app.shortcut_groups == SHORTCUT_GROUPS
    assert make_app("ann", shortcuts={"play_pause": "k"}).shortcuts["play_pause"] == "k"
    with pytest.raises(ValidationError, match="unknown shortcut action"):
        make_app("ann", shortcuts={"fly": "f"})
    (tmp_path / ".deepepil").mkdir()
    (tmp_path / ".deepepil" / "shortcuts.json").write_text("{not json")
    broken = make_app("ann")  # a clinician's broken file must not keep the app from starting
    assert broken.shortcuts["play_pause"] == DEFAULT_SHORTCUTS["play_pause"]
    assert "shortcut file was not used" in broken.status["message"]


def test_an_open_label_store_can_be_given(ui_db, open_label_store, recorded, ask):
    store = open_label_store("bea")
    app = LabelingApp(store=store, poll_seconds=0)
    recorded(app)
    try:
        assert app.user["username"] == "bea" and app.store is store
        opened(ask, app, ui_db.rec)
        assert edit(ask, app, "add_moi", **ADD)["changes"]["mois"][0]["author"] == "bea"
    finally:
        app.close()
    assert len(store.mois(ui_db.rec)) == 1  # the caller's store stays open


def test_refresh_connects_once_the_database_is_back(private_postgres, recorded, ask):
    db, server = private_postgres
    server.pause()
    app = LabelingApp(db.url, user="ann", poll_seconds=0)
    recorded(app)
    try:
        assert app.status["state"] == "offline" and app.recordings == []
        assert ask(app, {"type": "open", "recording_id": db.rec})["error"]["kind"] == "offline"
        server.resume()
        reply = ask(app, {"type": "refresh"})
        assert reply["ok"] and [r["id"] for r in reply["recordings"]] == [db.rec]
        assert app.user["clinic"] == "North" and app.status["state"] == "idle"
        opened(ask, app, db.rec)
    finally:
        app.close()


def test_an_unregistered_user_is_told_what_to_do(ui_db, make_app):
    app = make_app("zoe")
    if ui_db.url.startswith("sqlite"):  # the embedded single-user database registers its user as an admin
        assert app.user["role"] == "admin" and app.status["state"] == "idle"
    else:
        assert app.status["state"] == "error" and app.recordings == []
        assert "user 'zoe' is not registered" in app.status["message"]
        assert "deepepil admin add-user zoe" in app.status["message"]
