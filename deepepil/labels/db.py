"""Where the label database is and how to connect to it.

The URL comes from the ``url`` argument, else ``DEEPEPIL_DATABASE_URL``, else an SQLite
file in the user's data directory (the embedded single-user default). PostgreSQL URLs
use psycopg2: ``postgresql+psycopg2://user:password@host:5432/deepepil``.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["DATABASE_URL_ENV", "default_url", "resolve_url", "make_engine", "is_sqlite"]

DATABASE_URL_ENV = "DEEPEPIL_DATABASE_URL"


def default_url() -> str:
    """The embedded default: ``sqlite:///<user data dir>/deepepil/labels.sqlite``."""
    from platformdirs import user_data_dir

    folder = Path(user_data_dir("deepepil", appauthor=False))
    return f"sqlite:///{folder / 'labels.sqlite'}"


def resolve_url(url: str | None = None) -> str:
    """The database URL to use: ``url``, else ``$DEEPEPIL_DATABASE_URL``, else :func:`default_url`."""
    url = url or os.environ.get(DATABASE_URL_ENV) or default_url()
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    if not (url.startswith("sqlite") or url.startswith("postgresql+psycopg2://")):
        raise ValueError(
            f"unsupported database URL {url.split('://')[0]}://...; use sqlite:///PATH or "
            f"postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB"
        )
    return url


def is_sqlite(url_or_engine: str | Engine) -> bool:
    """True for an SQLite URL or engine."""
    name = url_or_engine.dialect.name if isinstance(url_or_engine, Engine) else str(url_or_engine)
    return name.startswith("sqlite")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """Create an engine for the resolved URL (SQLite: foreign keys on, WAL, a busy timeout)."""
    url = resolve_url(url)
    if is_sqlite(url):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:" and not url.startswith("sqlite://:memory:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)
