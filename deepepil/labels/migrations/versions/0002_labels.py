"""Labels: seizures, MOIs, keypoints, suggestions, the revision audit and label snapshots.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _now() -> sa.sql.elements.ColumnElement:
    return sa.func.now()  # CURRENT_TIMESTAMP on SQLite, now() on PostgreSQL


def _enum(*values: str, name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _editable_columns() -> list[sa.Column]:
    return [
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
    ]


def _big_id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only


def upgrade() -> None:
    op.create_table(
        "label_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("num_mois", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(["created_by_id"], ["app_user.id"],
                                name=op.f("fk_label_snapshot_created_by_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_snapshot")),
    )
    op.create_index(op.f("ix_label_snapshot_content_hash"), "label_snapshot", ["content_hash"], unique=False)
    op.create_table(
        "revision",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("undoes_id", _big_id(), nullable=True),
        sa.ForeignKeyConstraint(["undoes_id"], ["revision.id"], name=op.f("fk_revision_undoes_id_revision")),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_revision_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revision")),
    )
    op.create_index("ix_revision_row", "revision", ["table_name", "row_id"], unique=False)
    op.create_index(op.f("ix_revision_user_id"), "revision", ["user_id"], unique=False)
    op.create_table(
        "keypoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("frame_index", sa.Integer(), nullable=False),
        sa.Column("joint", sa.String(length=100), nullable=False),
        sa.Column("u_px", sa.Float(), nullable=False),
        sa.Column("v_px", sa.Float(), nullable=False),
        sa.Column("x_m", sa.Float(), nullable=True),
        sa.Column("y_m", sa.Float(), nullable=True),
        sa.Column("z_m", sa.Float(), nullable=True),
        sa.Column("source", _enum("human", "model", name="source"), server_default="human", nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        *_editable_columns(),
        sa.CheckConstraint("frame_index >= 0", name=op.f("ck_keypoint_frame_nonnegative")),
        sa.ForeignKeyConstraint(["author_id"], ["app_user.id"], name=op.f("fk_keypoint_author_id_app_user")),
        sa.ForeignKeyConstraint(["recording_id"], ["recording.id"], name=op.f("fk_keypoint_recording_id_recording")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keypoint")),
    )
    op.create_index("ix_keypoint_recording_frame", "keypoint", ["recording_id", "frame_index"], unique=False)
    op.create_table(
        "seizure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("onset_frame", sa.Integer(), nullable=False),
        sa.Column("offset_frame", sa.Integer(), nullable=True),
        sa.Column("seizure_type", sa.String(length=100), nullable=True),
        sa.Column("awareness", sa.String(length=32), nullable=True),
        sa.Column("lateralization", sa.String(length=32), nullable=True),
        sa.Column("localization", sa.String(length=32), nullable=True),
        sa.Column("status", _enum("draft", "final", "reviewed", name="labelstatus"),
                  server_default="draft", nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        *_editable_columns(),
        sa.CheckConstraint("offset_frame IS NULL OR offset_frame > onset_frame",
                           name=op.f("ck_seizure_offset_after_onset")),
        sa.CheckConstraint("onset_frame >= 0", name=op.f("ck_seizure_onset_nonnegative")),
        sa.ForeignKeyConstraint(["author_id"], ["app_user.id"], name=op.f("fk_seizure_author_id_app_user")),
        sa.ForeignKeyConstraint(["recording_id"], ["recording.id"], name=op.f("fk_seizure_recording_id_recording")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seizure")),
    )
    op.create_index(op.f("ix_seizure_recording_id"), "seizure", ["recording_id"], unique=False)
    op.create_table(
        "suggestion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("laterality", sa.String(length=32), nullable=True),
        sa.Column("start_frame", sa.Integer(), nullable=False),
        sa.Column("end_frame", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("decision", _enum("pending", "accepted", "rejected", name="decision"),
                  server_default="pending", nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        *_editable_columns(),
        sa.CheckConstraint("end_frame > start_frame", name=op.f("ck_suggestion_end_after_start")),
        sa.CheckConstraint("start_frame >= 0", name=op.f("ck_suggestion_start_nonnegative")),
        sa.ForeignKeyConstraint(["created_by_id"], ["app_user.id"],
                                name=op.f("fk_suggestion_created_by_id_app_user")),
        sa.ForeignKeyConstraint(["decided_by_id"], ["app_user.id"],
                                name=op.f("fk_suggestion_decided_by_id_app_user")),
        sa.ForeignKeyConstraint(["recording_id"], ["recording.id"],
                                name=op.f("fk_suggestion_recording_id_recording")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestion")),
    )
    op.create_index(op.f("ix_suggestion_recording_id"), "suggestion", ["recording_id"], unique=False)
    op.create_table(
        "moi",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("seizure_id", sa.Integer(), nullable=True),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("laterality", sa.String(length=32), nullable=True),
        sa.Column("centricity", sa.String(length=32), nullable=True),
        sa.Column("start_frame", sa.Integer(), nullable=False),
        sa.Column("end_frame", sa.Integer(), nullable=False),
        sa.Column("source", _enum("human", "model", name="source"), server_default="human", nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("suggestion_id", sa.Integer(), nullable=True),
        *_editable_columns(),
        sa.CheckConstraint("confidence IS NULL OR (confidence >= 0 AND confidence <= 1)",
                           name=op.f("ck_moi_confidence_range")),
        sa.CheckConstraint("end_frame > start_frame", name=op.f("ck_moi_end_after_start")),
        sa.CheckConstraint("start_frame >= 0", name=op.f("ck_moi_start_nonnegative")),
        sa.ForeignKeyConstraint(["author_id"], ["app_user.id"], name=op.f("fk_moi_author_id_app_user")),
        sa.ForeignKeyConstraint(["recording_id"], ["recording.id"], name=op.f("fk_moi_recording_id_recording")),
        sa.ForeignKeyConstraint(["seizure_id"], ["seizure.id"], name=op.f("fk_moi_seizure_id_seizure")),
        sa.ForeignKeyConstraint(["suggestion_id"], ["suggestion.id"], name=op.f("fk_moi_suggestion_id_suggestion")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moi")),
    )
    op.create_index(op.f("ix_moi_author_id"), "moi", ["author_id"], unique=False)
    op.create_index(op.f("ix_moi_recording_id"), "moi", ["recording_id"], unique=False)
    op.create_index("ix_moi_recording_region", "moi", ["recording_id", "region"], unique=False)


def downgrade() -> None:
    op.drop_table("moi")
    op.drop_table("suggestion")
    op.drop_table("seizure")
    op.drop_table("keypoint")
    op.drop_table("revision")
    op.drop_table("label_snapshot")
