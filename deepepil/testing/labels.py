"""The label database the tests start from: clinics North and South and one user of each kind."""

from __future__ import annotations

import os
import shutil

import sqlalchemy as sa
from sqlalchemy.orm import Session

from deepepil.labels import schema
from deepepil.labels.db import make_engine
from deepepil.labels.models import AppUser, Clinic, Role

__all__ = ["TEST_USERS", "add_clinics_and_users", "upgrade_with_clinics_and_users", "copy_template_database"]

#: username -> (role, clinic name or None)
TEST_USERS: dict[str, tuple[Role, str | None]] = {
    "ann": (Role.clinician, "North"),
    "bea": (Role.clinician, "North"),
    "carl": (Role.clinician, "South"),
    "dan": (Role.data_scientist, None),
    "root": (Role.admin, None),
}


def add_clinics_and_users(session: Session) -> dict[str, Clinic]:
    """Add clinics North and South and :data:`TEST_USERS` in ``session``; return the clinics by name."""
    clinics = {name: Clinic(name=name) for name in ("North", "South")}
    session.add_all(clinics.values())
    session.flush()
    session.add_all(
        AppUser(username=name, role=role, clinic_id=clinics[clinic].id if clinic else None)
        for name, (role, clinic) in TEST_USERS.items()
    )
    session.flush()
    return clinics


def upgrade_with_clinics_and_users(url: str) -> dict[str, int]:
    """Create the schema at ``url`` and add the clinics and users; return the clinic ids by name."""
    schema.upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            return {name: clinic.id for name, clinic in add_clinics_and_users(session).items()}
    finally:
        engine.dispose()


def copy_template_database(db_url: str, template: str | os.PathLike, *, admin_url: str | None = None) -> None:
    """Make the database at ``db_url`` a fresh copy of ``template``.

    SQLite: ``template`` is the template file. PostgreSQL: ``template`` is the name of a template
    database in the cluster whose maintenance database ``admin_url`` names; the database of
    ``db_url`` is dropped and created again from it.
    """
    if db_url.startswith("sqlite"):
        shutil.copyfile(template, db_url.split("sqlite:///", 1)[1])
        return
    if admin_url is None:
        raise ValueError(f"copying a PostgreSQL template needs admin_url (the cluster's maintenance database), "
                         f"got none for {db_url}")
    name = db_url.rsplit("/", 1)[1]
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    finally:
        engine.dispose()
