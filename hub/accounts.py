"""Hub accounts of the native authenticator: sign-ups waiting for approval, approval, demo accounts.

NativeAuthenticator keeps its accounts (bcrypt password hash, ``is_authorized``) in the
``users_info`` table of the hub's own database (``DEEPEPIL_HUB_DB_URL``, by default
``jupyterhub.sqlite`` in the hub's state folder). These functions work on that table
directly, so they run on the hub host whether the hub is running or not; the running hub
sees the change at the next login (:class:`hub.auth.DeepEpilNativeAuthenticator` reads
accounts through).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from hub.settings import USERNAME_PATTERN

__all__ = ["create_account", "approve_account", "list_accounts", "normalize_username"]


def normalize_username(username: str) -> str:
    """The account name as NativeAuthenticator stores it (lowercase), or ValueError naming what is allowed."""
    name = (username or "").strip().lower()
    if not re.fullmatch(USERNAME_PATTERN, name):
        raise ValueError(
            f"hub user name {username!r} is not allowed: use 1 to 64 lowercase letters, digits, '.', '_' "
            f"or '-', starting with a letter or digit"
        )
    return name


def _quiet_info(record: logging.LogRecord) -> bool:
    return record.levelno > logging.INFO


@contextlib.contextmanager
def _hub_session(hub_db_url: str, *, create: bool = False) -> Iterator[object]:
    # importing nativeauthenticator.orm registers users_info on JupyterHub's metadata, so the
    # session factory creates it (with the hub's own tables, stamped at the hub's schema revision)
    import nativeauthenticator.orm  # noqa: F401
    from jupyterhub import orm

    if hub_db_url.startswith("sqlite:///"):
        path = Path(hub_db_url.split("sqlite:///", 1)[1])
        if not create and not path.exists():
            raise FileNotFoundError(
                f"no hub database at {path}: give --hub-db URL, or set DEEPEPIL_HUB_DB_URL or "
                f"DEEPEPIL_HUB_STATE_DIR as the hub has them"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    migration_log = logging.getLogger("alembic.runtime.migration")
    migration_log.addFilter(_quiet_info)  # "Context impl SQLiteImpl." and the like, on every command
    try:
        session = orm.new_session_factory(hub_db_url)()
    finally:
        migration_log.removeFilter(_quiet_info)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        bind = session.get_bind()
        session.close()
        bind.dispose()


def create_account(username: str, password: str, *, hub_db_url: str, approved: bool = True) -> bool:
    """Create a native account (approved by default); set the password if it exists. True when new."""
    import bcrypt
    from nativeauthenticator.orm import UserInfo

    name = normalize_username(username)
    if len(password) < 8:
        raise ValueError(f"the password for {name!r} is too short: use at least 8 characters")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
    with _hub_session(hub_db_url, create=True) as db:
        info = db.query(UserInfo).filter(UserInfo.username == name).first()
        if info is None:
            db.add(UserInfo(username=name, password=hashed, is_authorized=approved))
            return True
        info.password = hashed
        info.is_authorized = approved or info.is_authorized
        return False


def approve_account(username: str, *, hub_db_url: str) -> bool:
    """Approve a signed-up account so it can log in. True when it was waiting, False when approved already.

    Raises
    ------
    LookupError
        No sign-up under that name (the message lists the accounts waiting for approval).
    """
    from nativeauthenticator.orm import UserInfo

    name = normalize_username(username)
    with _hub_session(hub_db_url) as db:
        info = db.query(UserInfo).filter(UserInfo.username == name).first()
        if info is None:
            waiting = [u.username for u in db.query(UserInfo).filter(UserInfo.is_authorized.is_(False))]
            raise LookupError(
                f"no hub account {name!r} has signed up (at /hub/signup); waiting for approval: "
                f"{', '.join(sorted(waiting)) or 'nobody'}"
            )
        if info.is_authorized:
            return False
        info.is_authorized = True
        return True


def list_accounts(*, hub_db_url: str) -> list[tuple[str, bool]]:
    """All native accounts: (user name, approved), sorted by name."""
    from nativeauthenticator.orm import UserInfo

    with _hub_session(hub_db_url) as db:
        return sorted((u.username, bool(u.is_authorized)) for u in db.query(UserInfo))
