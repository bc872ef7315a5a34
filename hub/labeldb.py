"""What the hub asks the label database: who a user is, and their own database credentials.

Blocking calls (SQLAlchemy, psycopg2); the hooks in :mod:`hub.hooks` run them in a thread.
On PostgreSQL the hub connects as the database owner (``DEEPEPIL_DB_OWNER_URL``), which
never leaves the hub process: each user's server gets a URL with that user's own role and
a fresh password (:func:`deepepil.labels.authz.issue_credentials`), and row-level security
decides what the role may see. On SQLite (the single-host demo) every server gets the same
file URL: nothing is access-controlled there.
"""

from __future__ import annotations

import dataclasses

__all__ = ["LabelUser", "lookup_user", "user_database_url", "revoke_user_credentials", "GROUP_OF_ROLE"]

#: The JupyterHub group of each label-database role.
GROUP_OF_ROLE: dict[str, str] = {
    "clinician": "clinicians",
    "data_scientist": "data-scientists",
    "admin": "admins",
}


@dataclasses.dataclass(frozen=True)
class LabelUser:
    """A user as the label database knows them."""

    username: str
    role: str
    clinic: str | None
    active: bool

    @property
    def group(self) -> str:
        """The JupyterHub group of the user's role."""
        return GROUP_OF_ROLE[self.role]


def lookup_user(username: str, url: str) -> LabelUser | None:
    """The ``app_user`` row of ``username`` (with their clinic's name), or None when not registered."""
    from sqlalchemy import select

    from deepepil.labels.db import session_scope
    from deepepil.labels.models import AppUser, Clinic

    with session_scope(url) as session:
        row = session.execute(
            select(AppUser.username, AppUser.role, Clinic.name, AppUser.active)
            .outerjoin(Clinic, AppUser.clinic_id == Clinic.id)
            .where(AppUser.username == username)
        ).first()
    if row is None:
        return None
    return LabelUser(username=row[0], role=row[1].value, clinic=row[2], active=bool(row[3]))


def user_database_url(username: str, *, owner_url: str | None, sqlite_url: str | None) -> str:
    """The ``DEEPEPIL_DATABASE_URL`` for ``username``'s server.

    PostgreSQL (``owner_url`` given): a fresh password for the user's own role, on every call.
    SQLite: the shared file URL.
    """
    if owner_url is None:
        if not sqlite_url:
            raise ValueError("no label database: give owner_url (PostgreSQL) or sqlite_url")
        return sqlite_url
    from deepepil.labels.authz import issue_credentials

    return issue_credentials(username, url=owner_url)


def revoke_user_credentials(username: str, *, owner_url: str) -> None:
    """Invalidate ``username``'s database password (their server stopped)."""
    from deepepil.labels.authz import revoke_credentials

    revoke_credentials(username, url=owner_url)
