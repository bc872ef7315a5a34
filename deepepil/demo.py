"""The demo: a local JupyterHub with a synthetic cohort, two clinics and an account of each role.

``deepepil demo`` (what the README's first command runs):

1. generates a small synthetic cohort once and ingests what is not in the store yet (a
   rerun is quick);
2. prepares the label database -- SQLite in the demo folder by default, PostgreSQL when
   ``DEEPEPIL_DB_OWNER_URL`` (or a PostgreSQL ``DEEPEPIL_DATABASE_URL``) is set -- with the
   clinics North and South, the demo users, and the recordings registered half in each clinic;
3. creates the demo accounts (approved, with generated passwords kept in
   ``<dir>/hub/demo-accounts.json``, readable by you only) and prints them;
4. runs the hub (``jupyterhub_config.py``) on 127.0.0.1 until Ctrl+C, which stops the hub,
   the proxy and every user's server.

``deepepil demo --lab`` is the older single-user mode: one JupyterLab, no hub, no accounts.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_CLINICS",
    "DemoAccount",
    "prepare_demo_data",
    "prepare_label_database",
    "prepare_hub_accounts",
    "demo_label_url",
    "hub_environment",
    "run_demo",
]

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"


@dataclass(frozen=True)
class DemoAccount:
    """A demo user: hub account and label-database user of the same name."""

    username: str
    role: str
    clinic: str | None = None


#: The demo clinics; the cohort's recordings are split between them.
DEMO_CLINICS: tuple[str, ...] = ("North", "South")
#: One account of each role (a clinician per clinic).
DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("ana", "clinician", "North"),
    DemoAccount("ben", "clinician", "South"),
    DemoAccount("dana", "data_scientist"),
    DemoAccount("alex", "admin"),
)


def prepare_demo_data(
    workdir: Path, *, patients: int = 4, seconds: float = 20.0, size: str = "small", seed: int = 0
) -> Path:
    """Generate (once) and ingest (what is missing) a synthetic cohort; return the store folder."""
    from deepepil.recordings.ingest import ingest
    from deepepil.synthetic.cohort import synthesize_cohort

    raw = workdir / "raw"
    store = workdir / "store"
    if not (raw / "cohort.csv").exists():
        if raw.exists():
            shutil.rmtree(raw)  # an interrupted generation: start it again
        print(f"generating {patients} synthetic patients ({seconds:g} s each, size {size}) in {raw}")
        synthesize_cohort(raw, patients=patients, seconds=seconds, seed=seed, size=size, formats=("mkv",))
    for mkv in sorted(raw.glob("*.mkv")):
        if not (store / f"{mkv.stem}.zarr").exists():
            print(f"ingesting {mkv.name}")
            ingest(mkv, store)
    return store


def demo_label_url(workdir: Path) -> str:
    """The demo's label database: the owner URL when PostgreSQL is configured, else SQLite in ``workdir``."""
    owner = os.environ.get("DEEPEPIL_DB_OWNER_URL", "").strip()
    if owner:
        return owner
    configured = os.environ.get("DEEPEPIL_DATABASE_URL", "").strip()
    if configured and not configured.startswith("sqlite"):
        return configured  # the demo's operator owns it: used as the owner URL
    return configured or f"sqlite:///{workdir.resolve() / 'labels.sqlite'}"


def prepare_label_database(
    url: str, store: Path | None, accounts=DEMO_ACCOUNTS, clinics=DEMO_CLINICS
) -> dict[str, str]:
    """Upgrade the schema, add the clinics and users that are missing, register the store's recordings.

    Recordings are split between the clinics by patient (alternating), with the cohort's
    pseudonymous patient codes. Idempotent: a rerun adds nothing twice.

    Returns
    -------
    dict
        Recording name -> clinic.
    """
    from deepepil.labels import admin
    from deepepil.labels.catalog import register_recording
    from deepepil.labels.schema import upgrade

    upgrade(url)
    known_clinics = set(admin.list_clinics(url=url)["name"])
    for clinic in clinics:
        if clinic not in known_clinics:
            admin.add_clinic(clinic, url=url)
    known_users = set(admin.list_users(url=url)["username"])
    for account in accounts:
        if account.username not in known_users:
            admin.add_user(account.username, account.role, account.clinic, url=url)
    placed: dict[str, str] = {}
    if store is None:
        return placed
    registrar = next(a.username for a in accounts if a.role == "admin")
    codes = _cohort_codes(store.parent / "raw" / "cohort.csv")
    paths = sorted(store.glob("*.zarr"))
    patient_of = {p.stem: codes.get(p.stem) or p.stem for p in paths}  # no cohort.csv: one patient per store
    clinic_of = {patient: clinics[i % len(clinics)] for i, patient in enumerate(sorted(set(patient_of.values())))}
    for path in paths:
        placed[path.stem] = clinic_of[patient_of[path.stem]]
        register_recording(path, placed[path.stem], codes.get(path.stem), url, user=registrar)
    return placed


def _cohort_codes(cohort_csv: Path) -> dict[str, str]:
    if not cohort_csv.exists():
        return {}
    with open(cohort_csv, newline="") as f:
        return {row["recording"]: row["patient_code"] for row in csv.DictReader(f)}


def prepare_hub_accounts(hub_db_url: str, passwords_file: Path, accounts=DEMO_ACCOUNTS) -> dict[str, str]:
    """Create the demo hub accounts, approved; passwords are generated once and kept in ``passwords_file``.

    Returns
    -------
    dict
        User name -> password.
    """
    from hub.accounts import create_account

    passwords: dict[str, str] = {}
    if passwords_file.exists():
        passwords = json.loads(passwords_file.read_text())
    for account in accounts:
        passwords.setdefault(account.username, secrets.token_urlsafe(12))
        create_account(account.username, passwords[account.username], hub_db_url=hub_db_url)
    passwords_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(passwords_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(passwords, f, indent=1)
    return passwords


def _credentials_table(url: str, passwords: dict[str, str], placed: dict[str, str], accounts=DEMO_ACCOUNTS) -> str:
    rows = [("user", "password", "role", "clinic", "recordings")]
    for a in accounts:
        n = sum(1 for c in placed.values() if c == a.clinic) if a.clinic else len(placed)
        rows.append((a.username, passwords[a.username], a.role, a.clinic or "(all)", str(n)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return f"DeepEpil demo hub: {url}\n\n" + "\n".join(lines)


def hub_environment(workdir: Path, label_url: str, store: Path, **extra: str) -> dict[str, str]:
    """The hub's settings (``DEEPEPIL_*``) for a demo folder."""
    env = {
        "DEEPEPIL_STORE": str(store),
        "DEEPEPIL_HOMES": str(workdir / "home"),
        "DEEPEPIL_TEAM_DIR": str(workdir / "team"),
        "DEEPEPIL_NOTEBOOKS": str(NOTEBOOKS_DIR),
        "DEEPEPIL_AUTHENTICATOR": "native",
    }
    if label_url.startswith("sqlite"):
        env["DEEPEPIL_DATABASE_URL"] = label_url
    else:
        env["DEEPEPIL_DB_OWNER_URL"] = label_url
        env["DEEPEPIL_DATABASE_URL"] = ""  # the hub hands each user their own URL
    env.update(extra)
    return env


def run_demo(
    workdir: Path, *, port: int = 8000, patients: int = 4, seconds: float = 20.0, size: str = "small",
    start: bool = True, lab: bool = False,
) -> int:
    """Prepare the demo (data, label database, accounts) and run the hub on 127.0.0.1 until interrupted."""
    workdir = workdir.resolve()
    store = prepare_demo_data(workdir, patients=patients, seconds=seconds, size=size)
    print(f"recording store ready: {store}")
    if lab:
        return _run_lab(store, port) if start else 0
    from deepepil.labels.db import safe_url
    from hub.launcher import HubProcess

    label_url = demo_label_url(workdir)
    placed = prepare_label_database(label_url, store)
    state = workdir / "hub"
    passwords = prepare_hub_accounts(f"sqlite:///{state / 'jupyterhub.sqlite'}", state / "demo-accounts.json")
    print(f"label database ready: {safe_url(label_url)} (clinics {', '.join(DEMO_CLINICS)}, "
          f"{len(placed)} recordings)")
    if not start:
        return 0
    hub = HubProcess(state, hub_environment(workdir, label_url, store), port=port)
    print(f"starting the hub on http://127.0.0.1:{port} (log: {hub.log_path})")
    try:
        hub.start()
        print()
        print(_credentials_table(hub.url, passwords, placed))
        print(f"\n(passwords are kept in {state / 'demo-accounts.json'}; "
              f"new sign-ups at {hub.url}/hub/signup need `deepepil admin approve NAME --hub-db "
              f"sqlite:///{state / 'jupyterhub.sqlite'}`)")
        if label_url.startswith("sqlite"):
            print("labels: SQLite, shared by every server and not access-controlled (set DEEPEPIL_DB_OWNER_URL "
                  "for PostgreSQL with per-user roles and row-level security)")
        print("Ctrl+C stops the hub, the proxy and every server.")
        status = hub.wait()
        print(f"the hub exited with status {status}; its log: {hub.log_path}", file=sys.stderr)
        return status or 1
    except KeyboardInterrupt:
        print("\nstopping the hub, the proxy and the servers ...")
        return 0
    finally:
        hub.stop()


def _run_lab(store: Path, port: int) -> int:
    env = dict(os.environ, DEEPEPIL_STORE=str(store))
    cmd = [
        sys.executable, "-m", "jupyterlab", "--ip=127.0.0.1", f"--port={port}", "--no-browser",
        f"--ServerApp.root_dir={NOTEBOOKS_DIR.parent}", "--LabApp.default_url=/lab/tree/notebooks/explore.ipynb",
        # clinic networks are closed: no news feed, no update checks
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    print(f"starting JupyterLab on http://127.0.0.1:{port}/lab/tree/notebooks/explore.ipynb (Ctrl+C stops it)")
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
