"""Administration: clinics, users, vocabulary terms, and who the caller is."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from deepepil.cli import main
from deepepil.errors import AccessDeniedError, NotFoundError, SchemaBehindError, ValidationError
from deepepil.labels import admin, schema
from deepepil.labels.db import current_username, is_sqlite, make_engine, resolve_user, session_scope
from deepepil.labels.models import Role
from deepepil.labels.vocabulary import active_codes


@pytest.fixture(autouse=True)
def _environment(monkeypatch):
    monkeypatch.delenv("DEEPEPIL_DATABASE_URL", raising=False)
    monkeypatch.setenv("DEEPEPIL_USER", "tester")


@pytest.fixture
def url(db_url):
    schema.upgrade(db_url)
    return db_url


def test_cli_add_clinic_and_users(url, capsys):
    assert main(["admin", "add-clinic", "Kiel", "--url", url]) == 0
    assert main(["admin", "add-user", "ann", "--role", "clinician", "--clinic", "Kiel", "--url", url]) == 0
    assert main(["admin", "add-user", "dan", "--role", "data_scientist", "--url", url]) == 0
    assert main(["admin", "add-user", "ada", "--role", "admin", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "added clinic 'Kiel'" in out and "added user 'ann' as clinician of clinic 'Kiel'" in out
    assert main(["admin", "list-users", "--url", url]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == ["username", "role", "clinic", "active", "created_at"]
    assert [line.split()[:2] for line in listed[1:]] == [["ada", "admin"], ["ann", "clinician"],
                                                         ["dan", "data_scientist"]]
    users = admin.list_users(url=url)
    assert list(users.columns) == ["username", "role", "clinic", "active", "created_at"]
    assert users.set_index("username").loc["ann", "clinic"] == "Kiel"
    assert users["active"].all()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["add-clinic", "Kiel"], "clinic 'Kiel' exists already"),
        (["add-user", "bob", "--role", "nurse", "--clinic", "Kiel"],
         "unknown role 'nurse'; roles are: clinician, data_scientist, admin"),
        (["add-user", "bob", "--role", "clinician"], "a clinician belongs to a clinic: give --clinic NAME"),
        (["add-user", "bob", "--role", "clinician", "--clinic", "Nowhere"],
         "no clinic named 'Nowhere'; clinics are: Kiel"),
        (["add-user", "ann", "--role", "admin"], "user 'ann' exists already"),
        (["add-clinic", "  "], "a clinic name must be 1 to 100 characters"),
        (["deactivate-user", "nobody"], "no user 'nobody'"),
        (["add-term", "regio", "left hand"], "unknown vocabulary kind 'regio'; kinds are: region, moi_label"),
        (["retire-term", "region", "no such region"], "region 'no such region' is not an active term"),
    ],
)
def test_cli_admin_errors_are_one_clear_line(url, capsys, argv, message):
    assert main(["admin", "add-clinic", "Kiel", "--url", url]) == 0
    assert main(["admin", "add-user", "ann", "--role", "admin", "--url", url]) == 0
    capsys.readouterr()
    assert main(["admin", *argv, "--url", url]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("deepepil admin: error: ")
    assert message in err


def test_admin_on_a_database_without_schema_says_to_upgrade(db_url, capsys):
    with pytest.raises(SchemaBehindError, match="deepepil db upgrade"):
        admin.add_clinic("Kiel", url=db_url)
    assert main(["admin", "list-users", "--url", db_url]) == 1
    assert "run `deepepil db upgrade" in capsys.readouterr().err


def test_python_admin_functions(url):
    clinic_id = admin.add_clinic("Kiel", url=url)
    assert admin.list_clinics(url=url)["clinic_id"].tolist() == [clinic_id]
    admin.add_user("ann", Role.clinician, "Kiel", url=url)
    with pytest.raises(NotFoundError):
        admin.add_user("bob", "clinician", "Nowhere", url=url)
    with pytest.raises(ValidationError):
        admin.add_user("bob", "nurse", url=url)
    assert admin.list_users(url=url)["username"].tolist() == ["ann"]


def test_vocabulary_terms_are_added_and_retired_through_the_cli(url, capsys):
    assert main(["admin", "add-term", "moi_label", "eyelid myoclonia", "--url", url]) == 0
    assert "vocabulary version 2" in capsys.readouterr().out
    with session_scope(url) as session:
        assert "eyelid myoclonia" in active_codes(session, "moi_label")
    assert main(["admin", "retire-term", "moi_label", "eyelid myoclonia", "--url", url]) == 0
    assert "vocabulary version 3" in capsys.readouterr().out
    with session_scope(url) as session:
        assert "eyelid myoclonia" not in active_codes(session, "moi_label")
    assert admin.add_term("moi_label", "eyelid myoclonia", url=url) == 4  # brought back


def test_current_username_precedence(monkeypatch):
    monkeypatch.setenv("DEEPEPIL_USER", "a")
    monkeypatch.setenv("JUPYTERHUB_USER", "b")
    assert current_username() == "a"
    assert current_username("explicit") == "explicit"
    monkeypatch.delenv("DEEPEPIL_USER")
    assert current_username() == "b"
    monkeypatch.delenv("JUPYTERHUB_USER")
    assert current_username()  # the login name


def test_unregistered_user_is_an_admin_on_sqlite_and_refused_on_postgresql(url):
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            if is_sqlite(engine):
                user = resolve_user(session, auto_register=True)
                assert (user.username, user.role) == ("tester", Role.admin)
                session.commit()
                assert admin.list_users(url=url)["username"].tolist() == ["tester"]
            else:
                with pytest.raises(AccessDeniedError, match=r"'tester' is not registered.*ask an admin"):
                    resolve_user(session, auto_register=False)
    finally:
        engine.dispose()


def test_deactivated_user_is_refused(url):
    admin.add_clinic("Kiel", url=url)
    admin.add_user("ann", "clinician", "Kiel", url=url)
    with session_scope(url) as session:
        assert resolve_user(session, "ann", auto_register=False).role == Role.clinician
    admin.deactivate_user("ann", url=url)
    assert not admin.list_users(url=url).set_index("username").loc["ann", "active"]
    with session_scope(url) as session, pytest.raises(AccessDeniedError, match="deactivated"):
        resolve_user(session, "ann", auto_register=True)
    admin.set_user_active("ann", True, url=url)
    with session_scope(url) as session:
        assert resolve_user(session, "ann", auto_register=False).active
