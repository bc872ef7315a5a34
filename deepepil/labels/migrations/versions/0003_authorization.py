"""Authorization in PostgreSQL: group roles, grants, row-level security, append-only revisions.

Every backend gets ``app_user.db_role``: the user's own PostgreSQL login role, which
:func:`deepepil.labels.authz.issue_credentials` creates and records. SQLite gets nothing
else (the embedded database is single-user). PostgreSQL also gets:

* the NOLOGIN group roles ``deepepil_clinician``, ``deepepil_data_scientist`` and
  ``deepepil_admin`` (created when absent: roles belong to the cluster, not the database);
* table, column and sequence privileges per group (:data:`GRANTS`): which verbs;
* row-level security, enabled and forced, with policies per group (:data:`POLICIES`): which rows;
* SECURITY DEFINER helpers mapping the login (``session_user``) to its ``app_user`` row;
* triggers that make ``revision`` append-only for everyone, the owner included.

The migration owner (who runs ``deepepil db upgrade``) owns the tables and keeps full
access. docs/security.md explains the design table by table.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: deepepil role (``app_user.role``) -> its PostgreSQL group role.
GROUP_ROLES = {
    "clinician": "deepepil_clinician",
    "data_scientist": "deepepil_data_scientist",
    "admin": "deepepil_admin",
}
CLINICIAN, DATA_SCIENTIST, ADMIN = GROUP_ROLES.values()
_ALL = tuple(GROUP_ROLES.values())

# The helpers run once per statement when wrapped in a sub-select (an InitPlan), not once per row.
_ME = "(SELECT deepepil_current_app_user())"
_CLINIC = "(SELECT deepepil_current_clinic())"
_IS = {group: f"(SELECT deepepil_current_role()) = '{role}'" for role, group in GROUP_ROLES.items()}
_IN_CLINIC = f"recording_id IN (SELECT r.id FROM recording r WHERE r.clinic_id = {_CLINIC})"
# a revision's recording is in its row's JSON (every label table has recording_id); compared as text
# so that no malformed JSON can make a query fail
_REVISION_IN_CLINIC = (f"(COALESCE(\"after\", \"before\") ->> 'recording_id') IN "
                       f"(SELECT r.id::text FROM recording r WHERE r.clinic_id = {_CLINIC})")
_SNAPSHOT_OF_CLINIC = f"created_by_id IN (SELECT u.id FROM app_user u WHERE u.clinic_id = {_CLINIC})"
# a clinician's own clinic: rows of its recordings, and patients and recordings themselves
_CLINICIAN_IN_CLINIC = f"{_IS[CLINICIAN]} AND {_IN_CLINIC}"
_CLINICIAN_OF_CLINIC = f"{_IS[CLINICIAN]} AND clinic_id = {_CLINIC}"

_DML = "SELECT, INSERT, UPDATE, DELETE"
# Columns a user may change in place; identity and provenance (id, recording_id, author_id,
# created_by_id, source, suggestion_id, created_at) are set once, on INSERT.
_EDITABLE = "version, deleted, updated_at"
_PATIENT_PUBLIC = ("id, code, clinic_id, sex, age_at_recording_years, epilepsy_type, localization_hypothesis, "
                   "lateralization_hypothesis, version, deleted, created_at, updated_at")
_SEIZURE_PUBLIC = ("id, recording_id, onset_frame, offset_frame, seizure_type, awareness, lateralization, "
                   "localization, status, author_id, version, deleted, created_at, updated_at")

#: table -> group role -> privileges. Column lists limit a verb to those columns. A new table
#: (e.g. ``model``, written by data scientists) needs an entry here, in its own migration.
GRANTS: dict[str, dict[str, str]] = {
    "alembic_version": {group: "SELECT" for group in _ALL},
    "clinic": {CLINICIAN: "SELECT", DATA_SCIENTIST: "SELECT", ADMIN: _DML},
    "app_user": {
        CLINICIAN: "SELECT", DATA_SCIENTIST: "SELECT",
        # db_role is the user's identity: only the owner sets it (issue_credentials); an admin's
        # INSERT must leave it NULL (policy below)
        ADMIN: ("SELECT, INSERT (username, role, clinic_id, active, db_role, created_at), "
                "UPDATE (role, clinic_id, active)"),
    },
    "vocabulary_version": {CLINICIAN: "SELECT", DATA_SCIENTIST: "SELECT", ADMIN: "SELECT, INSERT, UPDATE"},
    "vocabulary_term": {CLINICIAN: "SELECT", DATA_SCIENTIST: "SELECT", ADMIN: "SELECT, INSERT, UPDATE"},
    "patient": {
        CLINICIAN: ("SELECT, INSERT, UPDATE (sex, age_at_recording_years, epilepsy_type, localization_hypothesis, "
                    f"lateralization_hypothesis, imaging_finding, notes, {_EDITABLE})"),
        DATA_SCIENTIST: f"SELECT ({_PATIENT_PUBLIC})",  # no notes, no imaging finding
        ADMIN: _DML,
    },
    "recording": {CLINICIAN: "SELECT, UPDATE (status)", DATA_SCIENTIST: "SELECT", ADMIN: _DML},
    "seizure": {
        CLINICIAN: ("SELECT, INSERT, UPDATE (onset_frame, offset_frame, seizure_type, awareness, lateralization, "
                    f"localization, status, notes, {_EDITABLE})"),
        DATA_SCIENTIST: f"SELECT ({_SEIZURE_PUBLIC})",  # no free-text notes
        ADMIN: _DML,
    },
    "moi": {
        CLINICIAN: ("SELECT, INSERT, UPDATE (seizure_id, region, label, laterality, centricity, start_frame, "
                    f"end_frame, confidence, {_EDITABLE})"),
        DATA_SCIENTIST: "SELECT",
        ADMIN: _DML,
    },
    "keypoint": {
        CLINICIAN: f"SELECT, INSERT, UPDATE (frame_index, joint, u_px, v_px, x_m, y_m, z_m, confidence, {_EDITABLE})",
        DATA_SCIENTIST: "SELECT",
        ADMIN: _DML,
    },
    "suggestion": {
        CLINICIAN: "SELECT, UPDATE (decision, decided_by_id, decided_at, version, updated_at)",
        DATA_SCIENTIST: ("SELECT, INSERT, UPDATE (model_version, region, label, laterality, start_frame, end_frame, "
                         f"score, {_EDITABLE})"),
        ADMIN: _DML,
    },
    # append-only: nobody gets UPDATE or DELETE (and a trigger refuses them even to the owner)
    "revision": {group: "SELECT, INSERT" for group in _ALL},
    # snapshots are immutable once stored
    "label_snapshot": {group: "SELECT, INSERT" for group in _ALL},
}

#: table -> groups that insert rows (USAGE on the table's id sequence).
SEQUENCES: dict[str, tuple[str, ...]] = {
    "clinic": (ADMIN,),
    "app_user": (ADMIN,),
    "vocabulary_term": (ADMIN,),
    "patient": (CLINICIAN, ADMIN),
    "recording": (ADMIN,),
    "seizure": (CLINICIAN, ADMIN),
    "moi": (CLINICIAN, ADMIN),
    "keypoint": (CLINICIAN, ADMIN),
    "suggestion": (DATA_SCIENTIST, ADMIN),
    "revision": _ALL,
    "label_snapshot": _ALL,
}


def _label_table_policies(table: str) -> list[tuple[str, str, str, str | None, str | None]]:
    return [
        (table, CLINICIAN, "SELECT", _CLINICIAN_IN_CLINIC, None),
        (table, CLINICIAN, "INSERT", None, f"{_CLINICIAN_IN_CLINIC} AND author_id = {_ME}"),
        (table, CLINICIAN, "UPDATE", _CLINICIAN_IN_CLINIC, _CLINICIAN_IN_CLINIC),
        (table, DATA_SCIENTIST, "SELECT", _IS[DATA_SCIENTIST], None),
        (table, ADMIN, "ALL", _IS[ADMIN], _IS[ADMIN]),
    ]


#: (table, group role, command, USING, WITH CHECK). Every predicate but app_user's SELECT also
#: requires the caller's app_user row to be active with the group's role, so deactivating a user (or changing their
#: role) takes effect at once, even for sessions that are open.
POLICIES: list[tuple[str, str, str, str | None, str | None]] = [
    # user names are shown as authors; an inactive user still reads their own row (to be told why)
    *[("app_user", group, "SELECT", "true", None) for group in _ALL],
    ("app_user", ADMIN, "INSERT", None, f"{_IS[ADMIN]} AND db_role IS NULL"),
    ("app_user", ADMIN, "UPDATE", _IS[ADMIN], _IS[ADMIN]),
    ("patient", CLINICIAN, "ALL", _CLINICIAN_OF_CLINIC, _CLINICIAN_OF_CLINIC),
    ("patient", DATA_SCIENTIST, "SELECT", _IS[DATA_SCIENTIST], None),
    ("patient", ADMIN, "ALL", _IS[ADMIN], _IS[ADMIN]),
    ("recording", CLINICIAN, "ALL", _CLINICIAN_OF_CLINIC, _CLINICIAN_OF_CLINIC),
    ("recording", DATA_SCIENTIST, "SELECT", _IS[DATA_SCIENTIST], None),
    ("recording", ADMIN, "ALL", _IS[ADMIN], _IS[ADMIN]),
    *_label_table_policies("seizure"),
    *_label_table_policies("moi"),
    *_label_table_policies("keypoint"),
    ("suggestion", CLINICIAN, "SELECT", _CLINICIAN_IN_CLINIC, None),
    ("suggestion", CLINICIAN, "UPDATE", _CLINICIAN_IN_CLINIC,
     f"{_CLINICIAN_IN_CLINIC} AND (decided_by_id IS NULL OR decided_by_id = {_ME})"),
    ("suggestion", DATA_SCIENTIST, "SELECT", _IS[DATA_SCIENTIST], None),
    ("suggestion", DATA_SCIENTIST, "INSERT", None, f"{_IS[DATA_SCIENTIST]} AND created_by_id = {_ME}"),
    ("suggestion", DATA_SCIENTIST, "UPDATE", _IS[DATA_SCIENTIST], _IS[DATA_SCIENTIST]),
    ("suggestion", ADMIN, "ALL", _IS[ADMIN], _IS[ADMIN]),
    ("revision", CLINICIAN, "SELECT", f"{_IS[CLINICIAN]} AND {_REVISION_IN_CLINIC}", None),
    ("revision", CLINICIAN, "INSERT", None, f"{_IS[CLINICIAN]} AND user_id = {_ME} AND {_REVISION_IN_CLINIC}"),
    # seizure revisions carry the seizure's free-text notes
    ("revision", DATA_SCIENTIST, "SELECT", f"{_IS[DATA_SCIENTIST]} AND table_name <> 'seizure'", None),
    ("revision", DATA_SCIENTIST, "INSERT", None,
     f"{_IS[DATA_SCIENTIST]} AND user_id = {_ME} AND table_name = 'suggestion'"),
    ("revision", ADMIN, "SELECT", _IS[ADMIN], None),
    ("revision", ADMIN, "INSERT", None, f"{_IS[ADMIN]} AND user_id = {_ME}"),
    ("label_snapshot", CLINICIAN, "SELECT", f"{_IS[CLINICIAN]} AND {_SNAPSHOT_OF_CLINIC}", None),
    ("label_snapshot", CLINICIAN, "INSERT", None, f"{_IS[CLINICIAN]} AND created_by_id = {_ME}"),
    ("label_snapshot", DATA_SCIENTIST, "SELECT", _IS[DATA_SCIENTIST], None),
    ("label_snapshot", DATA_SCIENTIST, "INSERT", None, f"{_IS[DATA_SCIENTIST]} AND created_by_id = {_ME}"),
    ("label_snapshot", ADMIN, "SELECT", _IS[ADMIN], None),
    ("label_snapshot", ADMIN, "INSERT", None, f"{_IS[ADMIN]} AND created_by_id = {_ME}"),
]

#: Tables under row-level security (enabled and forced; the owner keeps a policy of its own).
RLS_TABLES: tuple[str, ...] = tuple(dict.fromkeys(table for table, *_ in POLICIES))
_OWNER_POLICY = "deepepil_owner_all"

#: The helpers policies use: name -> (return type, SQL body). ``session_user`` is the login role
#: (unchanged by SET ROLE, and inside SECURITY DEFINER functions).
HELPERS: dict[str, tuple[str, str]] = {
    name: (returns, f"SELECT {column} FROM app_user WHERE db_role = session_user::text AND active")
    for name, returns, column in (("deepepil_current_app_user", "integer", "id"),
                                  ("deepepil_current_clinic", "integer", "clinic_id"),
                                  ("deepepil_current_role", "text", "role::text"))
}
_APPEND_ONLY = "deepepil_revision_append_only"


def _policy_name(table: str, group: str, command: str) -> str:
    return f"{table}_{group.removeprefix('deepepil_')}_{command.lower()}"


def _schema() -> str:
    bind = op.get_bind()
    return bind.dialect.identifier_preparer.quote(bind.execute(sa.text("SELECT current_schema()")).scalar())


def upgrade() -> None:
    with op.batch_alter_table("app_user") as batch:
        batch.add_column(sa.Column("db_role", sa.String(length=63), nullable=True))
        batch.create_unique_constraint(op.f("uq_app_user_db_role"), ["db_role"])
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: single-user, nothing to authorize
    schema = _schema()
    _create_group_roles()
    op.execute(sa.text(f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC"))  # no trojan functions or tables
    op.execute(sa.text(f"GRANT USAGE ON SCHEMA {schema} TO {', '.join(_ALL)}"))
    for name, (returns, body) in HELPERS.items():
        op.execute(sa.text(
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS {returns} LANGUAGE sql STABLE SECURITY DEFINER "
            f"SET search_path = {schema}, pg_temp AS $fn$ {body} $fn$"
        ))
        op.execute(sa.text(f"REVOKE ALL ON FUNCTION {name}() FROM PUBLIC"))
        op.execute(sa.text(f"GRANT EXECUTE ON FUNCTION {name}() TO {', '.join(_ALL)}"))
    for table, grants in GRANTS.items():
        op.execute(sa.text(f"REVOKE ALL ON {table} FROM PUBLIC"))
        for group, privileges in grants.items():
            op.execute(sa.text(f"GRANT {privileges} ON {table} TO {group}"))
    for table, groups in SEQUENCES.items():
        sequence = op.get_bind().execute(sa.text(f"SELECT pg_get_serial_sequence('{table}', 'id')")).scalar()
        op.execute(sa.text(f"GRANT USAGE ON SEQUENCE {sequence} TO {', '.join(groups)}"))
    for table in RLS_TABLES:
        op.execute(sa.text(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
        op.execute(sa.text(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY"))
        op.execute(sa.text(f"CREATE POLICY {_OWNER_POLICY} ON {table} FOR ALL TO CURRENT_USER "
                           f"USING (true) WITH CHECK (true)"))
    for table, group, command, using, check in POLICIES:
        clauses = (f" USING ({using})" if using else "") + (f" WITH CHECK ({check})" if check else "")
        op.execute(sa.text(f"CREATE POLICY {_policy_name(table, group, command)} ON {table} "
                           f"FOR {command} TO {group}{clauses}"))
    op.execute(sa.text(
        f"CREATE OR REPLACE FUNCTION {_APPEND_ONLY}() RETURNS trigger LANGUAGE plpgsql "
        f"SET search_path = {schema}, pg_temp AS $fn$ BEGIN "
        f"RAISE EXCEPTION 'revision rows are append-only: % is refused for everyone (the audit trail never "
        f"changes)', TG_OP USING ERRCODE = 'insufficient_privilege', "
        f"HINT = 'undo a change with LabelStore.undo(), which appends a revision'; END $fn$"
    ))
    op.execute(sa.text(f"REVOKE ALL ON FUNCTION {_APPEND_ONLY}() FROM PUBLIC"))
    op.execute(sa.text(f"CREATE TRIGGER revision_append_only BEFORE UPDATE OR DELETE ON revision "
                       f"FOR EACH ROW EXECUTE FUNCTION {_APPEND_ONLY}()"))
    op.execute(sa.text(f"CREATE TRIGGER revision_no_truncate BEFORE TRUNCATE ON revision "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {_APPEND_ONLY}()"))


def _create_group_roles() -> None:
    for group in _ALL:
        # roles belong to the cluster: another database may have created it, even concurrently
        op.execute(sa.text(f"""
            DO $do$
            BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{group}') THEN
                    BEGIN
                        CREATE ROLE {group} NOLOGIN;
                    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                    END;
                END IF;
                IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{group}' AND (rolcanlogin OR rolsuper OR
                           rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication)) THEN
                    RAISE EXCEPTION 'role {group} exists with LOGIN or another attribute a deepepil group role '
                        'must not have; a database administrator must remove them (ALTER ROLE {group} NOLOGIN ...)';
                END IF;
            END
            $do$
        """))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _downgrade_postgresql()
    with op.batch_alter_table("app_user") as batch:
        batch.drop_constraint(op.f("uq_app_user_db_role"), type_="unique")
        batch.drop_column("db_role")


def _downgrade_postgresql() -> None:
    schema = _schema()
    op.execute(sa.text("DROP TRIGGER IF EXISTS revision_no_truncate ON revision"))
    op.execute(sa.text("DROP TRIGGER IF EXISTS revision_append_only ON revision"))
    op.execute(sa.text(f"DROP FUNCTION IF EXISTS {_APPEND_ONLY}()"))
    for table, group, command, _using, _check in POLICIES:
        op.execute(sa.text(f"DROP POLICY IF EXISTS {_policy_name(table, group, command)} ON {table}"))
    for table in RLS_TABLES:
        op.execute(sa.text(f"DROP POLICY IF EXISTS {_OWNER_POLICY} ON {table}"))
        op.execute(sa.text(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY"))
        op.execute(sa.text(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"))
    groups = ", ".join(_ALL)
    for table in GRANTS:
        op.execute(sa.text(f"REVOKE ALL ON {table} FROM {groups}"))
    for table in SEQUENCES:
        sequence = op.get_bind().execute(sa.text(f"SELECT pg_get_serial_sequence('{table}', 'id')")).scalar()
        op.execute(sa.text(f"REVOKE ALL ON SEQUENCE {sequence} FROM {groups}"))
    for name in HELPERS:
        op.execute(sa.text(f"DROP FUNCTION IF EXISTS {name}()"))
    op.execute(sa.text(f"REVOKE ALL ON SCHEMA {schema} FROM {groups}"))
    # the users' login roles lose their login; roles (cluster-wide) are dropped unless another
    # database still grants them something
    users = [row[0] for row in op.get_bind().execute(sa.text("SELECT db_role FROM app_user WHERE db_role IS NOT NULL"))]
    quote = op.get_bind().dialect.identifier_preparer.quote
    for role in users:
        op.execute(sa.text(f"ALTER ROLE {quote(role)} NOLOGIN PASSWORD NULL"))
    for role in [*users, *_ALL]:
        literal = role.replace("'", "''")
        op.execute(sa.text(f"""
            DO $do$
            BEGIN
                IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{literal}') THEN
                    EXECUTE format('DROP ROLE %I', '{literal}');
                END IF;
            EXCEPTION WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'role % is kept: another database still uses it', '{literal}';
            END
            $do$
        """))
