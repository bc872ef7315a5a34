"""The label database schema: migrations from empty and from the previous revision, and the checks."""

from __future__ import annotations

import re
import threading

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from deepepil.cli import main
from deepepil.errors import SchemaBehindError
from deepepil.labels import schema
from deepepil.labels.db import make_engine
from deepepil.labels.models import Base
from deepepil.labels.vocabulary import REGIONS, SEED

LABEL_TABLES = {"seizure", "moi", "keypoint", "suggestion", "revision", "label_snapshot"}
IDENTIFYING = re.compile(r"name|birth|dob|address|phone|mrn|hospital|ssn|insurance", re.IGNORECASE)


@pytest.fixture(autouse=True)
def _no_configured_database(monkeypatch):
    monkeypatch.delenv("DEEPEPIL_DATABASE_URL", raising=False)


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_upgrade_from_empty_database_matches_the_models(db_url, engine):
    schema.upgrade(db_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    schema.check_schema(engine)
    assert schema.current_revision(db_url) == schema.head_revision()
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.text("SELECT kind, count(*) FROM vocabulary_term GROUP BY kind")).all())
    assert counts == {kind: len(codes) for kind, codes in SEED.items()}
    schema.upgrade(db_url)  # again: nothing to do, the seed is not duplicated
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM vocabulary_term WHERE kind = 'region'")).scalar()
    assert n == len(REGIONS)


def test_upgrade_from_the_previous_revision_keeps_the_rows(db_url, engine):
    schema.upgrade(db_url, "0001")
    assert schema.current_revision(db_url) == "0001"
    assert not LABEL_TABLES & _tables(engine)
    with pytest.raises(SchemaBehindError, match=r"revision 0001 .*run `deepepil db upgrade"):
        schema.check_schema(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO clinic (id, name) VALUES (1, 'Kiel')"))
        conn.execute(sa.text("INSERT INTO app_user (id, username, role, clinic_id) VALUES (1, 'ann', 'clinician', 1)"))
        conn.execute(sa.text("INSERT INTO patient (id, code, clinic_id, sex) VALUES (1, 'P-AAAABBBB', 1, 'f')"))
        conn.execute(sa.text(
            "INSERT INTO recording (id, name, patient_id, clinic_id, storage_uri, streams, fps, num_frames, "
            "duration_seconds, size_bytes, checksum, source_format) VALUES (1, 'rec', 1, 1, '/data/rec.zarr', "
            "'ir,depth', 30.0, 300, 10.0, 12345, :checksum, 'numpy')"
        ), {"checksum": "ab" * 32})

    schema.upgrade(db_url)
    schema.check_schema(engine)
    assert LABEL_TABLES <= _tables(engine)
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT name FROM clinic")).scalar() == "Kiel"
        assert conn.execute(sa.text("SELECT code, sex FROM patient")).one() == ("P-AAAABBBB", "f")
        rec = conn.execute(sa.text("SELECT storage_uri, num_frames, size_bytes, status FROM recording")).one()
        assert tuple(rec) == ("/data/rec.zarr", 300, 12345, "new")
        # the new tables work with the old rows
        conn.execute(sa.text(
            "INSERT INTO moi (recording_id, region, label, start_frame, end_frame, author_id) "
            "VALUES (1, 'head/face', 'head version', 10, 20, 1)"
        ))
        assert conn.execute(sa.text("SELECT count(*) FROM moi")).scalar() == 1
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_upgrade_from_0003_adds_the_explanation_uri_and_keeps_the_suggestions(db_url, engine):
    schema.upgrade(db_url, "0003")
    assert "explanation_uri" not in {c["name"] for c in sa.inspect(engine).get_columns("suggestion")}
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO clinic (id, name) VALUES (1, 'Kiel')"))
        conn.execute(sa.text("INSERT INTO app_user (id, username, role, clinic_id) VALUES (1, 'ann', 'clinician', 1), "
                             "(2, 'dan', 'data_scientist', NULL)"))
        conn.execute(sa.text("INSERT INTO patient (id, code, clinic_id) VALUES (1, 'P-AAAABBBB', 1)"))
        conn.execute(sa.text(
            "INSERT INTO recording (id, name, patient_id, clinic_id, storage_uri, streams, fps, num_frames, "
            "duration_seconds, size_bytes, checksum, source_format) VALUES (1, 'rec', 1, 1, '/data/rec.zarr', "
            "'ir,depth', 30.0, 300, 10.0, 12345, :checksum, 'numpy')"
        ), {"checksum": "ab" * 32})
        conn.execute(sa.text(
            "INSERT INTO suggestion (id, model_version, recording_id, region, label, laterality, start_frame, "
            "end_frame, score, decision, decided_by_id, created_by_id) VALUES "
            "(1, 'moi-net:1', 1, 'head/face', 'head version', 'left', 30, 60, 0.87, 'accepted', 1, 2), "
            "(2, 'moi-net:1', 1, 'trunk', 'clonic', NULL, 100, 130, 0.4, 'pending', NULL, 2)"
        ))
        conn.execute(sa.text("INSERT INTO moi (recording_id, region, label, start_frame, end_frame, author_id, "
                             "source, suggestion_id) VALUES (1, 'head/face', 'head version', 30, 60, 1, 'model', 1)"))

    schema.upgrade(db_url)
    schema.check_schema(engine)
    assert schema.current_revision(db_url) == schema.head_revision() == "0004"
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT id, label, laterality, start_frame, end_frame, score, decision, "
                                    "explanation_uri FROM suggestion ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "head version", "left", 30, 60, 0.87, "accepted", None),
                                            (2, "clonic", None, 100, 130, 0.4, "pending", None)]
        assert conn.execute(sa.text("SELECT suggestion_id FROM moi")).scalar() == 1
        uri = "/shared/explanations/moi-net-v1/rec1/100-130-clonic.npz"
        conn.execute(sa.text("UPDATE suggestion SET explanation_uri = :u WHERE id = 2"), {"u": uri})
        assert conn.execute(sa.text("SELECT explanation_uri FROM suggestion WHERE id = 2")).scalar() == uri
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []

    # and back: the column goes, the rows stay
    command.downgrade(schema.alembic_config(db_url), "0003")
    assert "explanation_uri" not in {c["name"] for c in sa.inspect(engine).get_columns("suggestion")}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM suggestion")).scalar() == 2


def test_only_the_insert_sets_the_explanation_uri_on_postgresql(pg_url):
    schema.upgrade(pg_url)
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            def may(group: str, privilege: str) -> bool:
                return conn.execute(sa.text("SELECT has_column_privilege(:g, 'suggestion', 'explanation_uri', :p)"),
                                    {"g": group, "p": privilege}).scalar()

            assert may("deepepil_clinician", "SELECT") and not may("deepepil_clinician", "UPDATE")
            assert not may("deepepil_clinician", "INSERT")
            assert may("deepepil_data_scientist", "SELECT") and may("deepepil_data_scientist", "INSERT")
            assert not may("deepepil_data_scientist", "UPDATE")
            assert may("deepepil_admin", "UPDATE")
    finally:
        engine.dispose()


def test_a_failed_upgrade_changes_nothing(db_url, engine, monkeypatch):
    def fail(session):
        raise RuntimeError("killed while seeding")

    monkeypatch.setattr("deepepil.labels.vocabulary.seed_vocabulary", fail)
    with pytest.raises(RuntimeError, match="killed while seeding"):
        schema.upgrade(db_url)
    assert _tables(engine) <= {"alembic_version"}
    assert schema.current_revision(db_url) is None
    monkeypatch.undo()
    schema.upgrade(db_url)
    schema.check_schema(engine)


def test_downgrade_to_base_and_up_again(db_url, engine):
    schema.upgrade(db_url)
    command.downgrade(schema.alembic_config(db_url), "base")
    assert _tables(engine) <= {"alembic_version"}
    schema.upgrade(db_url)
    schema.check_schema(engine)


def test_check_schema_on_an_empty_database_says_to_upgrade(db_url, engine):
    with pytest.raises(SchemaBehindError, match=r"no deepepil schema.*run `deepepil db upgrade --url "):
        schema.check_schema(engine)


def test_check_schema_on_a_database_from_a_newer_deepepil(db_url, engine, capsys):
    schema.upgrade(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999_future'"))
    with pytest.raises(schema.SchemaAheadError, match=r"0999_future.*newer deepepil.*Upgrade the deepepil package"):
        schema.check_schema(engine)
    assert not issubclass(schema.SchemaAheadError, SchemaBehindError)
    with pytest.raises(schema.SchemaAheadError):
        schema.upgrade(db_url)
    assert main(["db", "current", "--url", db_url]) == 0
    assert main(["db", "upgrade", "--url", db_url]) == 1


def test_cli_db_upgrade_to_an_unknown_revision_is_one_clear_line(db_url, capsys):
    assert main(["db", "upgrade", "--url", db_url, "--revision", "0999"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("deepepil db: error: cannot upgrade the label database to '0999'")
    assert len(err.splitlines()) == 1


def test_patient_table_has_no_identifying_columns(db_url, engine):
    schema.upgrade(db_url)
    columns = [c["name"] for c in sa.inspect(engine).get_columns("patient")]
    assert "code" in columns
    assert [c for c in columns if IDENTIFYING.search(c)] == []
    assert [c.name for c in Base.metadata.tables["patient"].columns if IDENTIFYING.search(c.name)] == []


def test_concurrent_upgrades_on_postgresql_both_succeed(pg_url):
    errors: list[BaseException] = []

    def run() -> None:
        try:
            schema.upgrade(pg_url)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = make_engine(pg_url)
    try:
        schema.check_schema(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM vocabulary_version")).scalar() == 1
    finally:
        engine.dispose()


# -- the command line -------------------------------------------------------------------


def test_cli_db_upgrade_and_current(db_url, capsys):
    assert main(["db", "current", "--url", db_url]) == 0
    assert capsys.readouterr().out.startswith("none")
    assert main(["db", "upgrade", "--url", db_url, "--revision", "0001"]) == 0
    assert main(["db", "current", "--url", db_url]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"0001 (behind {schema.head_revision()}; run ")
    assert main(["db", "upgrade", "--url", db_url]) == 0
    assert main(["db", "current", "--url", db_url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{schema.head_revision()} (head)"


def test_cli_db_upgrade_takes_the_url_from_the_environment(db_url, monkeypatch, capsys):
    monkeypatch.setenv("DEEPEPIL_DATABASE_URL", db_url)
    assert main(["db", "upgrade"]) == 0
    assert schema.current_revision(db_url) == schema.head_revision()


def test_cli_db_upgrade_defaults_to_sqlite_in_the_data_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "data" / "deepepil" / "labels.sqlite").exists()
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("(head)")


def test_cli_db_unreachable_database_is_one_clear_line(capsys):
    assert main(["db", "current", "--url", "postgresql+psycopg2://nobody:secret@127.0.0.1:1/labels"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("deepepil db: error: cannot use the label database postgresql+psycopg2://nobody:***@")
    assert "secret" not in err
