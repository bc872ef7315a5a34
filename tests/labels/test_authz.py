"""Authorization inside PostgreSQL: per-user roles, privileges, row-level security, append-only revisions.

Every check runs as a real ordinary (non-superuser) role obtained through ``issue_credentials``,
with raw SQL where a user's kernel could send any statement. The session cluster trusts local
logins but the members of the deepepil group roles, who log in with
SCRAM passwords as in a deployment (the ``password_logins`` fixture checks it; docs/security.md).
"""

from __future__ import annotations

import concurrent.futures

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from deepepil.errors import AccessDeniedError, NotFoundError, ValidationError
from deepepil.labels import admin, authz, schema
from deepepil.labels.service import connect

PG = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
GROUPS = ("deepepil_clinician", "deepepil_data_scientist", "deepepil_admin")
DENIED = "42501"  # insufficient_privilege: privileges, row-level security, the revision trigger


class Sql:
    """Raw SQL as one login, every statement its own transaction (what a user's kernel can send)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)

    def rows(self, sql: str, **params) -> list:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()

    def scalar(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def rowcount(self, sql: str, **params) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).rowcount

    def denied(self, sql: str, match: str = "", **params) -> str:
        """Assert that the database refuses ``sql`` (permission denied); return its message."""
        with pytest.raises(sa.exc.DBAPIError) as info:
            with self.engine.connect() as conn:
                conn.execute(sa.text(sql), params)
        assert info.value.orig.pgcode == DENIED, info.value.orig
        assert match.lower() in str(info.value.orig).lower()
        return str(info.value.orig)


@pytest.fixture
def world(label_db, open_store, password_logins):
    """Labels in both clinics (written as the owner), and the users' credentials."""
    ann, carl, dan = open_store("ann"), open_store("carl"), open_store("dan")
    ids = {}
    for who, store, rec in (("north", ann, label_db.rec), ("south", carl, label_db.rec_south)):
        ids[f"{who}_moi"] = store.add_moi(rec, "trunk", "clonic", 10, 40).id
        store.update_moi(ids[f"{who}_moi"], 1, end_frame=45)
        ids[f"{who}_seizure"] = store.add_seizure(rec, 5, 90, notes=f"{who} free text").id
        ids[f"{who}_keypoint"] = store.add_keypoint(rec, 12, "head", 100.0, 80.0).id
        ids[f"{who}_suggestion"] = dan.add_suggestion(rec, "head/face", "head version", 30, 60, 0.8, "m:1").id
    ids["dan_snapshot"] = dan.create_snapshot("all-clinics").id
    ids["ann_snapshot"] = ann.create_snapshot("north-only").id
    owner = Sql(label_db.url)
    owner.rowcount("UPDATE patient SET notes = 'private ' || code, imaging_finding = 'lesion ' || code")
    ids["north_patient"] = owner.scalar("SELECT patient_id FROM recording WHERE id = :r", r=label_db.rec)
    ids["south_patient"] = owner.scalar("SELECT patient_id FROM recording WHERE id = :r", r=label_db.rec_south)
    urls = {name: authz.issue_credentials(name, url=label_db.url) for name in ("ann", "bea", "carl", "dan", "root")}
    yield {"db": label_db, "owner": owner, "ids": ids, "urls": urls, "sql": {n: Sql(u) for n, u in urls.items()}}
    for name in urls:
        authz.revoke_credentials(name, url=label_db.url)


# --- credentials ---------------------------------------------------------------------------

def test_role_names_are_deterministic_safe_identifiers_and_distinct():
    assert authz.role_name("ann") == authz.role_name("ann") == "deepepil_u_ann"
    names = ["ann", "Ann", "a.b", "a_b", "a-b", 'x"; DROP TABLE moi; --', "ünï", "@", "a" * 100, "a" * 101]
    roles = [authz.role_name(n) for n in names]
    assert len(set(roles)) == len(names)
    for role in roles:
        assert len(role) <= 63 and role.replace("_", "").isalnum() and role.isascii() and role == role.lower()
        assert role.startswith(("deepepil_u_", "deepepil_h_")) and role not in GROUPS
    with pytest.raises(ValidationError, match="user name"):
        authz.role_name(" ")


@PG
def test_issue_credentials_gives_a_login_in_exactly_its_group(label_db, password_logins):
    url = authz.issue_credentials("ann", url=label_db.url)
    parsed, owner = sa.engine.make_url(url), sa.engine.make_url(label_db.url)
    assert parsed.drivername == "postgresql+psycopg2" and parsed.username == "deepepil_u_ann"
    assert (parsed.host, parsed.port, parsed.database) == (owner.host, owner.port, owner.database)
    assert len(parsed.password) >= 40
    sql = Sql(label_db.url)
    assert sql.scalar("SELECT db_role FROM app_user WHERE username = 'ann'") == "deepepil_u_ann"
    groups = "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid " \
             "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = :role"
    assert [r[0] for r in sql.rows(groups, role="deepepil_u_ann")] == ["deepepil_clinician"]
    attrs = sql.rows("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolcanlogin FROM pg_roles "
                     "WHERE rolname = 'deepepil_u_ann'")
    assert attrs == [(False, False, False, False, True)]
    assert Sql(url).scalar("SELECT session_user") == "deepepil_u_ann"

    # a new role in app_user: the next credentials put the login in that group only
    sql.rowcount("UPDATE app_user SET role = 'data_scientist', clinic_id = NULL WHERE username = 'ann'")
    authz.issue_credentials("ann", url=label_db.url)
    assert [r[0] for r in sql.rows(groups, role="deepepil_u_ann")] == ["deepepil_data_scientist"]


@PG
def test_a_fresh_password_per_call_invalidates_the_old_one_and_revoke_stops_login(label_db, password_logins):
    first = authz.issue_credentials("bea", url=label_db.url)
    second = authz.issue_credentials("bea", url=label_db.url)
    assert sa.engine.make_url(first).password != sa.engine.make_url(second).password
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        Sql(first).scalar("SELECT 1")
    assert Sql(second).scalar("SELECT current_user") == "deepepil_u_bea"
    wrong = sa.engine.make_url(second).set(password="guess").render_as_string(hide_password=False)
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        Sql(wrong).scalar("SELECT 1")

    assert authz.revoke_credentials("bea", url=label_db.url) is True
    with pytest.raises(sa.exc.OperationalError, match="not permitted to log in|password authentication failed"):
        Sql(second).scalar("SELECT 1")
    assert authz.revoke_credentials("nobody-here", url=label_db.url) is False
    third = authz.issue_credentials("bea", url=label_db.url)  # the next spawn logs in again
    assert Sql(third).scalar("SELECT 1") == 1


@PG
def test_concurrent_spawns_each_get_working_credentials(label_db, password_logins):
    names = [f"user{i}" for i in range(8)]
    for name in names:
        admin.add_user(name, "clinician", "North", url=label_db.url)
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        urls = list(pool.map(lambda name: authz.issue_credentials(name, url=label_db.url), names + ["ann"] * 2))
    for name, url in zip(names, urls):
        assert Sql(url).scalar("SELECT session_user") == authz.role_name(name)
    logins = 0
    for url in urls[-2:]:  # the same user twice at once: the later password wins, the other is refused
        try:
            logins += Sql(url).scalar("SELECT 1")
        except sa.exc.OperationalError:
            pass
    assert logins == 1


@PG
def test_credentials_only_for_registered_active_users_on_postgresql(label_db, tmp_path):
    with pytest.raises(AccessDeniedError, match="'zoe' is not registered.*deepepil admin add-user zoe"):
        authz.issue_credentials("zoe", url=label_db.url)
    admin.deactivate_user("bea", url=label_db.url)
    with pytest.raises(AccessDeniedError, match="'bea' is deactivated"):
        authz.issue_credentials("bea", url=label_db.url)
    sqlite_url = f"sqlite:///{tmp_path / 'labels.sqlite'}"
    schema.upgrade(sqlite_url)  # 0003 only adds app_user.db_role on SQLite
    with pytest.raises(ValidationError, match="need PostgreSQL.*single-user"):
        authz.issue_credentials("ann", url=sqlite_url)


@PG
def test_odd_user_names_get_working_roles(label_db, password_logins):
    name = "O'Neil \"x\"; DROP TABLE moi; --@Clinic"
    admin.add_user(name, "clinician", "North", url=label_db.url)
    url = authz.issue_credentials(name, url=label_db.url)
    assert Sql(url).scalar("SELECT count(*) FROM recording") == 1
    with connect(url) as store:
        assert store.user.username == name
    assert Sql(label_db.url).scalar("SELECT count(*) FROM moi") == 0  # still there


# --- clinicians ----------------------------------------------------------------------------

@PG
def test_a_clinician_reads_only_their_clinics_rows(world):
    ann, owner, db = world["sql"]["ann"], world["owner"], world["db"]
    for table in ("patient", "recording", "seizure", "moi", "keypoint", "suggestion"):
        column = "clinic_id" if table in ("patient", "recording") else "recording_id"
        south = db.south if column == "clinic_id" else db.rec_south
        north = db.north if column == "clinic_id" else db.rec
        assert owner.scalar(f"SELECT count(*) FROM {table} WHERE {column} = :v", v=south) == 1
        assert ann.scalar(f"SELECT count(*) FROM {table} WHERE {column} = :v", v=south) == 0, table
        assert ann.scalar(f"SELECT count(*) FROM {table}") == 1, table
        assert ann.scalar(f"SELECT count(*) FROM {table} WHERE {column} = :v", v=north) == 1, table
    assert ann.rows("SELECT notes FROM seizure") == [("north free text",)]
    revisions = "SELECT count(*) FROM revision WHERE (COALESCE(after, before) ->> 'recording_id')::int = :r"
    assert owner.scalar(revisions, r=db.rec_south) == 5 and ann.scalar(revisions, r=db.rec_south) == 0
    assert ann.scalar(revisions, r=db.rec) == 5 == ann.scalar("SELECT count(*) FROM revision")
    assert [r[0] for r in ann.rows("SELECT name FROM label_snapshot")] == ["north-only"]
    owner.rowcount("ANALYZE")  # the planner's statistics (most common values) do not leak rows either
    assert owner.scalar("SELECT count(*) FROM pg_stats WHERE tablename = 'patient'") > 0
    assert ann.scalar("SELECT count(*) FROM pg_stats WHERE tablename IN ('patient', 'moi', 'revision')") == 0
    assert world["sql"]["bea"].scalar("SELECT count(*) FROM label_snapshot") == 1  # a colleague's
    assert world["sql"]["carl"].scalar("SELECT count(*) FROM label_snapshot") == 0


@PG
def test_a_clinician_cannot_change_another_clinics_rows(world):
    ann, owner, db, ids = world["sql"]["ann"], world["owner"], world["db"], world["ids"]
    before = {t: owner.rows(f"SELECT * FROM {t} ORDER BY id") for t in
              ("patient", "recording", "seizure", "moi", "keypoint", "suggestion", "revision")}
    assert ann.rowcount("UPDATE moi SET label = 'tonic posturing' WHERE id = :i", i=ids["south_moi"]) == 0
    assert ann.rowcount("UPDATE seizure SET notes = 'x' WHERE id = :i", i=ids["south_seizure"]) == 0
    assert ann.rowcount("UPDATE keypoint SET u_px = 0 WHERE id = :i", i=ids["south_keypoint"]) == 0
    assert ann.rowcount("UPDATE patient SET notes = 'x' WHERE id = :i", i=ids["south_patient"]) == 0
    assert ann.rowcount("UPDATE recording SET status = 'done' WHERE id = :i", i=db.rec_south) == 0
    assert ann.rowcount("UPDATE suggestion SET decision = 'rejected' WHERE id = :i", i=ids["south_suggestion"]) == 0
    for table in ("moi", "seizure", "keypoint", "patient", "recording", "suggestion"):
        ann.denied(f"DELETE FROM {table}", "permission denied")
    ann.denied("INSERT INTO moi (recording_id, region, label, start_frame, end_frame, author_id) "
               "SELECT :r, 'trunk', 'clonic', 1, 2, id FROM app_user WHERE username = 'ann'",
               "row-level security", r=db.rec_south)
    ann.denied("INSERT INTO patient (code, clinic_id) VALUES ('SYN-SNEAKY', :c)", "row-level security", c=db.south)
    ann.denied("INSERT INTO recording (name, patient_id, clinic_id, storage_uri, streams, fps, num_frames, "
               "duration_seconds, size_bytes, checksum, source_format) VALUES ('x', :p, :c, '/x', 'ir', 30, 1, 1, 1, "
               "'0', 'npz')", "permission denied", p=ids["north_patient"], c=db.north)  # recordings: admins only
    ann.denied("UPDATE moi SET recording_id = :r WHERE id = :i", "permission denied", r=db.rec_south,
               i=ids["north_moi"])
    ann.denied("UPDATE patient SET clinic_id = :c", "permission denied", c=db.south)
    after = {t: owner.rows(f"SELECT * FROM {t} ORDER BY id") for t in before}
    assert after == before


@PG
def test_a_clinician_cannot_forge_identity_or_authorship(world):
    ann, owner, db, ids = world["sql"]["ann"], world["owner"], world["db"], world["ids"]
    ann.denied("INSERT INTO moi (recording_id, region, label, start_frame, end_frame, author_id) "
               "SELECT :r, 'trunk', 'clonic', 1, 2, id FROM app_user WHERE username = 'bea'",
               "row-level security", r=db.rec)
    ann.denied("UPDATE moi SET author_id = author_id", "permission denied")
    ann.denied("INSERT INTO revision (table_name, row_id, action, user_id, after) SELECT 'moi', 1, 'create', id, "
               "'{\"recording_id\": %d}' FROM app_user WHERE username = 'bea'" % db.rec, "row-level security")
    ann.denied("INSERT INTO revision (table_name, row_id, action, user_id, after) SELECT 'moi', 1, 'create', id, "
               "'{\"recording_id\": %d}' FROM app_user WHERE username = 'ann'" % db.rec_south, "row-level security")
    for change in ("role = 'admin'", "clinic_id = :c", "active = true", "db_role = 'deepepil_u_carl'"):
        ann.denied(f"UPDATE app_user SET {change} WHERE username = 'ann'", "permission denied", c=db.south)
    ann.denied("INSERT INTO app_user (username, role) VALUES ('mallory', 'admin')", "permission denied")
    ann.denied("UPDATE suggestion SET decision = 'accepted', decided_by_id = (SELECT id FROM app_user WHERE "
               "username = 'bea') WHERE id = :i", "row-level security", i=ids["north_suggestion"])
    assert owner.scalar("SELECT decision FROM suggestion WHERE id = :i", i=ids["north_suggestion"]) == "pending"
    # the explanation a model published is shown, never replaced, by a clinician
    ann.denied("UPDATE suggestion SET explanation_uri = '/home/ann/other.npz' WHERE id = :i", "permission denied",
               i=ids["north_suggestion"])


@PG
def test_nobody_reads_credentials(world):
    ann = world["sql"]["ann"]
    ann.denied("SELECT rolpassword FROM pg_authid", "permission denied")
    ann.denied("SELECT passwd FROM pg_shadow", "permission denied")
    assert set(r[0] for r in ann.rows("SELECT rolpassword FROM pg_roles WHERE rolname LIKE 'deepepil_u_%'")) == \
        {"********"}
    assert set(r[0] for r in ann.rows("SELECT passwd FROM pg_user WHERE usename LIKE 'deepepil_u_%'")) == \
        {"********"}
    ann.denied("SELECT pg_read_file('pg_hba.conf')", "permission denied")
    secretive = ann.rows("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
                         "current_schema() AND column_name ~* 'pass|secret|token|credential|hash$'")
    assert [r for r in secretive if r != ("label_snapshot", "content_hash")] == []
    # the stored verifier is SCRAM: the password itself never reached the server
    assert world["owner"].scalar("SELECT rolpassword FROM pg_authid WHERE rolname = 'deepepil_u_ann'") \
        .startswith("SCRAM-SHA-256$4096:")


@PG
def test_a_clinician_cannot_escape_their_role(world):
    ann, db = world["sql"]["ann"], world["db"]
    for target in ("deepepil_u_carl", "deepepil_u_root", "deepepil_admin", "deepepil_data_scientist", "postgres"):
        ann.denied(f"SET ROLE {target}", "permission denied")
        ann.denied(f"SET SESSION AUTHORIZATION {target}", "permission denied")
    for sql in ("ALTER TABLE moi DISABLE ROW LEVEL SECURITY", "ALTER TABLE moi NO FORCE ROW LEVEL SECURITY",
                "DROP POLICY moi_clinician_select ON moi", "ALTER POLICY moi_clinician_select ON moi USING (true)",
                "CREATE POLICY mine ON moi FOR SELECT USING (true)", "ALTER TABLE revision DISABLE TRIGGER ALL",
                "DROP TRIGGER revision_append_only ON revision", "GRANT deepepil_admin TO deepepil_u_ann",
                "ALTER ROLE deepepil_u_ann BYPASSRLS", "CREATE FUNCTION public.f() RETURNS int AS 'SELECT 1' "
                "LANGUAGE sql", "CREATE OR REPLACE FUNCTION deepepil_current_clinic() RETURNS integer AS "
                "'SELECT clinic_id FROM app_user LIMIT 1' LANGUAGE sql"):
        ann.denied(sql)
    with ann.engine.connect() as conn:
        conn.execute(sa.text("SET ROLE deepepil_clinician"))  # its own group: still confined to North
        assert conn.execute(sa.text("SELECT count(*) FROM recording WHERE clinic_id = :c"), {"c": db.south}) \
            .scalar() == 0
        conn.execute(sa.text("RESET ROLE"))
        conn.execute(sa.text("SET row_security = off"))  # then a query that RLS would filter is an error
        with pytest.raises(sa.exc.DBAPIError, match="row-level security"):
            conn.execute(sa.text("SELECT count(*) FROM moi"))


@PG
def test_revision_rows_are_append_only_even_for_the_owner(world):
    ann, owner = world["sql"]["ann"], world["owner"]
    own = ann.scalar("SELECT min(id) FROM revision")
    assert own is not None
    ann.denied("DELETE FROM revision WHERE id = :i", "permission denied", i=own)
    ann.denied("UPDATE revision SET action = 'forged' WHERE id = :i", "permission denied", i=own)
    ann.denied("TRUNCATE revision", "permission denied")
    n = owner.scalar("SELECT count(*) FROM revision")
    owner.denied("DELETE FROM revision WHERE id = :i", "append-only", i=own)
    owner.denied("UPDATE revision SET action = 'forged'", "append-only")
    owner.denied("TRUNCATE revision", "append-only")
    assert owner.scalar("SELECT count(*) FROM revision") == n
    assert owner.scalar("SELECT action FROM revision WHERE id = :i", i=own) == "create"


@PG
def test_the_label_service_as_a_clinician_under_row_level_security(world, monkeypatch, tmp_path):
    db, ids, url = world["db"], world["ids"], world["urls"]["ann"]
    monkeypatch.setenv("DEEPEPIL_USER", "bea")  # an environment variable does not make ann bea
    monkeypatch.setenv("JUPYTERHUB_USER", "carl")
    with connect(url) as store:
        assert (store.user.username, store.user.role) == ("ann", "clinician")
        moi = store.add_moi(db.rec, "head/face", "head version", 30, 90, "left")
        moi = store.update_moi(moi.id, moi.version, end_frame=95)
        store.delete_moi(moi.id, moi.version)
        assert store.undo()["changes"][0]["reverted"] == "delete"
        assert store.undo()["changes"][0]["reverted"] == "update"
        assert store.moi(moi.id).end_frame == 90 and not store.moi(moi.id).deleted
        store.redo()
        assert store.moi(moi.id).end_frame == 95
        history = store.revisions("moi", moi.id)
        assert history["action"].tolist() == ["create", "update", "delete", "undo", "undo", "redo"]
        assert history["user"].tolist() == ["ann"] * 6
        accepted = store.accept_suggestion(ids["north_suggestion"], 1)
        assert accepted.source == "model" and store.suggestion(ids["north_suggestion"]).decision == "accepted"
        store.undo()
        assert store.suggestion(ids["north_suggestion"]).decision == "pending"
        seizure = store.add_seizure(db.rec, 100, 200, notes="seen by ann")
        store.update_seizure(seizure.id, seizure.version, status="final")
        store.add_keypoint(db.rec, 3, "neck", 1.0, 2.0)
        assert set(store.mois()["recording_id"]) == {db.rec}
        history = store.revisions()  # North's history (dan's suggestion there too), not carl's South
        assert set(history["user"]) == {"ann", "dan"}
        assert {(after or before)["recording_id"] for before, after in zip(history["before"], history["after"])} \
            == {db.rec}
        with pytest.raises(NotFoundError):
            store.recording(db.rec_south)
        with pytest.raises(NotFoundError):
            store.add_moi(db.rec_south, "trunk", "clonic", 1, 5)
        with pytest.raises(NotFoundError):
            store.moi(ids["south_moi"])
        path = store.export_csv(tmp_path / "mine.csv")
        exported = pd.read_csv(path)
        assert set(exported["recording_id"]) == {db.rec} and len(exported) == 2
        from deepepil.labels.catalog import catalog

        assert catalog(url)["recording_id"].tolist() == [db.rec]
    with pytest.raises(AccessDeniedError, match="belongs to user 'ann', who cannot act as 'bea'"):
        connect(url, user="bea")
    owner = world["owner"]
    assert owner.scalar("SELECT count(*) FROM moi WHERE author_id = (SELECT id FROM app_user WHERE "
                        "username = 'ann') AND recording_id = :r", r=db.rec) == 3


@PG
def test_a_deactivated_user_sees_nothing_even_over_an_open_login(world):
    ann, url = world["sql"]["ann"], world["urls"]["ann"]
    assert ann.scalar("SELECT count(*) FROM moi") == 1
    admin.deactivate_user("ann", url=world["db"].url)
    assert ann.scalar("SELECT count(*) FROM moi") == 0
    assert ann.scalar("SELECT count(*) FROM patient") == 0
    with pytest.raises(AccessDeniedError, match="'ann' is deactivated"):
        connect(url)


@PG
def test_an_ordinary_role_of_no_user_is_refused(world):
    owner = world["owner"]
    owner.rowcount("CREATE ROLE deepepil_stray LOGIN PASSWORD 'stray-pw' IN ROLE deepepil_clinician")
    try:
        stray = sa.engine.make_url(world["db"].url).set(username="deepepil_stray", password="stray-pw")
        with pytest.raises(AccessDeniedError, match="'deepepil_stray' belongs to no registered user"):
            connect(stray.render_as_string(hide_password=False), user="ann")
    finally:
        owner.rowcount("DROP ROLE deepepil_stray")


# --- data scientists and admins -------------------------------------------------------------

@PG
def test_a_data_scientist_reads_every_clinic_pseudonymized_and_writes_only_suggestions_and_snapshots(world):
    dan, owner, db, ids, url = world["sql"]["dan"], world["owner"], world["db"], world["ids"], world["urls"]["dan"]
    for table in ("recording", "moi", "keypoint", "suggestion", "label_snapshot"):
        assert dan.scalar(f"SELECT count(*) FROM {table}") == owner.scalar(f"SELECT count(*) FROM {table}") >= 2
    assert sorted(r[0] for r in dan.rows("SELECT code FROM patient")) == ["SYN-REC", "SYN-REC-SOUTH"]
    dan.denied("SELECT notes FROM patient", "permission denied")
    dan.denied("SELECT imaging_finding FROM patient", "permission denied")
    dan.denied("SELECT * FROM patient", "permission denied")
    dan.denied("SELECT notes FROM seizure", "permission denied")
    assert dan.scalar("SELECT count(*) FROM seizure") == 2
    assert dan.scalar("SELECT count(*) FROM revision WHERE table_name = 'seizure'") == 0  # they carry notes
    assert dan.scalar("SELECT count(*) FROM revision WHERE table_name = 'moi'") == 4
    dan.denied("INSERT INTO moi (recording_id, region, label, start_frame, end_frame, author_id) "
               "SELECT :r, 'trunk', 'clonic', 1, 2, id FROM app_user WHERE username = 'dan'", "permission denied",
               r=db.rec)
    dan.denied("UPDATE moi SET label = 'x'", "permission denied")
    dan.denied("UPDATE suggestion SET decision = 'accepted'", "permission denied")
    dan.denied("UPDATE suggestion SET explanation_uri = '/tmp/x.npz'", "permission denied")  # set once, on insert
    dan.denied("UPDATE patient SET sex = 'f'", "permission denied")

    with connect(url) as store:
        assert store.user.role == "data_scientist"
        suggestion = store.add_suggestion(db.rec_south, "trunk", "tonic posturing", 5, 60, 0.9, "moi-i3d:3",
                                          explanation_uri="/shared/explanations/moi-i3d-v3/5-60-tonic-posturing.npz")
        assert suggestion.created_by == "dan"
        assert suggestion.explanation_uri == "/shared/explanations/moi-i3d-v3/5-60-tonic-posturing.npz"
        store.undo()  # a withdrawn suggestion
        assert store.suggestion(suggestion.id).deleted
        snapshot = store.create_snapshot("train-all", sources=None)
        assert snapshot.num_mois == 2 and store.snapshot(snapshot.content_hash).num_mois == 2
        seizures = store.seizures()
        assert len(seizures) == 2 and seizures["notes"].isna().all()
        assert store.seizure(ids["south_seizure"]).notes is None
        with pytest.raises(AccessDeniedError):
            store.add_moi(db.rec, "trunk", "clonic", 1, 5)
    assert owner.scalar("SELECT count(*) FROM label_snapshot WHERE name = 'train-all'") == 1


@PG
def test_an_admin_manages_clinics_users_and_vocabulary_but_not_identities(world):
    url, root = world["urls"]["root"], world["sql"]["root"]
    assert admin.add_clinic("East", url=url) > 0
    admin.add_user("eve", "clinician", "East", url=url)
    admin.add_term("moi_label", "lip smacking", url=url)
    admin.set_user_active("eve", False, url=url)
    assert root.scalar("SELECT count(*) FROM patient") == 2 and root.scalar("SELECT count(*) FROM moi") == 2
    assert root.rows("SELECT notes FROM patient ORDER BY id")[0][0].startswith("private")
    root.denied("UPDATE app_user SET db_role = 'deepepil_u_ann' WHERE username = 'root'", "permission denied")
    root.denied("INSERT INTO app_user (username, role, db_role) VALUES ('mallory', 'admin', 'deepepil_u_ann')",
                "row-level security")
    root.denied("DELETE FROM revision", "permission denied")
    with pytest.raises(AccessDeniedError, match="refused: permission denied for table clinic"):
        admin.add_clinic("West", url=world["urls"]["ann"])
    with pytest.raises(AccessDeniedError, match="permission denied"):
        admin.add_term("moi_label", "yawning", url=world["urls"]["dan"])
