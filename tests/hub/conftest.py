"""Fixtures for the hub tests: a real JupyterHub with the DeepEpil config, its proxy and user servers.

* ``hub_cohort``: a tiny synthetic cohort (2 patients, 2 s), generated and ingested once per session.
* ``start_hub(label_url, **env)``: prepares the label database (clinics North and South, the
  demo users ``ana`` (clinician, North), ``ben`` (clinician, South), ``dana`` (data scientist),
  ``alex`` (admin), the recordings split between the clinics), creates their approved hub
  accounts, and starts ``jupyterhub -f jupyterhub_config.py`` (real configurable-http-proxy,
  real single-user servers) on free ports in a temporary folder. A module shares one hub; it
  is stopped (SIGTERM: servers and proxy go with it) when the module's tests are done.
* ``password_logins`` (tests/conftest.py): PostgreSQL asks the deepepil users' roles for their
  passwords (SCRAM), as a deployment's pg_hba.conf does.

Nothing is substituted: the only difference from ``deepepil demo`` is the temporary folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deepepil.demo import (
    DEMO_ACCOUNTS,
    DemoAccount,
    hub_environment,
    prepare_demo_data,
    prepare_hub_accounts,
    prepare_label_database,
)
from hub.client import HubClient
from hub.launcher import HubProcess



@dataclasses.dataclass
class RunningHub:
    """A started hub and what the tests need to know about it."""

    process: HubProcess
    workdir: Path
    label_url: str
    hub_db_url: str
    passwords: dict[str, str]
    placed: dict[str, str]

    @property
    def url(self) -> str:
        return self.process.url

    def client(self, username: str | None = None) -> HubClient:
        """A new client; logged in as ``username`` (with its demo password) when given."""
        client = HubClient(self.url)
        if username is not None:
            response = client.login(username, self.passwords[username])
            assert client.logged_in, f"login of {username} failed: {response.status_code}\n{self.process.log_tail()}"
        return client


@pytest.fixture(scope="session")
def hub_cohort(tmp_path_factory) -> Path:
    """The store folder of a tiny synthetic cohort (2 patients, 2 s each)."""
    work = tmp_path_factory.mktemp("hub-cohort")
    return prepare_demo_data(work, patients=2, seconds=2, size="tiny", seed=3)


@pytest.fixture(scope="module")
def start_hub(tmp_path_factory, hub_cohort) -> Iterator[Callable[..., RunningHub]]:
    """``start_hub(label_url, extra_accounts=(), **env)``: a running hub, stopped after the module.

    ``extra_accounts`` are approved hub accounts the label database does not know; ``env``
    adds hub settings (``DEEPEPIL_GPUS="0,1"``, ...).
    """
    started: list[HubProcess] = []

    def start(label_url: str | None = None, *, extra_accounts: tuple[str, ...] = (), **env: str) -> RunningHub:
        workdir = tmp_path_factory.mktemp("hub")
        label_url = label_url or f"sqlite:///{workdir / 'labels.sqlite'}"
        placed = prepare_label_database(label_url, hub_cohort)
        state = workdir / "hub"
        hub_db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
        passwords = prepare_hub_accounts(hub_db_url, state / "demo-accounts.json",
                                         DEMO_ACCOUNTS + tuple(DemoAccount(n, "unregistered") for n in extra_accounts))
        settings = hub_environment(workdir, label_url, hub_cohort, DEEPEPIL_SPAWN_TIMEOUT_SECONDS="240", **env)
        process = HubProcess(state, settings)
        started.append(process)
        process.start(timeout_seconds=180)
        return RunningHub(process, workdir, label_url, hub_db_url, passwords, placed)

    yield start
    for process in started:
        process.stop()


