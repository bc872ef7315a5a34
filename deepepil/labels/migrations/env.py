"""Alembic environment of the label database.

Run from :func:`deepepil.labels.schema.upgrade`, which passes an open connection in
``config.attributes["connection"]``; otherwise an engine is made from the config's
``sqlalchemy.url``. SQLite runs in batch mode (it cannot alter tables in place).
"""

from __future__ import annotations

from alembic import context

from deepepil.labels.db import make_engine
from deepepil.labels.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `deepepil db upgrade`")
run_migrations_online()
