"""Concurrent editors and killed processes: one edit wins, the others get a conflict, nothing is lost or half-stored."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from deepepil.errors import ConflictError, ValidationError
from deepepil.labels.db import make_engine
from deepepil.labels.models import MOI, Revision


def rows(url: str, model) -> list[dict]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(model.__table__).order_by(model.__table__.c.id))]
    finally:
        engine.dispose()


def test_two_sessions_editing_the_same_moi(label_db, open_store):
    kernel_1, kernel_2 = open_store("ann"), open_store("ann")  # two connections, e.g. two notebooks
    moi = kernel_1.add_moi(label_db.rec, "head/face", "head version", 30, 90, "left")
    seen_1, seen_2 = kernel_1.moi(moi.id), kernel_2.moi(moi.id)
    kernel_1.update_moi(moi.id, seen_1.version, end_frame=100)
    with pytest.raises(ConflictError) as err:
        kernel_2.delete_moi(moi.id, seen_2.version)
    assert err.value.current["end_frame"] == 100 and not err.value.current["deleted"]
    assert not kernel_1.moi(moi.id).deleted
    kernel_2.update_moi(moi.id, err.value.current["version"], laterality="right")  # retry on the current row
    final = kernel_1.moi(moi.id)
    assert (final.end_frame, final.laterality, final.version) == (100, "right", 3)  # both edits kept


@pytest.mark.parametrize("shared", [False, True], ids=["store-per-thread", "shared-store"])
def test_racing_threads_exactly_one_update_wins(label_db, open_store, shared):
    n = 8
    first = open_store("ann")
    moi = first.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    stores = [first] * n if shared else [open_store("ann" if i % 2 else "bea") for i in range(n)]
    barrier = threading.Barrier(n)

    def attempt(i: int):
        barrier.wait(timeout=30)
        try:
            return ("won", stores[i].update_moi(moi.id, moi.version, end_frame=20 + i).end_frame)
        except ConflictError as exc:
            return ("conflict", exc.current["version"])

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(attempt, range(n)))
    winners = [value for outcome, value in results if outcome == "won"]
    assert len(winners) == 1
    assert [value for outcome, value in results if outcome == "conflict"] == [2] * (n - 1)
    final = first.moi(moi.id)
    assert (final.version, final.end_frame) == (2, winners[0])
    assert first.revisions("moi", moi.id)["action"].tolist() == ["create", "update"]


def test_racing_threads_add_a_duplicate_once(label_db, open_store):
    n = 8
    stores = [open_store("ann") for _ in range(n)]
    barrier = threading.Barrier(n)

    def attempt(i: int) -> str:
        barrier.wait(timeout=30)
        try:
            stores[i].add_moi(label_db.rec, "head/face", "head version", 30, 90, "left")
            return "added"
        except ValidationError as exc:
            assert "identical MOI" in str(exc)
            return "duplicate"

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(attempt, range(n)))
    assert sorted(results) == ["added"] + ["duplicate"] * (n - 1)
    assert len(rows(label_db.url, MOI)) == 1 and len(rows(label_db.url, Revision)) == 1


def test_a_writer_waiting_on_an_open_transaction_gets_a_conflict(label_db, open_store):
    a, b = open_store("ann"), open_store("bea")
    moi = a.add_moi(label_db.rec, "trunk", "clonic", 0, 10)
    updated, release = threading.Event(), threading.Event()

    def hold() -> None:
        with a.batch():
            a.update_moi(moi.id, moi.version, end_frame=50)
            updated.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert updated.wait(30)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(b.update_moi, moi.id, moi.version, end_frame=60)
            time.sleep(0.5)
            assert not pending.done()  # it waits for a's transaction instead of overwriting it
            release.set()
            holder.join(30)
            with pytest.raises(ConflictError) as err:
                pending.result(30)
    finally:
        release.set()
        holder.join(30)
    assert err.value.current["end_frame"] == 50
    assert a.moi(moi.id).end_frame == 50


_PAUSED_WRITER = textwrap.dedent("""
    import sys, time
    import sqlalchemy as sa
    from deepepil.labels.service import LabelStore

    class PausedBeforeCommit(LabelStore):
        def _before_commit(self, conn):
            mois = conn.execute(sa.text("SELECT count(*) FROM moi")).scalar()
            revisions = conn.execute(sa.text("SELECT count(*) FROM revision")).scalar()
            end = conn.execute(sa.text("SELECT max(end_frame) FROM moi")).scalar()
            print("READY", mois, revisions, end, flush=True)
            time.sleep(300)

    url, recording_id, action = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    store = PausedBeforeCommit(url, user="ann")
    if action == "add":
        store.add_moi(recording_id, "trunk", "clonic", 0, 10)
    else:
        moi_id = int(sys.argv[4])
        store.update_moi(moi_id, 1, end_frame=200)
    print("COMMITTED", flush=True)
""")


def _read_line(stream, timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    return lines.get(timeout=timeout)


@pytest.mark.parametrize("action", ["add", "update"])
def test_a_process_killed_mid_transaction_leaves_nothing(label_db, open_store, tmp_path, action):
    args = [str(label_db.rec), action]
    before_mois = before_revisions = []
    if action == "update":
        moi = open_store("ann").add_moi(label_db.rec, "trunk", "clonic", 0, 10)
        args.append(str(moi.id))
        before_mois, before_revisions = rows(label_db.url, MOI), rows(label_db.url, Revision)
    script = tmp_path / "paused_writer.py"
    script.write_text(_PAUSED_WRITER)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen([sys.executable, str(script), label_db.url, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            line = _read_line(proc.stdout, timeout=120)
            # inside its transaction the change and its revision are there ...
            expected = "READY 1 1 10" if action == "add" else "READY 1 2 200"
            assert line.strip() == expected, (line, proc.stderr.read() if proc.poll() is not None else "")
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
    # ... and after the kill neither is
    assert rows(label_db.url, MOI) == before_mois
    assert rows(label_db.url, Revision) == before_revisions
    # the database is usable at once: nothing left locked
    store = open_store("ann")
    store.add_moi(label_db.rec, "trunk", "clonic", 0, 10 if action == "add" else 11)
    if action == "update":
        assert store.update_moi(moi.id, 1, end_frame=20).version == 2
