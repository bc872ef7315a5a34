"""Shared fixtures: a real PostgreSQL cluster for the session, and database URLs for both backends.

``db_url`` runs a test once against a fresh SQLite file and once against a fresh database
in the session's PostgreSQL cluster (started from the server binaries; see
:mod:`deepepil.testing.postgres`). Tests that need PostgreSQL only use ``pg_url``.
"""

from __future__ import annotations

import pytest

from deepepil.testing.postgres import TemporaryPostgres, postgres_available


@pytest.fixture(scope="session")
def postgres_cluster():
    """One throwaway PostgreSQL cluster per test process (each xdist worker has its own)."""
    if not postgres_available():
        pytest.fail("PostgreSQL server binaries not found: install them or set PG_BIN")
    with TemporaryPostgres() as pg:
        yield pg


@pytest.fixture
def pg_url(postgres_cluster) -> str:
    """URL of a fresh, empty PostgreSQL database."""
    return postgres_cluster.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """URL of a fresh, empty database: an SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'labels.sqlite'}"
    return request.getfixturevalue("postgres_cluster").create_database()


@pytest.fixture(scope="session")
def password_logins(postgres_cluster) -> None:
    """The deepepil group roles exist, and their members must give their password (SCRAM).

    TemporaryPostgres writes that pg_hba.conf line (the rest of the cluster trusts local
    logins); this checks that a wrong password is refused, as in a deployment.
    """
    import time

    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from deepepil.labels.schema import upgrade
    from deepepil.testing.postgres import PASSWORD_HBA_LINE

    assert PASSWORD_HBA_LINE in (postgres_cluster.data / "pg_hba.conf").read_text()
    owner = sa.create_engine(postgres_cluster.url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    probe = sa.create_engine(postgres_cluster.url(user="deepepil_password_probe", password="wrong"),
                             poolclass=NullPool)
    try:
        with owner.connect() as conn:
            if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = 'deepepil_clinician'")).first() is None:
                upgrade(postgres_cluster.create_database())  # migration 0003 creates the group roles
            conn.execute(sa.text("DROP ROLE IF EXISTS deepepil_password_probe"))
            conn.execute(sa.text("CREATE ROLE deepepil_password_probe LOGIN IN ROLE deepepil_clinician"))
        deadline = time.monotonic() + 10
        while True:
            try:
                with probe.connect():
                    pass
            except sa.exc.OperationalError:
                break
            assert time.monotonic() < deadline, "members of the deepepil roles log in without their password"
            time.sleep(0.05)
    finally:
        with owner.connect() as conn:
            conn.execute(sa.text("DROP ROLE IF EXISTS deepepil_password_probe"))
        owner.dispose()
        probe.dispose()


@pytest.fixture(scope="session")
def browser():
    """The system Chromium, headless, one per test process.

    One Playwright instance per process: the sync API refuses a second one while the first
    runs, so every browser test (tests/browser, tests/hub) shares this one.
    """
    from playwright.sync_api import sync_playwright

    from deepepil.testing.browser import launch_chromium

    with sync_playwright() as playwright:
        try:
            chromium = launch_chromium(playwright)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield chromium
        chromium.close()
