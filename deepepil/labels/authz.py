"""Per-user PostgreSQL credentials: what the hub gives each user's server.

Authorization lives in PostgreSQL (migration ``0003``, docs/security.md): every hub user
connects as their own LOGIN role, a member of exactly one NOLOGIN group role
(``deepepil_clinician``, ``deepepil_data_scientist`` or ``deepepil_admin``), and row-level
security confines them to what their ``app_user`` row allows. The hub calls these
functions with the owner's URL (the role that ran ``deepepil db upgrade``, a superuser or a
role with CREATEROLE) when it spawns or stops a server::

    user_url = issue_credentials("ann", url=OWNER_URL)    # fresh password, every call
    # ... DEEPEPIL_DATABASE_URL=user_url in ann's server environment only ...
    revoke_credentials("ann", url=OWNER_URL)               # server stopped: no more logins

No password is stored anywhere but in PostgreSQL (``pg_authid``, readable by superusers
only), and only as a SCRAM-SHA-256 verifier computed here: the password itself never
reaches the server or its logs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from deepepil.errors import AccessDeniedError, ValidationError
from deepepil.labels.db import is_sqlite, make_engine, resolve_url

__all__ = [
    "GROUP_ROLES",
    "ROLE_PREFIX",
    "role_name",
    "issue_credentials",
    "revoke_credentials",
]

#: deepepil role (``app_user.role``) -> the PostgreSQL group role its users are members of.
GROUP_ROLES: dict[str, str] = {
    "clinician": "deepepil_clinician",
    "data_scientist": "deepepil_data_scientist",
    "admin": "deepepil_admin",
}
#: Login roles of user names made of ``[a-z0-9_]`` (at most 40 characters) are ``deepepil_u_<name>``.
ROLE_PREFIX = "deepepil_u_"
#: Other user names get ``deepepil_h_<slug>_<hash>`` (the hash keeps distinct names distinct).
HASHED_ROLE_PREFIX = "deepepil_h_"
_PLAIN_NAME = re.compile(r"[a-z0-9_]{1,40}")
_SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)
_LOCK_NAMESPACE = 0x4441  # advisory lock key: (namespace, app_user id)
_INSUFFICIENT_PRIVILEGE = "42501"


def role_name(username: str) -> str:
    """The PostgreSQL login role of hub user ``username``: deterministic, a safe identifier.

    >>> role_name("ann")
    'deepepil_u_ann'
    >>> role_name("Ann.Smith@clinic.example")  # doctest: +ELLIPSIS
    'deepepil_h_ann_smith_clinic_example_...'
    """
    if not isinstance(username, str) or not username.strip():
        raise ValidationError(f"a user name must be non-empty text, got {username!r}")
    if _PLAIN_NAME.fullmatch(username):
        return ROLE_PREFIX + username
    slug = re.sub(r"[^a-z0-9]+", "_", username.lower()).strip("_")[:32].rstrip("_")
    digest = hashlib.sha256(username.encode("utf-8")).hexdigest()[:12]
    return f"{HASHED_ROLE_PREFIX}{slug}_{digest}" if slug else f"{HASHED_ROLE_PREFIX}{digest}"


def _scram_verifier(password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802, RFC 7677)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, _SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _owner_url(url: str | None) -> str:
    resolved = resolve_url(url)
    if is_sqlite(resolved):
        raise ValidationError(
            "per-user database credentials need PostgreSQL: the SQLite database is single-user and has no "
            "roles. Configure DEEPEPIL_DATABASE_URL=postgresql+psycopg2://OWNER:PASSWORD@HOST:5432/DB "
            "(the role that ran `deepepil db upgrade`)"
        )
    return resolved


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def _app_user(conn: Connection, username: str) -> Any:
    from deepepil.labels._rows import USER_T

    return conn.execute(
        sa.select(USER_T.c.id, USER_T.c.username, USER_T.c.role, USER_T.c.active, USER_T.c.db_role)
        .where(USER_T.c.username == username)
    ).first()


def _memberships(conn: Connection, role: str) -> tuple[list[str], list[str]]:
    """(roles ``role`` is a member of, roles that are members of ``role``)."""
    member_of = conn.execute(sa.text(
        "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = :role"), {"role": role}).scalars().all()
    members = conn.execute(sa.text(
        "SELECT u.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = :role AND u.rolname <> current_user"),
        {"role": role}).scalars().all()
    return list(member_of), list(members)


def _set_login(conn: Connection, role: str, verifier: str) -> None:
    """Create or alter ``role`` as a plain LOGIN role with the password ``verifier``."""
    exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).first()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(sa.text(f"{verb} ROLE {_quote(conn, role)} WITH LOGIN INHERIT NOCREATEDB NOCREATEROLE "
                         f"PASSWORD :verifier"), {"verifier": verifier})
    unsafe = conn.execute(sa.text(
        "SELECT rolsuper OR rolreplication OR rolbypassrls FROM pg_roles WHERE rolname = :role"),
        {"role": role}).scalar()
    if unsafe:
        raise AccessDeniedError(
            f"database role {role} exists with SUPERUSER, REPLICATION or BYPASSRLS: it cannot be a deepepil "
            f"user's role. A database administrator must drop it or remove those attributes"
        )


def _set_group(conn: Connection, role: str, group: str) -> None:
    """Make ``role`` a member of exactly ``group``, and nobody (but the owner) a member of ``role``."""
    member_of, members = _memberships(conn, role)
    quoted = _quote(conn, role)
    for other in member_of:
        if other != group:
            conn.execute(sa.text(f"REVOKE {_quote(conn, other)} FROM {quoted}"))
    if group not in member_of:
        conn.execute(sa.text(f"GRANT {_quote(conn, group)} TO {quoted}"))
    for member in members:  # whoever could SET ROLE to this user
        conn.execute(sa.text(f"REVOKE {quoted} FROM {_quote(conn, member)}"))


@contextlib.contextmanager
def _owner_needed(what: str) -> Iterator[None]:
    """Turn "permission denied" (the URL's role may not manage roles) into an AccessDeniedError saying so."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) != _INSUFFICIENT_PRIVILEGE:
            raise
        owner = "the owner's URL (the role that ran `deepepil db upgrade`: a superuser, or a role with CREATEROLE)"
        first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise AccessDeniedError(f"cannot {what}: {first}. Use {owner}") from None


def issue_credentials(username: str, *, url: str | None = None) -> str:
    """Give hub user ``username`` their own database login with a fresh password; return its URL.

    Creates (or alters) the login role :func:`role_name` ``(username)``, sets a new random
    password (the previous one stops working), makes the role a member of exactly the group
    role of the user's ``app_user.role`` and records it in ``app_user.db_role``.

    Parameters
    ----------
    username : str
        A registered, active user (``deepepil admin add-user``).
    url : str, optional
        The owner's PostgreSQL URL; default ``$DEEPEPIL_DATABASE_URL``.

    Returns
    -------
    str
        ``postgresql+psycopg2://ROLE:PASSWORD@HOST:PORT/DB`` (host, port, database and query of
        ``url``), for that user's server environment only.

    Raises
    ------
    AccessDeniedError
        The user is not registered or is deactivated, or ``url``'s role may not manage roles.
    ValidationError
        ``url`` is an SQLite database, or another user holds the role name already.
    SchemaBehindError
        The database needs ``deepepil db upgrade``.
    """
    from deepepil.labels._rows import USER_T
    from deepepil.labels.schema import check_schema

    owner_url = _owner_url(url)
    role = role_name(username)
    password = secrets.token_urlsafe(32)
    engine = make_engine(owner_url)
    try:
        check_schema(engine)
        with engine.connect() as conn, conn.begin():
            user = _app_user(conn, username)
            if user is None:
                raise AccessDeniedError(
                    f"user {username!r} is not registered in the label database, so gets no database login; an "
                    f"admin registers users with `deepepil admin add-user {username} --role ROLE [--clinic NAME]`"
                )
            if not user.active:
                raise AccessDeniedError(f"user {username!r} is deactivated in the label database: no database "
                                        f"login (`deepepil admin activate-user {username}` lets them in again)")
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_NAMESPACE, user.id)))  # one spawn at a time
            holder = conn.execute(sa.select(USER_T.c.username).where(USER_T.c.db_role == role,
                                                                     USER_T.c.id != user.id)).scalar()
            if holder is not None:
                raise ValidationError(f"database role {role} belongs to user {holder!r} already")
            with _owner_needed(f"create the database role of {username!r}"):
                _set_login(conn, role, _scram_verifier(password))
                _set_group(conn, role, GROUP_ROLES[getattr(user.role, "value", user.role)])
            if user.db_role != role:
                conn.execute(sa.update(USER_T).where(USER_T.c.id == user.id).values(db_role=role))
    finally:
        engine.dispose()
    user_url = sa.engine.make_url(owner_url).set(username=role, password=password)
    return user_url.render_as_string(hide_password=False)


def revoke_credentials(username: str, *, url: str | None = None, terminate: bool = True) -> bool:
    """Stop hub user ``username`` from logging in: NOLOGIN and no password (when a server stops).

    Parameters
    ----------
    username : str
        A hub user name (registered or not: the role derived from the name is revoked too).
    url : str, optional
        The owner's PostgreSQL URL; default ``$DEEPEPIL_DATABASE_URL``.
    terminate : bool
        Also end the role's open sessions (needs a superuser or ``pg_signal_backend``; skipped
        silently without that privilege: the sessions end with their server anyway).

    Returns
    -------
    bool
        True when a role was revoked, False when the user never had one.
    """
    from deepepil.labels._rows import USER_T

    owner_url = _owner_url(url)
    engine = make_engine(owner_url)
    try:
        with engine.connect() as conn:
            with conn.begin():
                stored = None
                inspector = sa.inspect(conn)
                if inspector.has_table("app_user"):
                    if "db_role" in {c["name"] for c in inspector.get_columns("app_user")}:
                        stored = conn.execute(sa.select(USER_T.c.db_role)
                                              .where(USER_T.c.username == username)).scalar()
                role = stored or role_name(username)
                exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).first()
                if exists is None:
                    return False
                with _owner_needed(f"revoke the database role of {username!r}"):
                    conn.execute(sa.text(f"ALTER ROLE {_quote(conn, role)} WITH NOLOGIN PASSWORD NULL"))
            if terminate:
                _terminate_sessions(conn, role)
        return True
    finally:
        engine.dispose()


def _terminate_sessions(conn: Connection, role: str) -> None:
    try:
        with conn.begin():
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"),
                         {"role": role})
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) != _INSUFFICIENT_PRIVILEGE:
            raise
