"""Fixtures for the label service tests: an upgraded label database with clinics, users and recordings.

The schema (migrations + vocabulary seed) and the fixture rows are made once per test
session in a template (an SQLite file, a PostgreSQL template database); each test gets a
fresh copy, on both backends through ``db_url``:

* clinics ``North`` and ``South``;
* users ``ann`` and ``bea`` (clinicians of North), ``carl`` (clinician of South), ``dan``
  (data scientist), ``root`` (admin);
* recordings ``LabelDB.rec`` (North) and ``LabelDB.rec_south`` (South), 30 fps, 300 frames,
  with fake storage URIs (no Zarr store behind them: the label service never opens one).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from deepepil.labels import schema
from deepepil.labels.db import make_engine
from deepepil.labels.models import Patient, Recording
from deepepil.testing.labels import add_clinics_and_users, copy_template_database

FPS = 30.0
NUM_FRAMES = 300
_TEMPLATE_DB = "deepepil_labels_template"


@dataclasses.dataclass(frozen=True)
class LabelDB:
    """A fresh, populated label database."""

    url: str
    rec: int
    rec_south: int
    north: int
    south: int


def _populate(url: str) -> dict[str, int]:
    schema.upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            clinics = add_clinics_and_users(session)
            north, south = clinics["North"], clinics["South"]
            ids = {"north": north.id, "south": south.id}
            for key, clinic in (("rec", north), ("rec_south", south)):
                patient = Patient(code=f"SYN-{key.upper().replace('_', '-')}", clinic_id=clinic.id)
                session.add(patient)
                session.flush()
                recording = Recording(
                    name=f"{key}_S01", patient_id=patient.id, clinic_id=clinic.id,
                    storage_uri=f"file:///stores/{key}_S01.zarr", streams="rgb,ir,depth", fps=FPS,
                    num_frames=NUM_FRAMES, duration_seconds=NUM_FRAMES / FPS, size_bytes=1,
                    checksum="0" * 64, source_format="npz",
                )
                session.add(recording)
                session.flush()
                ids[key] = recording.id
        return ids
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("label-template") / "labels.sqlite"
    ids = _populate(f"sqlite:///{path}")
    return path, ids


@pytest.fixture(scope="session")
def _postgres_template(postgres_cluster) -> dict[str, int]:
    return _populate(postgres_cluster.create_database(_TEMPLATE_DB))


@pytest.fixture
def label_db(db_url, request) -> LabelDB:
    """A fresh copy of the populated label database on the backend of ``db_url``."""
    if db_url.startswith("sqlite"):
        template, ids = request.getfixturevalue("_sqlite_template")
        copy_template_database(db_url, template)
    else:
        ids = request.getfixturevalue("_postgres_template")
        copy_template_database(db_url, _TEMPLATE_DB, admin_url=request.getfixturevalue("postgres_cluster").url())
    return LabelDB(url=db_url, **ids)


@pytest.fixture
def open_store(label_db):
    """``open_store(user)``: a :class:`LabelStore` on ``label_db`` as ``user``, closed after the test."""
    from deepepil.labels.service import connect

    opened = []

    def open_(user: str):
        store = connect(label_db.url, user=user)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()
