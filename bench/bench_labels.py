"""Label database benchmarks, each against what a user would otherwise do, in one run.

    python bench/bench_labels.py            # full: 20 writers x 200 edits, 100k MOIs, PostgreSQL + SQLite
    python bench/bench_labels.py --quick    # 20 writers x 30 edits, 20k MOIs: a 1-2 minute smoke run

A real PostgreSQL cluster is started for the run (:class:`deepepil.testing.postgres.TemporaryPostgres`,
fsync off as in the tests) and an SQLite file beside it for comparison. Sections (``--only``):

edit      MOI edit latency (``store.update_moi``) with 20 concurrent writers, each a separate
          process with its own LabelStore and user, editing its own MOIs and, one edit in
          ten, a few MOIs shared by all (stale versions there give ConflictErrors, counted);
          writers pause between edits (``--think-ms``, as people do), and once without a
          pause (saturation). Against: the same edits as a plain SQLAlchemy UPDATE + commit
          (no validation, audit revision or conflict check).
load      ``store.mois()`` of 100k MOIs into a DataFrame. Against: ORM objects -> list of
          dicts -> DataFrame, and ``pandas.read_sql`` of the same joined query.
exchange  ELAN and CSV export and import of 1,000 MOIs of one recording.

Setup rows are written with plain SQL inserts (not timed, no revisions). Results print as
they come and are written as markdown (``--out``, default ``.bench-data/results/bench_labels-<full|quick>.md``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import Table, Target, machine  # noqa: E402

SECTIONS = ("edit", "load", "exchange")
FPS = 30.0
NUM_FRAMES = 30 * 3600  # one hour per recording
N_WRITERS = 20
N_SHARED = 5
SHARED_EVERY = 10  # one edit in ten goes to a shared MOI
#: Makes a fresh, empty database of one backend and returns its URL (the argument names it).
Fresh = Callable[[str], str]


def say(message: str) -> None:
    print(message, flush=True)


# --- setup -------------------------------------------------------------------------------------


def make_database(url: str, n_recordings: int) -> dict[str, Any]:
    """Schema, a clinic, writers w00..w19 (clinicians), an admin, ``n_recordings`` recordings."""
    from sqlalchemy.orm import Session

    from deepepil.labels import schema
    from deepepil.labels.db import make_engine
    from deepepil.labels.models import AppUser, Clinic, Patient, Recording, Role

    schema.upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            clinic = Clinic(name="Bench")
            session.add(clinic)
            session.flush()
            users = [AppUser(username=f"w{i:02d}", role=Role.clinician, clinic_id=clinic.id)
                     for i in range(N_WRITERS)]
            users.append(AppUser(username="admin", role=Role.admin))
            session.add_all(users)
            patient = Patient(code="SYN-BENCH", clinic_id=clinic.id)
            session.add(patient)
            session.flush()
            recs = [Recording(name=f"bench_{k:03d}", patient_id=patient.id, clinic_id=clinic.id,
                              storage_uri=f"file:///bench/{k:03d}.zarr", streams="rgb,ir,depth", fps=FPS,
                              num_frames=NUM_FRAMES, duration_seconds=NUM_FRAMES / FPS, size_bytes=1,
                              checksum="0" * 64, source_format="npz") for k in range(n_recordings)]
            session.add_all(recs)
            session.flush()
            return {"recordings": [r.id for r in recs], "users": {u.username: u.id for u in users}}
    finally:
        engine.dispose()


def insert_mois(url: str, rows: list[dict[str, Any]], chunk: int = 10_000) -> list[int]:
    """Plain multi-row INSERTs (setup only: no validation, no revisions); returns the ids."""
    import sqlalchemy as sa

    from deepepil.labels.db import make_engine
    from deepepil.labels.models import MOI

    engine = make_engine(url)
    ids: list[int] = []
    try:
        with engine.begin() as conn:
            for k in range(0, len(rows), chunk):
                result = conn.execute(sa.insert(MOI).returning(MOI.id, sort_by_parameter_order=True),
                                      rows[k:k + chunk])
                ids.extend(result.scalars().all())
    finally:
        engine.dispose()
    return ids


def moi_rows(n: int, recording_ids: list[int], author_ids: list[int], seed: int) -> list[dict[str, Any]]:
    """``n`` distinct MOIs spread over recordings and authors, with the seed vocabulary."""
    from deepepil.labels.vocabulary import CENTRICITIES, LATERALITIES, MOI_LABELS, REGIONS

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        start = int(rng.integers(0, NUM_FRAMES - 400))
        rows.append({
            "recording_id": recording_ids[i % len(recording_ids)], "region": REGIONS[i % len(REGIONS)],
            "label": MOI_LABELS[int(rng.integers(len(MOI_LABELS)))],
            "laterality": [None, *LATERALITIES][int(rng.integers(4))],
            "centricity": [None, *CENTRICITIES][int(rng.integers(4))],
            "start_frame": start, "end_frame": start + 1 + int(rng.integers(300)), "source": "human",
            "author_id": author_ids[i % len(author_ids)], "version": 1, "deleted": False,
        })
    return rows


# --- edit: concurrent writers --------------------------------------------------------------------


def _writer(url: str, username: str, mode: str, own: list[int], shared: list[int], n_edits: int, think_s: float,
            seed: int, barrier: Any, results: Any) -> None:
    """One writer process: ``n_edits`` timed edits, each followed by a pause (exponential, mean ``think_s``);
    puts (username, latencies, conflicts, errors, first start, last end)."""
    from deepepil.errors import ConflictError

    rng = random.Random(seed)
    latencies: list[float] = []
    conflicts = errors = 0
    if mode == "service":
        from deepepil.labels.service import connect

        store = connect(url, user=username)
        versions = {m: store.moi(m).version for m in own + shared}
        ends = {m: store.moi(m).end_frame for m in own + shared}
        warm = store.update_moi(own[0], versions[own[0]], end_frame=ends[own[0]])  # no change: still a full check
        versions[own[0]] = warm.version
        barrier.wait()
        began = time.monotonic()
        for k in range(n_edits):
            if think_s > 0:
                time.sleep(rng.expovariate(1.0 / think_s))
            moi_id = rng.choice(shared) if k % SHARED_EVERY == SHARED_EVERY - 1 else rng.choice(own)
            new_end = ends[moi_id] + (1 if (k // 2) % 2 == 0 else -1)
            t0 = time.perf_counter()
            try:
                moi = store.update_moi(moi_id, versions[moi_id], end_frame=new_end)
                versions[moi_id], ends[moi_id] = moi.version, moi.end_frame
            except ConflictError as exc:  # someone edited the shared MOI since: take theirs and go on
                conflicts += 1
                versions[moi_id], ends[moi_id] = exc.current["version"], exc.current["end_frame"]
            except Exception:  # noqa: BLE001 - counted and reported, never silent
                errors += 1
            latencies.append(time.perf_counter() - t0)
        store.close()
    else:
        import sqlalchemy as sa

        from deepepil.labels.db import make_engine
        from deepepil.labels.models import MOI

        engine = make_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.update(MOI).where(MOI.id == own[0]).values(end_frame=MOI.end_frame))
            conn.commit()
            barrier.wait()
            began = time.monotonic()
            for k in range(n_edits):
                if think_s > 0:
                    time.sleep(rng.expovariate(1.0 / think_s))
                moi_id = rng.choice(shared) if k % SHARED_EVERY == SHARED_EVERY - 1 else rng.choice(own)
                t0 = time.perf_counter()
                conn.execute(sa.update(MOI).where(MOI.id == moi_id).values(
                    end_frame=MOI.end_frame + (1 if (k // 2) % 2 == 0 else -1)))
                conn.commit()
                latencies.append(time.perf_counter() - t0)
        engine.dispose()
    results.put((username, latencies, conflicts, errors, began, time.monotonic()))


def _worker_loop(tasks: Any, barrier: Any, results: Any) -> None:
    """A writer process kept for the whole section: imports once, then runs one :func:`_writer` per task."""
    import importlib

    importlib.import_module("deepepil.labels.service")  # imported once, before any timing

    while True:
        task = tasks.get()
        if task is None:
            return
        try:
            _writer(*task, barrier, results)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which stops the run
            barrier.abort()
            results.put((task[1], [], 0, 0, 0.0, 0.0, f"{type(exc).__name__}: {exc}"))


class WriterPool:
    """``n`` writer processes (spawned once: starting 20 Python processes costs more than a run)."""

    def __init__(self, n: int) -> None:
        ctx = mp.get_context("spawn")
        self.barrier = ctx.Barrier(n)
        self.results = ctx.Queue()
        self.tasks = [ctx.Queue() for _ in range(n)]
        self.procs = [ctx.Process(target=_worker_loop, args=(q, self.barrier, self.results), daemon=True)
                      for q in self.tasks]
        for p in self.procs:
            p.start()

    def run(self, url: str, mode: str, own: dict[str, list[int]], shared: list[int], n_edits: int,
            think_s: float, seed: int) -> dict[str, Any]:
        """Every writer edits at once (after a barrier); latency percentiles, throughput, conflicts."""
        for i, ((user, ids), q) in enumerate(zip(own.items(), self.tasks)):
            q.put((url, user, mode, ids, shared, n_edits, think_s, seed + i))
        got = [self.results.get(timeout=900) for _ in self.tasks]
        failed = [g[6] for g in got if len(g) > 6]
        if failed:
            raise RuntimeError(f"writers failed: {failed[0]}")
        wall = max(g[5] for g in got) - min(g[4] for g in got)
        latencies = np.concatenate([np.asarray(g[1]) for g in got])
        p50, p95, p99 = (float(v) * 1e3 for v in np.percentile(latencies, [50, 95, 99]))
        return {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": float(latencies.max()) * 1e3,
                "edits": int(latencies.size), "edits_per_s": latencies.size / wall,
                "conflicts": sum(g[2] for g in got), "errors": sum(g[3] for g in got)}

    def close(self) -> None:
        for q in self.tasks:
            q.put(None)
        for p in self.procs:
            p.join(timeout=30)


def _edit_setup(url: str, same_recording: bool) -> tuple[dict[str, list[int]], list[int]]:
    """Each writer's own MOIs (on its own recording, or all on one) and the MOIs all writers share."""
    n_own = 20
    info = make_database(url, N_WRITERS + 1)
    common, *own_recs = info["recordings"]
    users = {u: i for u, i in info["users"].items() if u != "admin"}
    rows = []
    for k, (user, uid) in enumerate(users.items()):
        rec = common if same_recording else own_recs[k]
        for j in range(n_own):
            start = (k * n_own + j) * 50
            rows.append({"recording_id": rec, "region": "trunk", "label": "clonic", "start_frame": start,
                         "end_frame": start + 20, "author_id": uid, "source": "human", "version": 1,
                         "deleted": False})
    for j in range(N_SHARED):
        start = NUM_FRAMES - 1000 + j * 50
        rows.append({"recording_id": common, "region": "head/face", "label": "head version", "start_frame": start,
                     "end_frame": start + 20, "author_id": info["users"]["admin"], "source": "human",
                     "version": 1, "deleted": False})
    ids = insert_mois(url, rows)
    own = {user: ids[k * n_own:(k + 1) * n_own] for k, user in enumerate(users)}
    return own, ids[len(users) * n_own:]


def bench_edit(backends: dict[str, Fresh], args: argparse.Namespace, out: dict[str, Any]) -> list[Table]:
    think = args.think_ms / 1e3
    table = Table(f"MOI edit latency, {N_WRITERS} concurrent writer processes x {args.n_edits} edits "
                  f"(1 in {SHARED_EVERY} on {N_SHARED} MOIs shared by all)",
                  ["backend", "writers' own MOIs", "pause between edits", "path", "p50 ms", "p95 ms", "p99 ms",
                   "max ms", "edits/s", "conflicts", "errors", "p50 vs plain UPDATE"])
    paced = f"{args.think_ms:g} ms mean"
    pool = WriterPool(N_WRITERS)
    try:
        _edit_runs(pool, backends, args, think, paced, table, out)
    finally:
        pool.close()
    table.notes.append(
        "Each writer is its own process and user (as each clinician's kernel is) and makes one untimed edit before "
        "the timed ones; a conflict is a stale edit of a shared MOI, refused with ConflictError and retried on the "
        f"current version. With a pause (exponential, {paced}) the 20 writers offer about "
        f"{N_WRITERS / (args.think_ms / 1e3):.0f} edits/s, a busy ward of keyboard labelling; without one every "
        "writer edits as fast as it can, which saturates the machine (Little's law: latency = writers / throughput).")
    return [table]


def _edit_runs(pool: WriterPool, backends: dict[str, Fresh], args: argparse.Namespace, think: float, paced: str,
               table: Table, out: dict[str, Any]) -> None:
    for backend, fresh in backends.items():
        # (scenario, writers' MOIs on one recording, pause, modes)
        runs = [("own recording each", False, think, ("service", "plain")),
                ("own recording each", False, 0.0, ("service", "plain"))]
        if backend == "postgresql":
            runs.append(("all on one recording", True, think, ("service",)))
        results: dict[str, Any] = {}
        for n, (scenario, same, pause, modes) in enumerate(runs):
            db = fresh(f"edit_{n}")
            own, shared = _edit_setup(db, same)
            for mode in modes:
                when = paced if pause else "none (saturation)"
                say(f"  {backend}, {scenario}, pause {when}: {N_WRITERS} writers, {mode} ...")
                key = f"{scenario}/{when}/{mode}"
                results[key] = r = pool.run(db, mode, own, shared, args.n_edits, pause, args.seed)
                say(f"    p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, {r['edits_per_s']:.0f} edits/s, "
                    f"{r['conflicts']} conflicts, {r['errors']} errors")
        for key, r in results.items():
            scenario, when, mode = key.split("/")
            plain = results.get(f"own recording each/{when}/plain", results[f"own recording each/{paced}/plain"])
            label = "store.update_moi (validated, audited, versioned)" if mode == "service" else \
                "plain UPDATE + commit"
            table.add(backend, scenario, when, label, r["p50_ms"], r["p95_ms"], r["p99_ms"], r["max_ms"],
                      r["edits_per_s"], r["conflicts"] if mode == "service" else "-",
                      r["errors"] if mode == "service" else "-", f"{r['p50_ms'] / plain['p50_ms']:.1f}x")
        out[f"edit_{backend}"] = results


# --- load: 100k MOIs into a DataFrame -----------------------------------------------------------


def _naive_orm(url: str):
    """What a user might write: ORM objects, a dict per row, then a DataFrame."""
    import pandas as pd
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from deepepil.labels.db import make_engine
    from deepepil.labels.models import MOI, AppUser, Recording

    engine = make_engine(url)
    try:
        with Session(engine) as session:
            rows = session.execute(sa.select(MOI, AppUser.username, Recording.fps)
                                   .join(AppUser, MOI.author_id == AppUser.id)
                                   .join(Recording, MOI.recording_id == Recording.id)
                                   .where(MOI.deleted.is_(False))).all()
            records = []
            for moi, author, fps in rows:
                d = {c.name: getattr(moi, c.name) for c in MOI.__table__.columns}
                d.update(author=author, fps=fps, start_seconds=moi.start_frame / fps, end_seconds=moi.end_frame / fps)
                records.append(d)
        return pd.DataFrame(records)
    finally:
        engine.dispose()


def _read_sql(url: str):
    """The other common choice: pandas.read_sql of the joined query."""
    import pandas as pd
    import sqlalchemy as sa

    from deepepil.labels.db import make_engine
    from deepepil.labels.models import MOI, AppUser, Recording

    engine = make_engine(url)
    try:
        stmt = (sa.select(MOI.__table__, AppUser.username.label("author"), Recording.fps)
                .join_from(MOI.__table__, AppUser.__table__, MOI.author_id == AppUser.id)
                .join(Recording.__table__, MOI.recording_id == Recording.id).where(MOI.deleted.is_(False)))
        df = pd.read_sql(stmt, engine)
        df["start_seconds"] = df["start_frame"] / df["fps"]
        df["end_seconds"] = df["end_frame"] / df["fps"]
        return df
    finally:
        engine.dispose()


def _best(fn, repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), result


def bench_load(backends: dict[str, Fresh], args: argparse.Namespace, out: dict[str, Any]) -> list[Table]:
    from deepepil.labels.service import connect

    table = Table(f"Loading {args.n_mois:,} MOIs into a DataFrame (median of {args.repeats})",
                  ["backend", "way", "seconds", "rows", "vs store.mois()"])
    for backend, fresh in backends.items():
        url = fresh("load")
        info = make_database(url, 50)
        authors = [i for u, i in info["users"].items() if u != "admin"]
        t0 = time.perf_counter()
        insert_mois(url, moi_rows(args.n_mois, info["recordings"], authors, args.seed))
        say(f"  {backend}: inserted {args.n_mois:,} MOIs in {time.perf_counter() - t0:.1f} s (setup)")
        store = connect(url, user="admin")
        try:
            t_store, df = _best(store.mois, args.repeats)
            store_fresh = connect(url, user="admin")
            t0 = time.perf_counter()
            store_fresh.mois()
            t_first = time.perf_counter() - t0
            store_fresh.close()
        finally:
            store.close()
        t_orm, df_orm = _best(lambda: _naive_orm(url), args.repeats)
        t_sql, df_sql = _best(lambda: _read_sql(url), args.repeats)
        assert len(df) == len(df_orm) == len(df_sql) == args.n_mois
        say(f"    store.mois() {t_store:.2f} s (first call of a new store {t_first:.2f} s), "
            f"ORM {t_orm:.2f} s, read_sql {t_sql:.2f} s")
        table.add(backend, "store.mois()", t_store, len(df), "1x")
        table.add(backend, "store.mois(), first call of a new LabelStore", t_first, len(df),
                  f"{t_first / t_store:.1f}x")
        table.add(backend, "ORM objects -> list of dicts -> DataFrame", t_orm, len(df_orm), f"{t_orm / t_store:.1f}x")
        table.add(backend, "pandas.read_sql(joined select)", t_sql, len(df_sql), f"{t_sql / t_store:.1f}x")
        out[f"load_{backend}"] = {"store_s": t_store, "first_s": t_first, "orm_s": t_orm, "read_sql_s": t_sql,
                                  "rows": len(df)}
    return [table]


# --- exchange -------------------------------------------------------------------------------------


def bench_exchange(backends: dict[str, Fresh], args: argparse.Namespace, out: dict[str, Any]) -> list[Table]:
    from deepepil.labels.exchange import csv as csv_x
    from deepepil.labels.exchange import eaf
    from deepepil.labels.service import connect

    n = 1000
    table = Table(f"Exchange of {n:,} MOIs of one recording", ["backend", "step", "seconds", "per MOI ms"])
    for backend, fresh in backends.items():
        url = fresh("exchange")
        info = make_database(url, 2)
        rec, rec2 = info["recordings"]
        insert_mois(url, moi_rows(n, [rec], [info["users"]["w00"]], args.seed))
        w00, w01 = connect(url, user="w00"), connect(url, user="w01")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                steps = {
                    "export_eaf": lambda: eaf.export_eaf(w00, rec, Path(tmp) / "r.eaf"),
                    "validate_eaf (EAF 3.0 schema)": lambda: eaf.validate_eaf(Path(tmp) / "r.eaf"),
                    "import_eaf (one transaction)": lambda: eaf.import_eaf(w01, Path(tmp) / "r.eaf", rec2),
                    "export_csv": lambda: csv_x.export_csv(w00, Path(tmp) / "r.csv", rec),
                    "import_csv (one transaction)": lambda: csv_x.import_csv(w01, Path(tmp) / "r.csv"),
                }
                for step, fn in steps.items():
                    t0 = time.perf_counter()
                    fn()
                    seconds = time.perf_counter() - t0
                    table.add(backend, step, seconds, seconds / n * 1e3)
                    out.setdefault(f"exchange_{backend}", {})[step] = seconds
                    say(f"  {backend}: {step} {seconds:.2f} s")
        finally:
            w00.close()
            w01.close()
    return [table]


# --- main -----------------------------------------------------------------------------------------


def idle_share(seconds: float = 3.0) -> float:
    """Share of the machine's CPU time that was idle over the next ``seconds`` (/proc/stat)."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(total1 - total0, 1)


def wait_until_idle(limit_s: float) -> float:
    """Wait (at most ``limit_s``) until other work leaves the machine 90 % idle; return the idle share."""
    deadline = time.monotonic() + limit_s
    while True:
        idle = idle_share()
        if idle >= 0.9 or time.monotonic() > deadline:
            return idle
        say(f"  waiting for the machine to be idle ({100 * (1 - idle):.0f} % CPU in use by others)")
        time.sleep(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="30 edits per writer, 20k MOIs (1-2 minutes)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--backends", default="postgresql,sqlite", help="postgresql and/or sqlite")
    parser.add_argument("--n-edits", type=int, default=None, help="edits per writer (default 200; quick 30)")
    parser.add_argument("--n-mois", type=int, default=None, help="MOIs to load (default 100000; quick 20000)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of each load (default 5; quick 2)")
    parser.add_argument("--think-ms", type=float, default=200.0,
                        help="mean pause of a writer between edits, ms (default 200)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each section, wait up to this long for other work on the machine to stop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="markdown output")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    if set(sections) - set(SECTIONS):
        parser.error(f"unknown section(s) {sorted(set(sections) - set(SECTIONS))}; valid: {', '.join(SECTIONS)}")
    backend_names = [b.strip() for b in args.backends.split(",") if b.strip()]
    if set(backend_names) - {"postgresql", "sqlite"}:
        parser.error("backends are postgresql and sqlite")
    args.n_edits = args.n_edits or (30 if args.quick else 200)
    args.n_mois = args.n_mois or (20_000 if args.quick else 100_000)
    args.repeats = args.repeats or (2 if args.quick else 5)
    os.environ.pop("DEEPEPIL_DATABASE_URL", None)

    from deepepil.testing.postgres import TemporaryPostgres

    started = time.perf_counter()
    tables: list[Table] = []
    targets: list[Target] = []
    out: dict[str, Any] = {}
    pg = TemporaryPostgres().start() if "postgresql" in backend_names else None
    try:
        with tempfile.TemporaryDirectory(prefix="deepepil-bench-labels-") as tmp:
            functions = {"edit": bench_edit, "load": bench_load, "exchange": bench_exchange}
            for name in SECTIONS:
                if name not in sections:
                    continue
                backends: dict[str, Fresh] = {}
                if pg is not None:
                    backends["postgresql"] = lambda tag, pg=pg: pg.create_database(f"bench_{tag}")
                if "sqlite" in backend_names:
                    backends["sqlite"] = lambda tag, tmp=tmp: f"sqlite:///{Path(tmp) / f'{tag}.sqlite'}"
                idle = wait_until_idle(args.wait_idle) if args.wait_idle else idle_share()
                say(f"[{name}] (machine {100 * idle:.0f} % idle before)")
                t0 = time.perf_counter()
                section = functions[name](backends, args, out)
                section[-1].notes.append(f"Machine {100 * idle:.0f} % idle before this section; "
                                         f"1-min load average {os.getloadavg()[0]:.1f} after it.")
                tables += section
                say(f"[{name}] {time.perf_counter() - t0:.0f} s")
    finally:
        if pg is not None:
            pg.stop()
    if "edit_postgresql" in out:
        p99 = out["edit_postgresql"][f"own recording each/{args.think_ms:g} ms mean/service"]["p99_ms"]
        targets.append(Target(f"MOI edit p99, 20 writers pausing {args.think_ms:g} ms mean, PostgreSQL",
                              f"{p99:.1f} ms", "< 50 ms", p99 < 50))
    if "load_postgresql" in out:
        s = out["load_postgresql"]["store_s"]
        targets.append(Target(f"store.mois() of {out['load_postgresql']['rows']:,} MOIs, PostgreSQL", f"{s:.2f} s",
                              "< 1 s (100k)", s < 1.0))
    seconds = time.perf_counter() - started
    command = "python bench/bench_labels.py " + " ".join(argv if argv is not None else sys.argv[1:])
    info = machine()
    import pandas
    import psycopg2
    import sqlalchemy

    lines = [f"Command: `{command.strip()}` ({seconds:.0f} s)", "",
             f"Machine: {info['nproc']} cores ({info['cpu']}), {info['ram']}, {info['os']}, Python {info['python']}; "
             f"SQLAlchemy {sqlalchemy.__version__}, psycopg2 {psycopg2.__version__.split()[0]}, "
             f"pandas {pandas.__version__}, PostgreSQL {_pg_version()} (fsync off), SQLite {_sqlite_version()}; "
             f"{info['date']}", ""]
    if targets:
        lines.append(Table("Targets", ["target", "measured", "wanted", ""], [t.row() for t in targets]).markdown())
    lines += [t.markdown() for t in tables]
    text = "\n".join(lines)
    out_path = args.out or Path(__file__).resolve().parent.parent / ".bench-data" / "results" / \
        f"bench_labels-{'quick' if args.quick else 'full'}.md"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text)
    print()
    print(text)
    say(f"markdown: {out_path}")
    return 0


def _pg_version() -> str:
    import subprocess

    from deepepil.testing.postgres import _bin

    exe = _bin("postgres")
    if exe is None:
        return "?"
    text = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"\(PostgreSQL\) (\S+)", text)
    return match.group(1) if match else "?"


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


if __name__ == "__main__":
    sys.exit(main())
