"""The ``deepepil`` command.

Run ``deepepil --help`` or ``deepepil COMMAND --help``. Errors print one clear line
(what was wrong, what is allowed, what to do next) and exit with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from deepepil.ml.cli import add_parser as add_ml_commands

__all__ = ["main", "build_parser"]

DATABASE_URL_ENV = "DEEPEPIL_DATABASE_URL"
_KINDS_HELP = "region, moi_label, laterality, centricity, seizure_type, awareness, localization or joint"


def _cmd_synth(args: argparse.Namespace) -> int:
    from deepepil.synthetic.cohort import synthesize_cohort

    paths = synthesize_cohort(
        args.out_dir, patients=args.patients, seconds=args.seconds, seed=args.seed, size=args.size,
        recordings_per_patient=args.recordings_per_patient, formats=tuple(args.formats),
        progress=not args.quiet,
    )
    for p in paths:
        print(p)
    return 0


def _registration_url(args: argparse.Namespace) -> str | None:
    """The database to register ingested recordings in, or None when registration is off."""
    from deepepil.errors import ValidationError
    from deepepil.labels.db import DATABASE_URL_ENV, database_configured, resolve_url

    if args.no_register:
        if args.clinic or args.patient:
            raise ValidationError("--no-register contradicts --clinic/--patient; give one or the other")
        return None
    if args.patient and not args.clinic:
        raise ValidationError("--patient needs --clinic NAME (the clinic the patient belongs to)")
    if not args.clinic:
        if database_configured(args.url):
            raise ValidationError(
                f"a label database is configured ({'--url' if args.url else DATABASE_URL_ENV}), so the "
                f"recording is to be registered: give --clinic NAME (and --patient CODE if the patient "
                f"has one), or --no-register to only write the store"
            )
        return None
    if len(args.sources) > 1 and not args.patient:
        raise ValidationError(
            "registering several sources needs --patient CODE (they are taken as one patient's "
            "recordings); to give each its own generated code, ingest them one at a time"
        )
    return resolve_url(args.url)


def _register_hint(path: object, args: argparse.Namespace) -> str:
    patient = f" --patient {args.patient}" if args.patient else " [--patient CODE]"
    url = " --url URL" if args.url else ""
    return f"`deepepil catalog register {path} --clinic {args.clinic!r}{patient}{url}`"


def _cmd_ingest(args: argparse.Namespace) -> int:
    from deepepil.errors import DeepEpilError
    from deepepil.recordings.ingest import ingest, ingest_many
    from deepepil.recordings.store import StoreLayout

    url = _registration_url(args)
    if url is not None:
        from deepepil.labels.catalog import check_registration

        with _database_errors(url):
            check_registration(args.clinic, args.patient, url)  # fail before a long ingest, not after
    layout = StoreLayout(rgb_quality=args.rgb_quality, frames_per_shard=args.frames_per_shard)
    kwargs = {"reader": args.reader, "layout": layout, "streams": args.streams}
    if len(args.sources) > 1 or args.scheduler or args.workers:
        if args.name:
            raise SystemExit("error: --name applies to a single source only")
        try:
            paths = ingest_many(
                args.sources, args.store, scheduler_address=args.scheduler, n_workers=args.workers,
                progress=not args.quiet, **kwargs,
            )
        except DeepEpilError as exc:
            if url is None:
                raise
            raise DeepEpilError(
                f"{exc}\nThe recordings that were published are not registered in the catalog; register "
                f"each with {_register_hint('PATH', args)}"
            ) from exc
    else:
        paths = [ingest(args.sources[0], args.store, name=args.name, progress=not args.quiet, **kwargs)]
    for p in paths:
        print(p)
    if url is not None:
        from deepepil.labels.catalog import _register

        for p in paths:
            try:
                with _database_errors(url):
                    recording_id, code = _register(p, args.clinic, args.patient, url)
            except Exception as exc:  # whatever went wrong, the store stays published: say what to do
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise DeepEpilError(
                    f"{p} was published but not registered in the catalog: {reason}. Once that is fixed, "
                    f"register it with {_register_hint(p, args)}"
                ) from exc
            print(f"registered {p} as recording {recording_id} (patient {code}, clinic {args.clinic})")
    return 0


@contextlib.contextmanager
def _database_errors(url: str | None) -> Iterator[None]:
    """Turn a failure to reach the database into one clear line."""
    import sqlalchemy as sa

    from deepepil.errors import DeepEpilError
    from deepepil.labels.db import resolve_url, safe_url

    try:
        yield
    except sa.exc.OperationalError as exc:
        where = safe_url(resolve_url(url))
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise DeepEpilError(f"cannot use the label database {where}: {reason}") from exc


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from deepepil.labels.db import resolve_url, safe_url
    from deepepil.labels.schema import current_revision, upgrade

    with _database_errors(args.url):
        upgrade(args.url, args.revision)
        print(f"label database {safe_url(resolve_url(args.url))} at revision {current_revision(args.url)}")
    return 0


def _cmd_db_current(args: argparse.Namespace) -> int:
    from deepepil.labels.schema import current_revision, head_revision, is_known_revision

    with _database_errors(args.url):
        current = current_revision(args.url)
    if current is None:
        print("none (no deepepil schema; run `deepepil db upgrade`)")
    elif current == head_revision():
        print(f"{current} (head)")
    elif is_known_revision(current):
        print(f"{current} (behind {head_revision()}; run `deepepil db upgrade`)")
    else:
        print(f"{current} (newer than this deepepil, which knows up to {head_revision()}: upgrade deepepil)")
    return 0


def _cmd_admin(args: argparse.Namespace) -> int:
    from deepepil.labels import admin

    with _database_errors(args.url):
        if args.admin_command == "add-clinic":
            clinic_id = admin.add_clinic(args.name, url=args.url)
            print(f"added clinic {args.name!r} (id {clinic_id})")
        elif args.admin_command == "list-clinics":
            _print_table(admin.list_clinics(url=args.url), "no clinics")
        elif args.admin_command == "add-user":
            user_id = admin.add_user(args.username, args.role, args.clinic, url=args.url)
            where = f" of clinic {args.clinic!r}" if args.clinic else ""
            print(f"added user {args.username!r} as {args.role}{where} (id {user_id})")
        elif args.admin_command in ("deactivate-user", "activate-user"):
            active = args.admin_command == "activate-user"
            admin.set_user_active(args.username, active, url=args.url)
            print(f"user {args.username!r} {'activated' if active else 'deactivated'}")
        elif args.admin_command == "list-users":
            _print_table(admin.list_users(url=args.url), "no users")
        elif args.admin_command == "add-term":
            version = admin.add_term(args.kind, args.code, label=args.label, url=args.url)
            print(f"added {args.kind} {args.code!r}: vocabulary version {version}")
        elif args.admin_command == "retire-term":
            version = admin.retire_term(args.kind, args.code, url=args.url)
            print(f"retired {args.kind} {args.code!r}: vocabulary version {version}")
    return 0


def _cmd_catalog(args: argparse.Namespace) -> int:
    from deepepil.labels.catalog import _register, catalog

    from deepepil.errors import ValidationError

    with _database_errors(args.url):
        if args.catalog_command == "list":
            _print_table(catalog(args.url), "no recordings visible to you")
            return 0
        if len(args.paths) > 1 and not args.patient:
            raise ValidationError(
                "registering several stores needs --patient CODE (they are taken as one patient's "
                "recordings); to give each its own generated code, register them one at a time"
            )
        for path in args.paths:
            recording_id, code = _register(path, args.clinic, args.patient, args.url)
            print(f"registered {path} as recording {recording_id} (patient {code}, clinic {args.clinic})")
    return 0


def _print_table(frame: Any, empty: str) -> None:
    print(frame.to_string(index=False) if len(frame) else empty)


def _cmd_verify(args: argparse.Namespace) -> int:
    from deepepil.recordings.store import verify

    status = 0
    for path in args.paths:
        report = verify(path, decode=args.decode)
        print(report)
        status |= 0 if report.ok else 1
    return status


def _cmd_info(args: argparse.Namespace) -> int:
    from deepepil.recordings.store import open_recording, recording_summary

    for i, path in enumerate(args.paths):
        if i:
            print()
        print(recording_summary(open_recording(path)))
    return 0


def _cmd_readers(args: argparse.Namespace) -> int:
    from deepepil.recordings.readers import list_readers

    for name, reader in list_readers().items():
        print(f"{name:<14} {reader.description}  [{type(reader).__module__}.{type(reader).__name__}]")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from deepepil.demo import run_demo

    return run_demo(
        Path(args.dir), port=args.port or (8888 if args.lab else 8000), patients=args.patients,
        seconds=args.seconds, size=args.size, start=not args.no_start, lab=args.lab,
    )


def _hub_db_url(args: argparse.Namespace) -> str:
    from hub.settings import hub_db_url_from_env

    return args.hub_db or hub_db_url_from_env()


def _cmd_admin_hub(args: argparse.Namespace) -> int:
    """The hub-side admin commands: approve, accounts."""
    from hub import accounts

    if args.admin_command == "accounts":
        rows = accounts.list_accounts(hub_db_url=_hub_db_url(args))
        for name, approved in rows:
            print(f"{name:<32} {'approved' if approved else 'waiting for approval'}")
        if not rows:
            print("no hub accounts (people sign up at /hub/signup)")
        return 0
    if args.admin_command == "approve":
        if args.clinic and not args.role:
            raise SystemExit("error: --clinic goes with --role (to register the user in the label database)")
        try:
            new = accounts.approve_account(args.username, hub_db_url=_hub_db_url(args))
        except LookupError as exc:
            from deepepil.errors import NotFoundError

            raise NotFoundError(str(exc)) from None
        name = accounts.normalize_username(args.username)
        print(f"hub account {name!r} {'approved: it can log in now' if new else 'was approved already'}")
        if args.role:
            from deepepil.labels import admin

            with _database_errors(args.url):
                user_id = admin.add_user(name, args.role, args.clinic, url=args.url)
            where = f" of clinic {args.clinic!r}" if args.clinic else ""
            print(f"added user {name!r} as {args.role}{where} to the label database (id {user_id})")
        return 0
    raise AssertionError(args.admin_command)


def _cmd_admin_credentials(args: argparse.Namespace) -> int:
    import os

    from deepepil.errors import ValidationError

    owner = args.url or os.environ.get("DEEPEPIL_DB_OWNER_URL")
    if not owner:
        raise ValidationError(
            "credentials are issued with the database owner's URL: give --url OWNER_URL or set "
            "DEEPEPIL_DB_OWNER_URL (PostgreSQL only; SQLite has no per-user roles)"
        )
    from deepepil.labels.authz import issue_credentials
    from deepepil.labels.db import safe_url

    with _database_errors(owner):
        url = issue_credentials(args.username, url=owner)
    print(url if args.show else safe_url(url))
    if not args.show:
        print(f"issued a fresh password for {args.username!r} (hidden; --show prints the full URL). Their "
              f"running server's password no longer works for new connections: restart it from the hub")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``deepepil`` command."""
    parser = argparse.ArgumentParser(
        prog="deepepil", description="Label 3D seizure video and train deep models on the labels.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="generate a synthetic patient cohort in acquisition formats")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--patients", type=int, default=2, help="number of patients (default 2)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each recording (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same data (default 0)")
    p.add_argument("--size", choices=("tiny", "small", "full"), default="small",
                   help="tiny (tests), small (demo), full (RGB 1920x1080, IR/depth 512x424)")
    p.add_argument("--recordings-per-patient", type=int, default=1)
    p.add_argument("--formats", nargs="+", choices=("mkv", "folder"), default=["mkv", "folder"],
                   help="acquisition formats to write (default both)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("ingest", help="ingest recordings into a Zarr recording store")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="MKV, video file, frame folder or .npz/.npy folder")
    p.add_argument("--store", required=True, metavar="DIR", help="folder holding recording stores")
    p.add_argument("--name", help="recording name (default: source file stem)")
    p.add_argument("--reader", help="reader to use (see `deepepil readers`); default: guessed")
    p.add_argument("--streams", nargs="+", choices=("rgb", "ir", "depth"),
                   help="ingest only these streams (default: all the source has)")
    p.add_argument("--rgb-quality", type=int, default=90, help="JPEG quality for RGB, 1-100 (default 90)")
    p.add_argument("--frames-per-shard", type=int, default=32, help="frames per shard file (default 32)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address for many recordings")
    p.add_argument("--workers", type=int, help="local Dask workers (default: one per core)")
    p.add_argument("--clinic", metavar="NAME",
                   help="register the recording in the label database's catalog, for this clinic")
    p.add_argument("--patient", metavar="CODE",
                   help="the patient's pseudonymous code (created in --clinic when new); default: a "
                        "new patient with a generated code")
    p.add_argument("--url", help=f"label database to register in (default ${DATABASE_URL_ENV}, else the "
                                 f"SQLite file in your data folder)")
    p.add_argument("--no-register", action="store_true",
                   help="only write the store, even when a label database is configured")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("verify", help="check recording stores against their checksum manifests")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--decode", action="store_true", help="also decode every frame (slow)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("info", help="print a summary of recording stores")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("readers", help="list the installed reader plugins")
    p.set_defaults(func=_cmd_readers)

    _add_database_commands(sub)
    add_ml_commands(sub)  # train, predict

    p = sub.add_parser("demo", help="a local JupyterHub with a synthetic cohort, two clinics and demo accounts")
    p.add_argument("--dir", default="demo-data", help="working folder (default ./demo-data)")
    p.add_argument("--port", type=int, help="public port (default 8000; 8888 with --lab)")
    p.add_argument("--patients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--size", choices=("tiny", "small", "full"), default="small")
    p.add_argument("--lab", action="store_true", help="a single JupyterLab instead of the hub (no accounts)")
    p.add_argument("--no-start", "--no-lab", dest="no_start", action="store_true",
                   help="prepare data, label database and accounts, but start nothing")
    p.set_defaults(func=_cmd_demo)
    return parser


def _url_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help=f"label database URL (default ${DATABASE_URL_ENV}, else the SQLite file "
                                 f"in your data folder)")


def _add_database_commands(sub: Any) -> None:
    # choices are checked by deepepil.labels.admin (exit status 1 with the valid values), and
    # nothing here imports SQLAlchemy, so `deepepil --help` stays quick
    db = sub.add_parser("db", help="create or upgrade the label database").add_subparsers(
        dest="db_command", required=True, metavar="DB_COMMAND")
    p = db.add_parser("upgrade", help="create the schema or upgrade it to this deepepil's revision")
    _url_option(p)
    p.add_argument("--revision", default="head", help="target revision (default head)")
    p.set_defaults(func=_cmd_db_upgrade)
    p = db.add_parser("current", help="print the database's schema revision")
    _url_option(p)
    p.set_defaults(func=_cmd_db_current)

    admin = sub.add_parser("admin", help="manage clinics, users and vocabularies").add_subparsers(
        dest="admin_command", required=True, metavar="ADMIN_COMMAND")
    p = admin.add_parser("add-clinic", help="add a clinic")
    p.add_argument("name", metavar="NAME")
    p = admin.add_parser("list-clinics", help="list the clinics")
    p = admin.add_parser("add-user", help="register a hub user with a role")
    p.add_argument("username", metavar="USERNAME")
    p.add_argument("--role", required=True, help="clinician, data_scientist or admin")
    p.add_argument("--clinic", metavar="NAME", help="the user's clinic (required for clinicians)")
    p = admin.add_parser("deactivate-user", help="stop a user from connecting (their labels stay)")
    p.add_argument("username", metavar="USERNAME")
    p = admin.add_parser("activate-user", help="let a deactivated user connect again")
    p.add_argument("username", metavar="USERNAME")
    p = admin.add_parser("list-users", help="list the registered users")
    p = admin.add_parser("add-term", help="add a vocabulary term (a new vocabulary version)")
    p.add_argument("kind", metavar="KIND", help=_KINDS_HELP)
    p.add_argument("code", metavar="CODE")
    p.add_argument("--label", help="display label (default: the code)")
    p = admin.add_parser("retire-term", help="retire a vocabulary term (old labels keep it)")
    p.add_argument("kind", metavar="KIND", help=_KINDS_HELP)
    p.add_argument("code", metavar="CODE")
    for p in admin.choices.values():
        _url_option(p)
        p.set_defaults(func=_cmd_admin)

    hub_db_help = ("the hub's database (default $DEEPEPIL_HUB_DB_URL, else jupyterhub.sqlite in "
                   "$DEEPEPIL_HUB_STATE_DIR or the current folder)")
    p = admin.add_parser("approve", help="approve a hub sign-up (NativeAuthenticator) so it can log in")
    p.add_argument("username", metavar="USERNAME")
    p.add_argument("--hub-db", metavar="URL", help=hub_db_help)
    p.add_argument("--role", help="also register the user in the label database: clinician, data_scientist "
                                  "or admin")
    p.add_argument("--clinic", metavar="NAME", help="with --role clinician: the user's clinic")
    p.add_argument("--url", help="label database for --role (default $DEEPEPIL_DATABASE_URL)")
    p.set_defaults(func=_cmd_admin_hub)
    p = admin.add_parser("accounts", help="list the hub accounts and whether they are approved")
    p.add_argument("--hub-db", metavar="URL", help=hub_db_help)
    p.set_defaults(func=_cmd_admin_hub)
    p = admin.add_parser("credentials", help="issue a user's PostgreSQL credentials (operators; a debugging aid)")
    p.add_argument("username", metavar="USERNAME")
    p.add_argument("--url", help="the database owner's URL (default $DEEPEPIL_DB_OWNER_URL)")
    p.add_argument("--show", action="store_true", help="print the URL with its password")
    p.set_defaults(func=_cmd_admin_credentials)

    cat = sub.add_parser("catalog", help="the recording catalog of the label database").add_subparsers(
        dest="catalog_command", required=True, metavar="CATALOG_COMMAND")
    p = cat.add_parser("register", help="register published recording stores (when ingest could not)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--clinic", required=True, metavar="NAME")
    p.add_argument("--patient", metavar="CODE", help="the patient's code (default: a new generated one)")
    _url_option(p)
    p.set_defaults(func=_cmd_catalog)
    p = cat.add_parser("list", help="list the recordings you may see")
    _url_option(p)
    p.set_defaults(func=_cmd_catalog)


def _version() -> str:
    from deepepil import __version__

    return f"deepepil {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepepil`` command; returns the exit status."""
    from deepepil.errors import DeepEpilError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DeepEpilError, FileNotFoundError, FileExistsError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"deepepil {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"deepepil {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
