"""``deepepil admin approve | accounts | credentials``: the operator's hub commands."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from deepepil.labels import admin
from deepepil.labels.schema import upgrade
from hub.accounts import create_account, list_accounts


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepepil.cli", "admin", *args], capture_output=True, text=True,
                          timeout=120)


def test_accounts_lists_signups_and_approve_registers_the_user_too(tmp_path):
    hub_db = f"sqlite:///{tmp_path / 'hub' / 'jupyterhub.sqlite'}"
    labels = f"sqlite:///{tmp_path / 'labels.sqlite'}"
    upgrade(labels)
    admin.add_clinic("North", url=labels)
    create_account("Carla", "a long password", hub_db_url=hub_db, approved=False)  # as a sign-up leaves it
    out = cli("accounts", "--hub-db", hub_db)
    assert out.returncode == 0 and "carla" in out.stdout and "waiting for approval" in out.stdout
    out = cli("approve", "carla", "--hub-db", hub_db, "--role", "clinician", "--clinic", "North", "--url", labels)
    assert out.returncode == 0, out.stderr
    assert "approved: it can log in now" in out.stdout and "as clinician of clinic 'North'" in out.stdout
    assert list_accounts(hub_db_url=hub_db) == [("carla", True)]
    assert admin.list_users(url=labels).set_index("username").loc["carla", "clinic"] == "North"
    again = cli("approve", "carla", "--hub-db", hub_db)
    assert again.returncode == 0 and "was approved already" in again.stdout


def test_bad_names_and_missing_clinics_are_clear_errors(tmp_path):
    hub_db = f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    out = cli("approve", "carla", "--hub-db", hub_db)
    assert out.returncode == 1 and "no hub database at" in out.stderr and "--hub-db" in out.stderr
    assert not (tmp_path / "jupyterhub.sqlite").exists()
    create_account("someone", "a long password", hub_db_url=hub_db)
    out = cli("approve", "../etc", "--hub-db", hub_db)
    assert out.returncode == 1 and "is not allowed: use 1 to 64 lowercase letters" in out.stderr
    out = cli("approve", "x", "--hub-db", hub_db, "--clinic", "North")
    assert out.returncode != 0 and "--clinic goes with --role" in out.stderr
    out = cli("credentials", "ana", "--url", f"sqlite:///{tmp_path / 'l.sqlite'}")
    assert out.returncode == 1 and "need PostgreSQL" in out.stderr


def test_credentials_prints_nothing_secret_unless_asked(postgres_cluster, password_logins):
    owner = postgres_cluster.create_database()
    upgrade(owner)
    admin.add_clinic("North", url=owner)
    admin.add_user("ana", "clinician", "North", url=owner)
    out = cli("credentials", "ana", "--url", owner)
    assert out.returncode == 0, out.stderr
    assert "deepepil_u_ana:***@" in out.stdout and "hidden" in out.stdout
    shown = cli("credentials", "ana", "--url", owner, "--show")
    url = shown.stdout.strip()
    assert sa.engine.make_url(url).password not in (None, "***")
    with sa.create_engine(url, poolclass=NullPool).connect() as conn:
        assert conn.execute(sa.text("SELECT session_user")).scalar() == "deepepil_u_ana"
