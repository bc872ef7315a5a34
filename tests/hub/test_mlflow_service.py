"""The MLflow UI and API behind the hub: only logged-in data scientists and admins get through.

One real hub for the module (``start_hub``) running the ``mlflow`` service (hub/mlflow_service.py),
which starts a real ``mlflow server`` on 127.0.0.1; requests go through the real proxy.
"""

from __future__ import annotations

import pytest
import requests
from jupyterhub.scopes import expand_scopes
from traitlets.config import Config

from hub.auth import hub_roles, mlflow_role
from hub.config import configure
from hub.settings import HubConfigError, HubSettings

pytestmark = pytest.mark.timeout(600)

SEARCH = "api/2.0/mlflow/experiments/search"
# what a browser adds to the MLflow UI's own fetch() calls
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}


@pytest.fixture(scope="module")
def hub(start_hub):
    return start_hub(DEEPEPIL_MLFLOW="on", DEEPEPIL_CULL_IDLE_SECONDS="0")


@pytest.fixture(scope="module")
def mlflow_url(hub) -> str:
    return f"{hub.url}/services/mlflow/"


@pytest.fixture(scope="module")
def dana(hub, mlflow_url):
    """Dana (data scientist), logged in; her browser has been through the service's OAuth once."""
    client = hub.client("dana")
    client.session.get(mlflow_url, timeout=240)
    return client


def test_a_data_scientist_gets_the_mlflow_ui_after_the_hub_login(hub, dana, mlflow_url):
    page = dana.session.get(mlflow_url, timeout=120)
    assert page.status_code == 200, (page.status_code, page.url, hub.process.log_tail())
    assert page.url == mlflow_url  # no login page in between: the hub's OAuth remembered her
    assert "<html" in page.text.lower() and ("MLflow" in page.text or "static-files" in page.text)
    r = dana.session.post(mlflow_url + SEARCH, json={"max_results": 10}, headers=SAME_ORIGIN, timeout=60)
    assert r.status_code == 200, r.text
    assert "Default" in {e["name"] for e in r.json()["experiments"]}


def test_a_data_scientist_tracks_with_her_hub_token(hub, dana, mlflow_url):
    auth = {"Authorization": f"Bearer {dana.token}"}  # what MLFLOW_TRACKING_TOKEN sends
    r = requests.post(mlflow_url + "api/2.0/mlflow/experiments/create", json={"name": "dana-first"},
                      headers=auth, timeout=60)
    assert r.status_code == 200, r.text
    r = requests.get(mlflow_url + SEARCH, params={"max_results": 50}, headers=auth, timeout=60)
    assert "dana-first" in {e["name"] for e in r.json()["experiments"]}
    # and the experiment is in what her browser sees
    r = dana.session.post(mlflow_url + SEARCH, json={"max_results": 50}, headers=SAME_ORIGIN, timeout=60)
    assert "dana-first" in {e["name"] for e in r.json()["experiments"]}


def test_an_admin_gets_the_mlflow_api(hub, mlflow_url):
    alex = hub.client("alex")
    r = requests.get(mlflow_url + SEARCH, params={"max_results": 10}, timeout=60,
                     headers={"Authorization": f"token {alex.token}"})
    assert r.status_code == 200 and "experiments" in r.json()


def test_a_clinician_is_refused(hub, mlflow_url):
    ana = hub.client("ana")
    page = ana.session.get(mlflow_url, timeout=120)
    assert page.status_code == 403 and "experiments" not in page.text
    r = requests.get(mlflow_url + SEARCH, headers={"Authorization": f"token {ana.token}"}, timeout=60)
    assert r.status_code == 403 and "experiments" not in r.text


def test_anonymous_requests_are_sent_to_the_login_or_refused(hub, mlflow_url):
    anonymous = requests.Session()
    r = anonymous.get(mlflow_url, timeout=60)  # a browser follows the redirects to the login form
    assert r.url.startswith(f"{hub.url}/hub/login") and "experiments" not in r.text
    r = anonymous.post(mlflow_url + SEARCH, json={}, timeout=60)
    assert r.status_code == 403
    r = anonymous.get(mlflow_url + SEARCH, headers={"Authorization": "token not-a-token"}, timeout=60,
                      allow_redirects=False)
    assert r.status_code in (302, 403) and "experiments" not in r.text


def test_another_site_cannot_change_mlflow_through_a_logged_in_browser(dana, mlflow_url):
    for headers in ({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"},
                    {"Origin": "https://evil.example"}):
        r = dana.session.post(mlflow_url + "api/2.0/mlflow/experiments/create", json={"name": "evil"},
                              headers=headers, timeout=60)
        assert r.status_code == 403, headers
    r = dana.session.post(mlflow_url + SEARCH, json={"max_results": 50}, headers=SAME_ORIGIN, timeout=60)
    assert "evil" not in {e["name"] for e in r.json()["experiments"]}


def test_mlflow_settings_default_to_the_state_folder_and_keep_out_of_the_label_database(tmp_path):
    s = HubSettings.from_env({"DEEPEPIL_HUB_STATE_DIR": str(tmp_path), "DEEPEPIL_MLFLOW": "on"})
    assert s.mlflow and s.mlflow_db_url == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert s.mlflow_artifacts == tmp_path / "mlflow-artifacts"
    c = Config()
    configure(c, s)
    service = {sv["name"]: sv for sv in c.JupyterHub.services}["mlflow"]
    assert service["url"].startswith("http://127.0.0.1:") and service["command"][1:] == ["-m", "hub.mlflow_service"]
    assert service["environment"]["DEEPEPIL_MLFLOW_DB_URL"] == s.mlflow_db_url
    assert mlflow_role() in c.JupyterHub.load_roles
    assert "DEEPEPIL_MLFLOW_DB_URL" not in c.Spawner.environment
    c = Config()
    configure(c, HubSettings.from_env({"DEEPEPIL_HUB_STATE_DIR": str(tmp_path), "DEEPEPIL_MLFLOW": "off"}))
    assert "mlflow" not in {sv["name"] for sv in c.JupyterHub.services}
    assert mlflow_role() not in c.JupyterHub.load_roles
    for env, message in (
        ({"DEEPEPIL_MLFLOW": "yes"}, "use on or off"),
        ({"DEEPEPIL_MLFLOW_DB_URL": "mysql://x/y"}, "sqlite:///PATH or a PostgreSQL URL"),
        ({"DEEPEPIL_DB_OWNER_URL": "postgresql+psycopg2://owner:pw@db:5432/labels",
          "DEEPEPIL_MLFLOW_DB_URL": "postgresql+psycopg2://mlflow:pw@db/labels"}, "names the label database"),
    ):
        with pytest.raises(HubConfigError, match=message):
            HubSettings.from_env({"DEEPEPIL_HUB_STATE_DIR": str(tmp_path), **env})


def test_only_data_scientists_and_admins_may_use_mlflow():
    role = mlflow_role()
    assert set(role["groups"]) == {"data-scientists", "admins"}
    assert expand_scopes(set(role["scopes"])) == {"access:services!service=mlflow"}
    assert not [r for r in hub_roles() if "clinicians" in r["groups"] and "access:services" in str(r["scopes"])]


def test_a_data_scientists_kernel_tracks_through_the_service_without_database_credentials(hub, dana, mlflow_url):
    dana.start_server()
    code = ("import os, mlflow\n"
            "mlflow.set_experiment('from-dana-kernel')\n"
            "with mlflow.start_run():\n"
            "    mlflow.log_metric('cv/f1_macro', 0.75)\n"
            "print(os.environ['MLFLOW_TRACKING_URI'], 'DEEPEPIL_MLFLOW_DB_URL' in os.environ)\n")
    with dana.kernel() as kernel:
        out = kernel.execute(code)["stdout"].split()
    assert out[-2].endswith("/services/mlflow") and out[-1] == "False"
    r = requests.get(mlflow_url + SEARCH, params={"max_results": 50}, timeout=60,
                     headers={"Authorization": f"token {dana.token}"})
    assert "from-dana-kernel" in {e["name"] for e in r.json()["experiments"]}
    dana.stop_server()
