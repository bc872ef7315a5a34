"""Fixtures for the end-to-end tests: synthetic data, a label database, JupyterLab and headless Chromium.

``lab`` is a JupyterLab server per test module (its kernels use the module's own copy of the
label database, ``DEEPEPIL_USER=clinician``); ``page`` is a fresh Chromium page per test, at
1600x1000. Screenshots and console logs go to ``test-artifacts/browser/<test>/``: the ones
a test takes with ``shot(name)``, and on failure ``failure.png`` and ``console.log``.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _lab import (ARTIFACTS, CLINICIAN, NOTEBOOKS, VIEWPORT, Cohort, LabelIds, LabServer, build_store,
                   populate_label_db)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item, so fixtures can tell a failed test at teardown."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Cohort:
    """Two synthetic patients (6 s, size small), ingested into one recording store."""
    return build_store(tmp_path_factory.mktemp("browser-cohort"))


@pytest.fixture(scope="session")
def label_template(tmp_path_factory, cohort) -> tuple[Path, LabelIds]:
    """A populated SQLite label database to copy (see :func:`populate_label_db`)."""
    path = tmp_path_factory.mktemp("browser-labels") / "template.sqlite"
    return path, populate_label_db(f"sqlite:///{path}", cohort)


@dataclasses.dataclass
class Lab:
    """A running JupyterLab server with the data it serves."""

    server: LabServer
    db_url: str
    ids: LabelIds
    cohort: Cohort
    notebooks: dict[str, str]  # notebook file name -> path relative to the server root

    @property
    def user(self) -> str:
        return CLINICIAN


@pytest.fixture(scope="session")
def start_lab(tmp_path_factory, cohort) -> Iterator[Callable[[str, LabelIds], Lab]]:
    """``start_lab(db_url, ids)``: a JupyterLab server on that database; all stopped at the session's end."""
    servers: list[LabServer] = []

    def start(db_url: str, ids: LabelIds) -> Lab:
        workdir = tmp_path_factory.mktemp("lab")
        server = LabServer(workdir, {
            "DEEPEPIL_DATABASE_URL": db_url, "DEEPEPIL_STORE": str(cohort.store), "DEEPEPIL_USER": CLINICIAN,
        })
        notebooks = {nb.name: server.add_notebook(nb) for nb in sorted(NOTEBOOKS.glob("*.ipynb"))}
        servers.append(server)
        server.start()
        return Lab(server=server, db_url=db_url, ids=ids, cohort=cohort, notebooks=notebooks)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def lab(start_lab, label_template, tmp_path_factory) -> Lab:
    """JupyterLab for one test module, on a fresh copy of the SQLite label database."""
    template, ids = label_template
    copy = tmp_path_factory.mktemp("labels") / "labels.sqlite"
    shutil.copyfile(template, copy)
    return start_lab(f"sqlite:///{copy}", ids)


@pytest.fixture
def artifacts(request) -> Path:
    """This test's folder under ``test-artifacts/browser/`` (emptied first)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])
    folder = ARTIFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def page(browser, artifacts, request, lab) -> Iterator[object]:
    """A fresh page at 1600x1000; console messages and page errors are kept in ``page.console_lines``.

    On failure the page's screenshot and console go to the test's artifacts folder. The test's
    kernels are shut down afterwards.
    """
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(60_000)
    page = context.new_page()
    lines: list[str] = []
    page.on("console", lambda msg: lines.append(f"[{msg.type}] {msg.text}"))
    page.on("pageerror", lambda exc: lines.append(f"[pageerror] {exc}"))
    page.console_lines = lines
    yield page
    failed = any(getattr(request.node, f"rep_{when}", None) is not None
                 and getattr(request.node, f"rep_{when}").failed for when in ("setup", "call"))
    if failed:
        try:
            page.screenshot(path=str(artifacts / "failure.png"), full_page=True)
        except Exception as exc:  # noqa: BLE001 - a closed or crashed page: keep the console anyway
            lines.append(f"[screenshot failed] {exc}")
        (artifacts / "server.log").write_text(lab.server.log_tail(20000))
    (artifacts / "console.log").write_text("\n".join(lines) + "\n")
    context.close()
    try:
        lab.server.shutdown_kernels()
    except OSError:
        pass


@pytest.fixture
def shot(page, artifacts) -> Callable[[str], Path]:
    """``shot(name)``: save a screenshot of the page as ``NN-name.png`` in the test's artifacts folder."""
    counter = iter(range(1, 1000))

    def take(name: str, *, full_page: bool = False) -> Path:
        path = artifacts / f"{next(counter):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
