"""A real hub on a PostgreSQL label database: what a user can do from their own kernel with raw SQL.

The hub holds the owner's URL; each spawned server gets only its user's own role with a
fresh password (``DEEPEPIL_DATABASE_URL``). Everything a clinician tries here runs as code
in her own kernel, in her own server, as it would from a notebook cell.
"""

from __future__ import annotations

import json
import textwrap

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from hub.client import HubClient

pytestmark = pytest.mark.timeout(900)

# runs in the user's kernel: raw SQL through the URL the hub put into the server's environment
PROBE = textwrap.dedent('''
    import json, os
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool
    engine = sa.create_engine(os.environ["DEEPEPIL_DATABASE_URL"], poolclass=NullPool)

    def attempt(sql, **params):
        """(rows affected or fetched, error code) of one statement in its own transaction."""
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(sql), params)
                return (result.fetchall() if result.returns_rows else result.rowcount), None
        except sa.exc.DBAPIError as exc:
            return None, getattr(exc.orig, "pgcode", None) or type(exc.orig).__name__
''')


def run(client: HubClient, code: str) -> dict:
    """Run ``PROBE`` + ``code`` (which prints one JSON line) in the client's kernel; return it parsed."""
    with client.kernel() as kernel:
        out = kernel.execute(PROBE + textwrap.dedent(code))["stdout"]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hub(start_hub, postgres_cluster, password_logins):
    return start_hub(postgres_cluster.create_database())


@pytest.fixture(scope="module")
def owner(hub):
    engine = sa.create_engine(hub.label_url, poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def ids(owner) -> dict[str, int]:
    with owner.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT c.name, r.id, p.id, c.id FROM recording r JOIN clinic c ON c.id = r.clinic_id "
            "JOIN patient p ON p.id = r.patient_id ORDER BY c.name")).all()
    by_clinic = {name: (rec, pat, clinic) for name, rec, pat, clinic in rows}
    return {"north_rec": by_clinic["North"][0], "south_rec": by_clinic["South"][0],
            "south_patient": by_clinic["South"][1], "north_patient": by_clinic["North"][1],
            "north": by_clinic["North"][2], "south": by_clinic["South"][2]}


@pytest.fixture(scope="module")
def ana(hub) -> HubClient:
    client = hub.client("ana")
    client.start_server()
    return client


def test_the_server_gets_its_users_own_role_never_the_owners(hub, ana):
    got = run(ana, '''
        print(json.dumps({"user": attempt("SELECT session_user")[0][0][0],
                          "owner_in_env": "DEEPEPIL_DB_OWNER_URL" in os.environ,
                          "super": attempt("SELECT rolsuper FROM pg_roles WHERE rolname = session_user")[0][0][0]}))
    ''')
    assert got == {"user": "deepepil_u_ana", "owner_in_env": False, "super": False}


def test_a_clinician_reads_only_her_clinics_rows(ana, ids):
    got = run(ana, f'''
        print(json.dumps({{
            "recordings": [r[0] for r in attempt("SELECT id FROM recording")[0]],
            "patients": [r[0] for r in attempt("SELECT id FROM patient")[0]],
            "south_by_id": attempt("SELECT * FROM recording WHERE id = {ids['south_rec']}")[0],
        }}))
    ''')
    assert got == {"recordings": [ids["north_rec"]], "patients": [ids["north_patient"]], "south_by_id": []}


MOI_INSERT = ("INSERT INTO moi (recording_id, region, label, start_frame, end_frame, source, author_id, version, "
              "deleted, created_at, updated_at) SELECT {rec}, 'trunk', 'clonic', 0, 5, 'human', id, 1, false, now(), "
              "now() FROM app_user WHERE username = 'ana'")
PATIENT_INSERT = ("INSERT INTO patient (code, clinic_id, version, deleted, created_at, updated_at) "
                  "VALUES ('{code}', {clinic}, 1, false, now(), now())")


def test_a_clinician_cannot_change_another_clinics_rows(ana, ids, owner):
    north, south = ids["north_rec"], ids["south_rec"]
    got = run(ana, f'''
        print(json.dumps({{
            "update_recording": [attempt("UPDATE recording SET status = 'done' WHERE id = {north}"),
                                 attempt("UPDATE recording SET status = 'done' WHERE id = {south}")],
            "update_patient": [attempt("UPDATE patient SET sex = 'female' WHERE id = {ids['north_patient']}"),
                               attempt("UPDATE patient SET sex = 'female' WHERE id = {ids['south_patient']}")],
            "delete_recording": attempt("DELETE FROM recording WHERE id = {south}"),
            "insert_moi": [attempt("{MOI_INSERT.format(rec=north)}"), attempt("{MOI_INSERT.format(rec=south)}")],
            "insert_patient": [attempt("{PATIENT_INSERT.format(code='P-OWNCLINIC', clinic=ids['north'])}"),
                               attempt("{PATIENT_INSERT.format(code='P-FORGED1', clinic=ids['south'])}")],
        }}))
    ''')
    # each statement works on her own clinic's rows (so it is valid SQL) ...
    own = [got[k][0] for k in ("update_recording", "update_patient", "insert_moi", "insert_patient")]
    assert own == [[1, None]] * 4
    # ... and on the other clinic's: rows she cannot see are not touched, inserts are refused
    assert got["update_recording"][1] == [0, None] and got["update_patient"][1] == [0, None]
    assert got["delete_recording"] in ([0, None], [None, "42501"])
    assert got["insert_moi"][1] == [None, "42501"] and got["insert_patient"][1] == [None, "42501"]
    with owner.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM recording WHERE id = :i"), {"i": south}).scalar() != "done"
        assert conn.execute(sa.text("SELECT count(*) FROM recording WHERE id = :i"), {"i": south}).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM moi WHERE recording_id = :i"), {"i": south}).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM patient WHERE code = 'P-FORGED1'")).scalar() == 0


def test_nobody_reads_credentials_from_the_database(ana):
    got = run(ana, '''
        print(json.dumps({
            "pg_authid": attempt("SELECT rolname, rolpassword FROM pg_authid")[1],
            "pg_shadow": attempt("SELECT usename, passwd FROM pg_shadow")[1],
            "pg_roles": sorted({r[0] for r in attempt("SELECT rolpassword FROM pg_roles")[0]} - {None}),
            "hba": attempt("SELECT pg_read_file('pg_hba.conf')")[1],
        }))
    ''')
    assert got == {"pg_authid": "42501", "pg_shadow": "42501", "pg_roles": ["********"], "hba": "42501"}


def test_revision_rows_cannot_be_deleted_or_changed(ana, ids, owner):
    got = run(ana, f'''
        from deepepil import labels
        store = labels.connect()
        store.add_moi({ids['north_rec']}, "trunk", "clonic", 0, 10)  # writes a revision row
        print(json.dumps({{
            "mine": len(attempt("SELECT id FROM revision")[0] or []),
            "delete": attempt("DELETE FROM revision"),
            "update": attempt("UPDATE revision SET action = 'x'"),
        }}))
    ''')
    assert got["mine"] >= 1
    assert got["delete"] == [None, "42501"] and got["update"] == [None, "42501"]
    with owner.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM revision")).scalar() >= 1
        assert conn.execute(sa.text("SELECT count(*) FROM revision WHERE action = 'x'")).scalar() == 0


def test_every_spawn_has_a_fresh_password_and_a_stopped_server_leaves_none_working(hub):
    dana = hub.client("dana")
    dana.start_server()
    with dana.kernel() as k:
        first = k.execute("import os; print(os.environ['DEEPEPIL_DATABASE_URL'])")["stdout"].strip()
    dana.stop_server()
    with pytest.raises(sa.exc.OperationalError):
        with sa.create_engine(first, poolclass=NullPool).connect():
            pass
    dana.start_server()
    with dana.kernel() as k:
        second = k.execute("import os; print(os.environ['DEEPEPIL_DATABASE_URL'])")["stdout"].strip()
    assert sa.engine.make_url(second).username == sa.engine.make_url(first).username == "deepepil_u_dana"
    assert sa.engine.make_url(second).password != sa.engine.make_url(first).password
    with sa.create_engine(second, poolclass=NullPool).connect() as conn:
        assert conn.execute(sa.text("SELECT session_user")).scalar() == "deepepil_u_dana"
    dana.stop_server()
