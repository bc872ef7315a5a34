"""Fixtures for the labeling app tests: real recording stores, a populated label database, the widget.

* ``tiny_stores``: two published stores of a tiny synthetic recording (2 s, 60 frames at 30 fps),
  ingested once per test session (read-only: tests that damage a store use ``store_copy``).
* ``ui_db``: a fresh label database on the backend of ``db_url`` (SQLite, then PostgreSQL), made
  from a per-session template: clinics ``North`` and ``South``; users ``ann`` and ``bea``
  (clinicians of North), ``carl`` (clinician of South), ``dan`` (data scientist), ``root``
  (admin); recording ``rec`` (North, patient ``SYN-NORTH1``) and ``rec_south`` (South), both
  registered from ``tiny_stores`` through the catalog; two pending suggestions by ``dan`` on ``rec``.
  ``ui_sqlite_db`` is the same on SQLite only.
* ``make_app(user, **kwargs)``: a :class:`~deepepil.ui.LabelingApp` on ``ui_db`` as ``user``
  without the background thread, whose outgoing messages are recorded (``app.sent``).
* ``ask(app, content)``: send a message the way the front end does (a comm message through
  ``Widget._handle_msg``) and return the reply carrying its ``req``.
* ``private_postgres``: a PostgreSQL cluster of the test's own, populated like ``ui_db``, that the
  test may stop and start again (``.stop_server()``, ``.start_server()``) to cut the database off.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
from pathlib import Path
from typing import Any, Optional

import pytest

import deepepil
from deepepil.labels import catalog
from deepepil.testing.labels import copy_template_database, upgrade_with_clinics_and_users

SECONDS = 2.0
N_FRAMES = 60
_TEMPLATE_DB = "deepepil_ui_template"


@dataclasses.dataclass(frozen=True)
class UiDB:
    """A fresh, populated label database and the stores behind its recordings."""

    url: str
    rec: int
    rec_south: int
    suggestions: tuple[int, ...]
    store: Path
    store_south: Path


@pytest.fixture(autouse=True)
def _no_ambient_database(monkeypatch):
    """Tests name their database and user; nothing comes from the developer's environment."""
    for name in ("DEEPEPIL_DATABASE_URL", "DEEPEPIL_USER", "JUPYTERHUB_USER", "DEEPEPIL_STORE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tiny_stores(tmp_path_factory) -> tuple[Path, Path]:
    """Two published stores (``north.zarr``, ``south.zarr``) of a tiny synthetic recording."""
    from deepepil.synthetic.patient import make_cohort_profiles
    from deepepil.synthetic.recording import make_recording

    recording = make_recording(make_cohort_profiles(1, 0)[0], seconds=SECONDS, size="tiny", seed=0)
    folder = tmp_path_factory.mktemp("ui-stores")
    north = deepepil.ingest(recording, folder, name="north", progress=False)
    south = deepepil.ingest(recording, folder, name="south", progress=False)
    return north, south


def _populate(url: str, stores: tuple[Path, Path]) -> dict[str, Any]:
    upgrade_with_clinics_and_users(url)
    rec = catalog.register_recording(stores[0], "North", "SYN-NORTH1", url, user="root")
    rec_south = catalog.register_recording(stores[1], "South", "SYN-SOUTH1", url, user="root")
    from deepepil.labels.service import connect

    with connect(url, user="dan") as dan:
        suggestions = (dan.add_suggestion(rec, "head/face", "head version", 10, 20, 0.9, "moi-test:1", "left").id,
                       dan.add_suggestion(rec, "trunk", "tonic posturing", 30, 45, 0.6, "moi-test:1").id)
    return {"rec": rec, "rec_south": rec_south, "suggestions": suggestions}


@pytest.fixture(scope="session")
def _ui_sqlite_template(tmp_path_factory, tiny_stores) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("ui-template") / "labels.sqlite"
    return path, _populate(f"sqlite:///{path}", tiny_stores)


@pytest.fixture(scope="session")
def _ui_postgres_template(postgres_cluster, tiny_stores) -> dict[str, Any]:
    return _populate(postgres_cluster.create_database(_TEMPLATE_DB), tiny_stores)


def _copy_database(db_url: str, request) -> dict[str, Any]:
    if db_url.startswith("sqlite"):
        template, ids = request.getfixturevalue("_ui_sqlite_template")
        copy_template_database(db_url, template)
        return ids
    ids = request.getfixturevalue("_ui_postgres_template")
    copy_template_database(db_url, _TEMPLATE_DB, admin_url=request.getfixturevalue("postgres_cluster").url())
    return ids


@pytest.fixture
def ui_db(db_url, request, tiny_stores) -> UiDB:
    """A fresh copy of the populated label database, on SQLite and on PostgreSQL."""
    ids = _copy_database(db_url, request)
    return UiDB(url=db_url, store=tiny_stores[0], store_south=tiny_stores[1], **ids)


@pytest.fixture
def ui_sqlite_db(tmp_path, request, tiny_stores) -> UiDB:
    """``ui_db`` on SQLite only (for tests where one backend says all, e.g. running a notebook)."""
    url = f"sqlite:///{tmp_path / 'labels.sqlite'}"
    return UiDB(url=url, store=tiny_stores[0], store_south=tiny_stores[1], **_copy_database(url, request))


@pytest.fixture
def store_copy(tmp_path, tiny_stores, ui_db):
    """``store_copy(name)``: a private copy of the tiny store, registered for North; (recording id, path)."""

    def copy(name: str) -> tuple[int, Path]:
        path = shutil.copytree(tiny_stores[0], tmp_path / f"{name}.zarr")
        return catalog.register_recording(path, "North", None, ui_db.url, user="root"), Path(path)

    return copy


@pytest.fixture
def open_label_store(ui_db):
    """``open_label_store(user)``: a :class:`LabelStore` on ``ui_db`` as ``user``, closed after the test."""
    from deepepil.labels.service import connect

    opened = []

    def open_(user: str, url: Optional[str] = None):
        store = connect(url or ui_db.url, user=user)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def record_sent(app) -> list[tuple[dict, list]]:
    """Replace ``app.send`` by a recorder; return the list it appends ``(content, buffers)`` to."""
    sent: list[tuple[dict, list]] = []

    def send(content, buffers=None):
        sent.append((content, list(buffers or [])))

    app.send = send
    app.sent = sent
    return sent


@pytest.fixture
def make_app(ui_db):
    """``make_app(user, **kwargs)``: a recorded LabelingApp on ``ui_db`` (no background thread), closed after."""
    from deepepil.ui import LabelingApp

    apps = []

    def make(user: str, **kwargs):
        kwargs.setdefault("poll_seconds", 0)
        url = kwargs.pop("url", ui_db.url)
        app = LabelingApp(url, user=user, **kwargs)
        record_sent(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


_req_ids = itertools.count(1)


def request(app, content: dict[str, Any], buffers: Optional[list] = None) -> dict[str, Any]:
    """Deliver ``content`` as the front end would (a comm ``custom`` message); return the reply to it."""
    req = f"t-{next(_req_ids)}"
    message = {"content": {"data": {"method": "custom", "content": {**content, "req": req}}},
               "buffers": list(buffers or [])}
    before = len(app.sent)
    app._handle_msg(message)
    replies = [c for c, _ in app.sent[before:] if c.get("req") == req]
    assert len(replies) == 1, f"expected one reply to {content.get('type')}, got {app.sent[before:]}"
    return replies[0]


def reply_buffers(app, reply: dict[str, Any]) -> list:
    """The buffers sent with ``reply``."""
    return next(b for c, b in app.sent if c is reply)


@pytest.fixture
def recorded():
    """``recorded(app)``: record what ``app`` sends (``app.sent``), for apps not made by ``make_app``."""
    return record_sent


@pytest.fixture
def ask():
    """``ask(app, content)``: deliver a front-end message to ``app``; return the reply to it."""
    return request


@pytest.fixture
def private_postgres(tiny_stores):
    """A populated PostgreSQL database in a cluster of the test's own: ``(UiDB, server)``."""
    from deepepil.testing.postgres import TemporaryPostgres

    with TemporaryPostgres() as pg:
        url = pg.create_database("labels")
        ids = _populate(url, tiny_stores)
        server = pg
        yield UiDB(url=url, store=tiny_stores[0], store_south=tiny_stores[1], **ids), server
        try:
            server.resume()  # let TemporaryPostgres stop it cleanly
        except RuntimeError:
            pass
