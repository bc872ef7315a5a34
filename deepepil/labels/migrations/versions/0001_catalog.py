"""Catalog: clinics, users, patients, recordings and the vocabulary tables.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
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


def upgrade() -> None:
    op.create_table(
        "clinic",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinic")),
        sa.UniqueConstraint("name", name=op.f("uq_clinic_name")),
    )
    op.create_table(
        "vocabulary_version",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_vocabulary_version")),
    )
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("role", _enum("clinician", "data_scientist", "admin", name="role"), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"], name=op.f("fk_app_user_clinic_id_clinic")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("username", name=op.f("uq_app_user_username")),
    )
    op.create_table(
        "patient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("sex", sa.String(length=16), nullable=True),
        sa.Column("age_at_recording_years", sa.Integer(), nullable=True),
        sa.Column("epilepsy_type", sa.String(length=100), nullable=True),
        sa.Column("localization_hypothesis", sa.String(length=100), nullable=True),
        sa.Column("lateralization_hypothesis", sa.String(length=32), nullable=True),
        sa.Column("imaging_finding", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        *_editable_columns(),
        sa.CheckConstraint(
            "age_at_recording_years IS NULL OR (age_at_recording_years >= 0 AND age_at_recording_years < 130)",
            name=op.f("ck_patient_age_range"),
        ),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"], name=op.f("fk_patient_clinic_id_clinic")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient")),
        sa.UniqueConstraint("code", name=op.f("uq_patient_code")),
    )
    op.create_index(op.f("ix_patient_clinic_id"), "patient", ["clinic_id"], unique=False)
    op.create_table(
        "vocabulary_term",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("parent_code", sa.String(length=100), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("added_in_version", sa.Integer(), nullable=False),
        sa.Column("retired_in_version", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(["added_in_version"], ["vocabulary_version.version"],
                                name=op.f("fk_vocabulary_term_added_in_version_vocabulary_version")),
        sa.ForeignKeyConstraint(["retired_in_version"], ["vocabulary_version.version"],
                                name=op.f("fk_vocabulary_term_retired_in_version_vocabulary_version")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vocabulary_term")),
        sa.UniqueConstraint("kind", "code", name="kind_code"),
    )
    op.create_index(op.f("ix_vocabulary_term_kind"), "vocabulary_term", ["kind"], unique=False)
    op.create_table(
        "recording",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("storage_uri", sa.String(length=1000), nullable=False),
        sa.Column("streams", sa.String(length=100), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("num_frames", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("source_format", sa.String(length=50), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=True),
        sa.Column("bed", sa.String(length=50), nullable=True),
        sa.Column("status", _enum("new", "in_progress", "done", name="recordingstatus"),
                  server_default="new", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"], name=op.f("fk_recording_clinic_id_clinic")),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name=op.f("fk_recording_patient_id_patient")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording")),
        sa.UniqueConstraint("storage_uri", name=op.f("uq_recording_storage_uri")),
    )
    op.create_index(op.f("ix_recording_clinic_id"), "recording", ["clinic_id"], unique=False)
    op.create_index(op.f("ix_recording_patient_id"), "recording", ["patient_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_recording_patient_id"), table_name="recording")
    op.drop_index(op.f("ix_recording_clinic_id"), table_name="recording")
    op.drop_table("recording")
    op.drop_index(op.f("ix_vocabulary_term_kind"), table_name="vocabulary_term")
    op.drop_table("vocabulary_term")
    op.drop_index(op.f("ix_patient_clinic_id"), table_name="patient")
    op.drop_table("patient")
    op.drop_table("app_user")
    op.drop_table("vocabulary_version")
    op.drop_table("clinic")
