"""Alembic migrations of the label database, shipped with the package.

Run them with ``deepepil db upgrade`` or :func:`deepepil.labels.schema.upgrade`; no
``alembic.ini`` is needed (the configuration is built in code, see
:func:`deepepil.labels.schema.alembic_config`). To write a new revision after changing
:mod:`deepepil.labels.models`::

    from alembic import command
    from deepepil.labels.schema import alembic_config
    command.revision(alembic_config("sqlite:////tmp/dev.sqlite"), "what changed", autogenerate=True)

(upgrade that database to head first). Revisions are frozen: they never import the
models, so later model changes cannot alter what an old revision creates.
"""
