"""A throwaway PostgreSQL cluster for tests and benchmarks.

Starts a real ``postgres`` from the server binaries on the PATH (or ``PG_BIN``) on a
free loopback port, with trust authentication and fsync off, in a temporary folder
that :meth:`TemporaryPostgres.stop` removes. As root, ``initdb`` refuses to run, so the
cluster runs as the ``postgres`` system user.

>>> with TemporaryPostgres() as pg:          # doctest: +SKIP
...     url = pg.create_database("labels")
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from deepepil.processes import free_port

__all__ = ["TemporaryPostgres", "postgres_available"]


#: pg_hba.conf line making the members of deepepil's group roles log in with SCRAM passwords.
PASSWORD_HBA_LINE = ("host all +deepepil_clinician,+deepepil_data_scientist,+deepepil_admin "
                     "127.0.0.1/32 scram-sha-256")


def _bin(name: str) -> str | None:
    pg_bin = os.environ.get("PG_BIN")
    if pg_bin and (Path(pg_bin) / name).exists():
        return str(Path(pg_bin) / name)
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def postgres_available() -> bool:
    """True when ``initdb`` and ``pg_ctl`` can be found."""
    return _bin("initdb") is not None and _bin("pg_ctl") is not None


class TemporaryPostgres:
    """A PostgreSQL cluster in a temporary folder, on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="deepepil-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log = self.root / "postgres.log"
        self._as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.started = False

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        if self._as_root:
            cmd = ("runuser", "-u", "postgres", "--", *cmd)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def start(self) -> "TemporaryPostgres":
        """Create and start the cluster; raise RuntimeError with its log when that fails."""
        initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if not (initdb and pg_ctl):
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; set PG_BIN")
        self.socket_dir.mkdir()
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
        out = self._run(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        if out.returncode:
            raise RuntimeError(f"initdb failed: {out.stderr}")
        # local logins are trusted, except the members of deepepil's group roles (the per-user
        # roles of deepepil.labels.authz), who must give their password as in a deployment
        hba = self.data / "pg_hba.conf"
        hba.write_text(PASSWORD_HBA_LINE + "\n" + hba.read_text())
        self._start_server()
        self.started = True
        return self

    def _start_server(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        out = self._run(_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w",
                        "-o", options, "start")
        if out.returncode:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {out.stderr}\n{log}")

    def pause(self) -> None:
        """Stop the server, closing every connection; :meth:`resume` starts it on the same data.

        A ``fast`` stop: what was committed stays (an ``immediate`` one would lose the commits
        that ``synchronous_commit=off`` has not flushed yet).
        """
        out = self._run(_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        if out.returncode:
            raise RuntimeError(f"pg_ctl stop failed: {out.stderr}")

    def resume(self) -> None:
        """Start the server again after :meth:`pause` (same data, port and options)."""
        self._start_server()

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        """SQLAlchemy URL (psycopg2) of ``database`` as ``user``."""
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql+psycopg2://{auth}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh name when none is given); return its URL."""
        import sqlalchemy as sa

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        """Stop the cluster at once and delete its folder."""
        if self.started:
            self._run(_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "TemporaryPostgres":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
