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
