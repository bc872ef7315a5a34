"""Suggestions: where the model's Grad-CAM explanation lies (``suggestion.explanation_uri``).

A nullable ``String(1000)``: suggestions published before, or without ``explain_dir``, have
none. Privileges need no change (migration 0003): table-level ``SELECT`` lets every group read
the new column, data scientists' and admins' table-level ``INSERT`` lets them set it on insert,
and the column-level ``UPDATE`` lists of clinicians and data scientists do not name it, so after
insert only an admin or the owner changes it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("suggestion", sa.Column("explanation_uri", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.dialect.dbapi.sqlite_version_info < (3, 35):
        # no DROP COLUMN before SQLite 3.35: copy the table (needs foreign keys off, as `deepepil db upgrade` has)
        with op.batch_alter_table("suggestion") as batch:
            batch.drop_column("explanation_uri")
    else:
        op.drop_column("suggestion", "explanation_uri")
