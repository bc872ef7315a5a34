"""The labeling app when the label database goes away under it (PostgreSQL, as on the hub).

The module's JupyterLab works on a PostgreSQL database of the session's cluster. "Unreachable"
is made real: the database stops accepting connections (``ALLOW_CONNECTIONS false``) and its
open connections are terminated, so the kernel's next statement fails the way it does when the
server goes down. The app must say so at once and never show the edit as saved; once the
database is back, an edit it kept is either saved (and shown saved) or visibly not.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from _app import LabelingAppPage
from _lab import CLINICIAN, open_lab, populate_label_db

from deepepil.labels import connect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FPS = 30
BAD_STATES = ("Offline", "Not saved")


@pytest.fixture(scope="module")
def lab(start_lab, postgres_cluster, cohort):
    """JupyterLab on a fresh, populated PostgreSQL label database (overrides the SQLite one)."""
    url = postgres_cluster.create_database()
    return start_lab(url, populate_label_db(url, cohort))


def set_reachable(cluster, db_url: str, reachable: bool) -> None:
    """Let the database accept connections again, or refuse new ones and end the open ones."""
    name = db_url.rsplit("/", 1)[1]
    engine = sa.create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(reachable).lower()}'))
            if not reachable:
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
    finally:
        engine.dispose()


def mois_at(lab, start: int) -> list:
    with connect(lab.db_url, user=CLINICIAN) as store:
        frame = store.mois(lab.ids.recording)
    return [r for r in frame.itertuples() if r.start_frame == start]


def test_unreachable_database_is_shown_at_once_and_never_as_saved(lab, postgres_cluster, page, shot):
    open_lab(page, lab.server)
    ui = LabelingAppPage(page)
    ui.start(lab.notebooks["labeling.ipynb"])
    ui.open_recording(lab.ids.recording)
    ui.focus()
    ui.mark_moi(10, 19, "head/face", "head version", "1", FPS)
    assert len(mois_at(lab, 10)) == 1, "the database works before the fault"

    set_reachable(postgres_cluster, lab.db_url, False)
    try:
        since = len(ui.status_log())
        t0 = time.monotonic()
        ui.mark_moi(40, 49, "trunk", "tonic posturing", "0", FPS, wait_saved=False)
        status = ui.wait_status(*BAD_STATES, timeout_ms=15_000)
        shown_after_seconds = time.monotonic() - t0
        shot("database-unreachable")
        assert status["tone"] == "bad", status
        assert shown_after_seconds < 10, f"the fault took {shown_after_seconds:.1f} s to show"
        page.wait_for_timeout(4000)  # the app polls (and retries kept edits) every 3 s
        shot("database-unreachable-later")
        while_away = ui.status_log()[since:]
        assert not any(t.startswith(("Saved", "All changes saved")) for t in while_away), while_away
        assert ui.status()["tone"] == "bad"
        messages = " ".join(ui.toasts()).lower()
        assert "database" in messages, f"the clinician is told what is wrong: {messages!r}"
    finally:
        set_reachable(postgres_cluster, lab.db_url, True)

    # back: a kept edit is saved and shown saved, or it is not in the database and not shown saved
    try:
        final = ui.wait_status("Saved", "All changes saved", timeout_ms=30_000)
    except Exception:  # noqa: BLE001 - playwright TimeoutError: the app gave the edit up
        final = ui.status()
    shot("database-back")
    saved = mois_at(lab, 40)
    if final["text"].startswith(("Saved", "All changes saved")):
        assert len(saved) == 1 and saved[0].end_frame == 50 and saved[0].region == "trunk", saved
    else:
        assert saved == [], f"the status says {final['text']!r} but the MOI is in the database"
        assert final["tone"] == "bad", final
