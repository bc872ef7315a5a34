"""The label database schema version: upgrade it, and check it before use.

The migrations live in :mod:`deepepil.labels.migrations` and run through Alembic with a
configuration built in code (no ``alembic.ini``). :func:`upgrade` brings a database to
the newest revision and seeds the vocabulary; :func:`check_schema` is what every entry
point calls before reading or writing, the way JupyterHub's ``check_db_revision`` is::

    deepepil db upgrade --url postgresql+psycopg2://...     # or schema.upgrade(url)
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from deepepil.errors import DeepEpilError, SchemaBehindError
from deepepil.labels.db import make_engine, resolve_url

__all__ = [
    "MIGRATIONS_DIR",
    "SchemaAheadError",
    "alembic_config",
    "head_revision",
    "current_revision",
    "is_known_revision",
    "upgrade",
    "check_schema",
]

#: The Alembic script folder shipped inside the package.
MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Any constant serves; it only has to be the same for every deepepil process.
_PG_UPGRADE_LOCK = 0x6465_6570_6570_6C  # "deepepl"


class SchemaAheadError(DeepEpilError):
    """The database was upgraded by a newer deepepil than this one: upgrade the deepepil package."""


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic :class:`~alembic.config.Config` for the label database, built in code.

    Parameters
    ----------
    url : str, optional
        Database URL (see :func:`deepepil.labels.db.resolve_url`).
    connection : sqlalchemy.engine.Connection, optional
        Run the migrations on this connection (and its transaction) instead of a new one.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", resolve_url(url).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg)


def head_revision() -> str:
    """The newest revision this deepepil knows (what :func:`upgrade` brings a database to)."""
    head = _script().get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def is_known_revision(revision: str) -> bool:
    """True when ``revision`` is one of this deepepil's migrations."""
    try:
        return _script().get_revision(revision) is not None
    except CommandError:
        return False


def _current(connection: Connection) -> tuple[str, ...]:
    return MigrationContext.configure(connection).get_current_heads()


def current_revision(url: str | Engine | None = None) -> str | None:
    """The database's revision, or None for a database without the deepepil schema."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        with engine.connect() as conn:
            heads = _current(conn)
    finally:
        if engine is not url:
            engine.dispose()
    return heads[0] if heads else None


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (default the newest), then seed the vocabulary.

    Works on an empty database and on one made by any earlier revision; running it again
    does nothing. On PostgreSQL concurrent upgrades serialize on an advisory lock. The
    vocabulary seed (version 1) is inserted when missing, once the vocabulary tables exist.

    Parameters
    ----------
    url : str, optional
        Database URL; default ``$DEEPEPIL_DATABASE_URL``, else the SQLite file in the user's
        data folder.
    revision : str
        Target revision (``"head"``, or an id such as ``"0001"``).

    Raises
    ------
    SchemaAheadError
        The database has a revision newer than this deepepil knows.
    """
    engine = make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        _transactional_ddl(engine)
    try:
        _check_not_ahead(engine)
        with engine.connect() as conn:
            with conn.begin():  # one transaction: a failed or killed upgrade changes nothing
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_UPGRADE_LOCK})
                try:
                    command.upgrade(alembic_config(url, connection=conn), revision)
                except CommandError as exc:
                    raise DeepEpilError(f"cannot upgrade the label database to {revision!r}: {exc}") from None
                if sa.inspect(conn).has_table("vocabulary_version"):
                    from deepepil.labels.vocabulary import seed_vocabulary

                    with Session(bind=conn) as session:  # joins the transaction above
                        seed_vocabulary(session)
                        session.flush()
    finally:
        engine.dispose()


def _transactional_ddl(engine: Engine) -> None:
    """Make SQLite run DDL inside the transaction (pysqlite commits before DDL by itself).

    Foreign keys are off on these connections: batch migrations copy tables, and the
    pragma cannot change inside a transaction.
    """

    @sa.event.listens_for(engine, "connect")
    def _driver_autocommit(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's BEGIN below is the only one
        dbapi_connection.execute("PRAGMA foreign_keys=OFF")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock now: upgrades serialize


def _check_not_ahead(engine: Engine) -> None:
    with engine.connect() as conn:
        heads = _current(conn)
    for head in heads:
        if not is_known_revision(head):
            raise SchemaAheadError(_ahead_message(engine, head))


def _ahead_message(engine: Engine, revision: str) -> str:
    from deepepil import __version__

    return (
        f"the label database {_safe_url(engine)} is at revision {revision}, which this deepepil "
        f"({__version__}, newest revision {head_revision()}) does not know: it was upgraded by a newer "
        f"deepepil. Upgrade the deepepil package (pip install -U deepepil); never downgrade the database"
    )


def check_schema(engine: Engine) -> None:
    """Raise unless the database behind ``engine`` is at this deepepil's newest revision.

    Raises
    ------
    SchemaBehindError
        The database is empty or at an older revision; the message says to run
        ``deepepil db upgrade``.
    SchemaAheadError
        The database is at a revision this deepepil does not know (a newer deepepil
        upgraded it); the message says to upgrade the package.
    """
    with engine.connect() as conn:
        heads = _current(conn)
    head = head_revision()
    if heads == (head,):
        return
    where = _safe_url(engine)
    default = engine.url.render_as_string(hide_password=False) == resolve_url(None)
    upgrade_cmd = "deepepil db upgrade" + ("" if default else f" --url {where}")
    if not heads:
        raise SchemaBehindError(
            f"the label database {where} has no deepepil schema (empty, or not a deepepil database); "
            f"run `{upgrade_cmd}` to create it"
        )
    _check_not_ahead(engine)
    raise SchemaBehindError(
        f"the label database {where} is at revision {', '.join(heads)} but this deepepil needs {head}; "
        f"run `{upgrade_cmd}` (back up the database first)"
    )
