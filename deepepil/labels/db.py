"""Where the label database is and how to connect to it.

The URL comes from the ``url`` argument, else ``DEEPEPIL_DATABASE_URL``, else an SQLite
file in the user's data directory (the embedded single-user default). PostgreSQL URLs
use psycopg2: ``postgresql+psycopg2://user:password@host:5432/deepepil``.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from deepepil.labels.models import AppUser

__all__ = [
    "DATABASE_URL_ENV",
    "USER_ENV",
    "default_url",
    "resolve_url",
    "safe_url",
    "database_configured",
    "make_engine",
    "session_scope",
    "is_sqlite",
    "current_username",
    "login_user",
    "resolve_user",
    "translate_denied",
]

DATABASE_URL_ENV = "DEEPEPIL_DATABASE_URL"
#: Overrides the user name (before ``JUPYTERHUB_USER`` and the login name).
USER_ENV = "DEEPEPIL_USER"


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


def safe_url(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def database_configured(url: str | None = None) -> bool:
    """True when a database was named: ``url`` given or ``$DEEPEPIL_DATABASE_URL`` set."""
    return bool(url or os.environ.get(DATABASE_URL_ENV))


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
    """Create an engine for the resolved URL (SQLite: foreign keys on, WAL, a busy timeout;
    PostgreSQL: a 5 s connect timeout, connections checked before use)."""
    url = resolve_url(url)
    if is_sqlite(url):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:" and not url.startswith("sqlite://:memory:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # a server that does not answer (a network partition) is reported after 5 s, not minutes
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("connect_timeout", 5)
    kwargs["connect_args"] = connect_args
    return sa.create_engine(url, **kwargs)


@contextlib.contextmanager
def session_scope(url: str | None = None, *, check: bool = True) -> Iterator[Session]:
    """A session on a fresh engine, committed on success, rolled back on error, then disposed.

    With ``check`` (default) the schema is checked first
    (:func:`deepepil.labels.schema.check_schema`).
    """
    from sqlalchemy.orm import Session

    engine = make_engine(url)
    try:
        if check:
            from deepepil.labels.schema import check_schema

            check_schema(engine)
        with translate_denied(), Session(engine) as session, session.begin():
            yield session
    finally:
        engine.dispose()


def current_username(username: str | None = None) -> str:
    """Who is calling: ``username``, else ``$DEEPEPIL_USER``, else ``$JUPYTERHUB_USER``, else the login name."""
    return (
        username
        or os.environ.get(USER_ENV)
        or os.environ.get("JUPYTERHUB_USER")
        or getpass.getuser()
    )


#: SQLSTATE of "permission denied" and of a row refused by a row-level security policy.
_INSUFFICIENT_PRIVILEGE = "42501"


@contextlib.contextmanager
def translate_denied() -> Iterator[None]:
    """Turn PostgreSQL's "permission denied" (privileges, row-level security) into :class:`AccessDeniedError`."""
    from deepepil.errors import AccessDeniedError

    try:
        yield
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) != _INSUFFICIENT_PRIVILEGE:
            raise
        reason = str(exc.orig).strip().splitlines()[0]
        raise AccessDeniedError(
            f"the label database refused: {reason}. Your database role allows only what your deepepil role "
            f"and clinic allow (docs/security.md); ask an admin if you need more"
        ) from exc


def login_user(session: Session) -> AppUser | None:
    """On PostgreSQL, the user whose own login role this connection uses (``app_user.db_role``).

    Raises
    ------
    AccessDeniedError
        The login is an ordinary role (neither the owner nor a superuser) that belongs to no
        registered user.
    """
    from sqlalchemy import select

    from deepepil.errors import AccessDeniedError
    from deepepil.labels.models import AppUser

    if session.get_bind().dialect.name != "postgresql":
        return None
    user = session.scalar(select(AppUser).where(AppUser.db_role == sa.func.session_user()))
    if user is not None:
        return user
    login, privileged = session.execute(sa.text(
        "SELECT session_user, r.rolsuper OR r.rolbypassrls OR pg_has_role(session_user, c.relowner, 'MEMBER') "
        "FROM pg_roles r, pg_class c WHERE r.rolname = session_user AND c.oid = 'app_user'::regclass"
    )).one()
    if not privileged:
        raise AccessDeniedError(
            f"database role {login!r} belongs to no registered user of this label database: connect with the "
            f"URL the hub gave your server ($DEEPEPIL_DATABASE_URL), or ask an admin"
        )
    return None


def resolve_user(session: Session, username: str | None = None, *, auto_register: bool) -> AppUser:
    """The registered, active :class:`~deepepil.labels.models.AppUser` who is calling.

    Connected with a user's own database role (PostgreSQL, :mod:`deepepil.labels.authz`),
    the user is the role's owner (:func:`login_user`) and ``$DEEPEPIL_USER`` /
    ``$JUPYTERHUB_USER`` are ignored. Otherwise (the owner's connection, SQLite) the user is
    named by ``username`` or :func:`current_username`.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        An open session on the label database.
    username : str, optional
        Default :func:`current_username`.
    auto_register : bool
        Register an unknown user as an admin instead of refusing. Pass
        ``is_sqlite(session.get_bind())``: the embedded SQLite database is single-user,
        while on PostgreSQL an admin registers users (``deepepil admin add-user``).

    Raises
    ------
    AccessDeniedError
        The user is not registered (and ``auto_register`` is false), or was deactivated; or
        ``username`` names someone else than the user of the database login.
    """
    from sqlalchemy import select

    from deepepil.errors import AccessDeniedError
    from deepepil.labels.models import AppUser, Role

    user = login_user(session)
    if user is not None:
        if username is not None and username != user.username:
            raise AccessDeniedError(
                f"this database login belongs to user {user.username!r}, who cannot act as {username!r}"
            )
        if not user.active:
            raise AccessDeniedError(f"user {user.username!r} is deactivated in the label database; ask an admin")
        return user
    name = current_username(username)
    user = session.scalar(select(AppUser).where(AppUser.username == name))
    if user is None and auto_register:
        try:
            with session.begin_nested():
                user = AppUser(username=name, role=Role.admin)
                session.add(user)
        except sa.exc.IntegrityError:  # registered concurrently by another process
            user = session.scalar(select(AppUser).where(AppUser.username == name))
    if user is None:
        raise AccessDeniedError(
            f"user {name!r} is not registered in the label database; ask an admin to run "
            f"`deepepil admin add-user {name} --role clinician --clinic CLINIC` (or --role data_scientist)"
        )
    if not user.active:
        raise AccessDeniedError(f"user {name!r} is deactivated in the label database; ask an admin")
    return user
