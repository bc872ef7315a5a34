"""Administration of the label database: clinics, users and the controlled vocabularies.

What ``deepepil admin ...`` runs. These functions do not check the caller's role in
Python: whoever holds the database credentials may run them (on the hub, only the
admins' database roles may write these tables; see DESIGN.md "Hub and security").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy import select

from deepepil.errors import NotFoundError, ValidationError
from deepepil.labels import vocabulary
from deepepil.labels.db import current_username, session_scope
from deepepil.labels.models import AppUser, Clinic, Role

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ROLES",
    "add_clinic",
    "list_clinics",
    "add_user",
    "set_user_active",
    "deactivate_user",
    "list_users",
    "add_term",
    "retire_term",
]

#: The roles a user may have.
ROLES: tuple[str, ...] = tuple(r.value for r in Role)


def _name(value: str, what: str, max_length: int = 100) -> str:
    value = (value or "").strip()
    if not value or len(value) > max_length:
        raise ValidationError(f"{what} must be 1 to {max_length} characters, got {value!r}")
    return value


@contextlib.contextmanager
def _unique(message: str) -> Iterator[None]:
    try:
        yield
    except sa.exc.IntegrityError:  # lost a race with a concurrent insert of the same name
        raise ValidationError(message) from None


def add_clinic(name: str, *, url: str | None = None) -> int:
    """Add a clinic; return its id.

    Raises
    ------
    ValidationError
        A clinic of that name exists, or the name is empty or too long.
    """
    name = _name(name, "a clinic name")
    with _unique(f"clinic {name!r} exists already"), session_scope(url) as session:
        if session.scalar(select(Clinic.id).where(Clinic.name == name)) is not None:
            raise ValidationError(f"clinic {name!r} exists already")
        clinic = Clinic(name=name)
        session.add(clinic)
        session.flush()
        return clinic.id


def list_clinics(*, url: str | None = None) -> pd.DataFrame:
    """The clinics: ``clinic_id``, ``name``, ``created_at``."""
    import pandas as pd

    with session_scope(url) as session:
        rows = session.execute(select(Clinic.id, Clinic.name, Clinic.created_at).order_by(Clinic.name)).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["clinic_id", "name", "created_at"])
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def add_user(username: str, role: str | Role, clinic: str | None = None, *, url: str | None = None) -> int:
    """Register a hub user with a role; return the user's id.

    Parameters
    ----------
    username : str
        The hub (JupyterHub) user name.
    role : {"clinician", "data_scientist", "admin"}
        Clinicians see and label their clinic's recordings; data scientists read all
        pseudonymized data; admins manage everything.
    clinic : str, optional
        The user's clinic: required for clinicians.

    Raises
    ------
    ValidationError
        Unknown role, clinician without clinic, or the user exists already.
    NotFoundError
        No clinic of that name.
    """
    username = _name(username, "a user name")
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError(f"unknown role {role!r}; roles are: {', '.join(ROLES)}") from None
    if role == Role.clinician and not clinic:
        raise ValidationError(
            f"a clinician belongs to a clinic: give --clinic NAME (clinic=...) for {username!r}"
        )
    with _unique(f"user {username!r} exists already"), session_scope(url) as session:
        if session.scalar(select(AppUser.id).where(AppUser.username == username)) is not None:
            raise ValidationError(f"user {username!r} exists already")
        clinic_id = None
        if clinic:
            clinic_id = session.scalar(select(Clinic.id).where(Clinic.name == clinic))
            if clinic_id is None:
                known = list(session.scalars(select(Clinic.name).order_by(Clinic.name)))
                raise NotFoundError(
                    f"no clinic named {clinic!r}; clinics are: {', '.join(known) or '(none yet)'}. "
                    f"Add it with `deepepil admin add-clinic NAME`"
                )
        user = AppUser(username=username, role=role, clinic_id=clinic_id)
        session.add(user)
        session.flush()
        return user.id


def set_user_active(username: str, active: bool, *, url: str | None = None) -> None:
    """Deactivate (``active=False``) or reactivate a user. Their labels stay, attributed to them."""
    with session_scope(url) as session:
        user = session.scalar(select(AppUser).where(AppUser.username == username))
        if user is None:
            raise NotFoundError(f"no user {username!r}; `deepepil admin list-users` lists them")
        user.active = active


def deactivate_user(username: str, *, url: str | None = None) -> None:
    """Deactivate a user: they can no longer connect; their labels stay, attributed to them."""
    set_user_active(username, False, url=url)


def list_users(*, url: str | None = None) -> pd.DataFrame:
    """The registered users: ``username``, ``role``, ``clinic``, ``active``, ``created_at``."""
    import pandas as pd

    with session_scope(url) as session:
        rows = session.execute(
            select(AppUser.username, AppUser.role, Clinic.name, AppUser.active, AppUser.created_at)
            .outerjoin(Clinic, AppUser.clinic_id == Clinic.id)
            .order_by(AppUser.username)
        ).all()
    frame = pd.DataFrame(
        [(u, r.value, c, bool(a), t) for u, r, c, a, t in rows],
        columns=["username", "role", "clinic", "active", "created_at"],
    )
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def _vocabulary_call(func, kind: str, code: str, url: str | None, **kwargs) -> int:
    with session_scope(url) as session:
        try:
            return func(session, kind, code, by=current_username(), **kwargs)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def add_term(kind: str, code: str, *, label: str | None = None, description: str | None = None,
             url: str | None = None) -> int:
    """Add a vocabulary term (or bring back a retired one); return the new vocabulary version.

    ``kind`` is one of :data:`deepepil.labels.vocabulary.KINDS` (``region``, ``moi_label``, ...).
    """
    return _vocabulary_call(vocabulary.add_term, kind, code, url, label=label, description=description)


def retire_term(kind: str, code: str, *, url: str | None = None) -> int:
    """Retire a vocabulary term: new labels cannot use it, existing ones keep it. Returns the new version."""
    return _vocabulary_call(vocabulary.retire_term, kind, code, url)
