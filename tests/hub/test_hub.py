"""A real hub (SQLite labels): login form, spawn, the labeling notebook in the user's server, access control.

One hub for the module (``start_hub``), with the demo accounts and two GPUs to share
(``DEEPEPIL_GPUS=0,1``: only ``CUDA_VISIBLE_DEVICES`` is checked, no GPU is needed).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from hub.client import HubClient, HubClientError

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def hub(start_hub):
    return start_hub(extra_accounts=("nolabels",), DEEPEPIL_GPUS="0,1")


@pytest.fixture(scope="module")
def ana(hub) -> HubClient:
    """Ana (clinician, North), logged in, her server running."""
    client = hub.client("ana")
    client.start_server()
    return client


@pytest.fixture(scope="module")
def ben(hub) -> HubClient:
    """Ben (clinician, South), logged in, his server running."""
    client = hub.client("ben")
    client.start_server()
    return client


def test_login_form_leads_to_the_labeling_notebook_in_a_fresh_server(hub):
    browser = HubClient(hub.url)
    response = browser.login("ana", hub.passwords["ana"])
    assert response.status_code == 302 and browser.logged_in
    # what the browser does next: follow the redirects, through the spawn, into JupyterLab
    landing = browser.session.get(hub.url + response.headers["Location"] if response.headers["Location"]
                                  .startswith("/") else response.headers["Location"], timeout=300)
    browser.wait_ready()
    lab = browser.session.get(browser.server_url(""), timeout=120)
    assert lab.status_code == 200, landing.url
    assert lab.url.endswith("/user/ana/lab/tree/labeling.ipynb")
    assert "JupyterLab" in lab.text or "jupyter-config-data" in lab.text


def test_the_labeling_notebook_runs_in_the_users_own_server(ana):
    notebook = ana.read_notebook("labeling.ipynb")  # provisioned into her home at spawn
    with ana.kernel("labeling.ipynb", timeout_seconds=300) as kernel:
        outputs = kernel.run_notebook(notebook)
        where = kernel.execute("import os; print(os.getcwd()); print(os.environ['JUPYTERHUB_USER'])")["stdout"]
    assert not [o for cell in outputs for o in cell if o["output_type"] == "error"]
    mimetypes = {m for cell in outputs for o in cell for m in o.get("data", {})}
    assert "application/vnd.jupyter.widget-view+json" in mimetypes, "the labeling app must display a widget"
    cwd, user = where.split()
    assert cwd.endswith("/home/ana") and user == "ana"


def test_each_server_gets_its_own_environment_and_never_the_hubs_secrets(hub, ana, ben):
    code = "import os, json; print(json.dumps(dict(os.environ)))"
    with ana.kernel() as k:
        env_a = json.loads(k.execute(code)["stdout"])
    with ben.kernel() as k:
        env_b = json.loads(k.execute(code)["stdout"])
    for env, user in ((env_a, "ana"), (env_b, "ben")):
        assert env["JUPYTERHUB_USER"] == user
        assert env["DEEPEPIL_DATABASE_URL"] == hub.label_url  # SQLite demo mode: the shared file
        assert env["DEEPEPIL_STORE"] == str(hub.process.env["DEEPEPIL_STORE"])
        assert env["DEEPEPIL_ROLE"] == "clinician"
        assert env["HOME"].endswith(f"/home/{user}")
        assert "CONFIGPROXY_AUTH_TOKEN" not in env and "DEEPEPIL_DB_OWNER_URL" not in env
        assert "JPY_COOKIE_SECRET" not in env
    # two users, two GPUs: least used first
    assert {env_a["CUDA_VISIBLE_DEVICES"], env_b["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}


def test_notebooks_are_provisioned_with_the_team_folder(hub, ana):
    r = ana.server_api("GET", "/contents/")
    names = {item["name"]: item["type"] for item in r.json()["content"]}
    assert names.get("labeling.ipynb") == "notebook" and names.get("explore.ipynb") == "notebook"
    assert names.get("team") == "directory"
    (hub.workdir / "team" / "shared.txt").write_text("team note")
    r = ana.server_api("GET", "/contents/team/shared.txt", params={"content": "1"})
    assert r.status_code == 200 and r.json()["content"] == "team note"


def test_unauthenticated_requests_reach_no_server(hub, ana):
    anonymous = requests.Session()
    r = anonymous.get(f"{hub.url}/user/ana/lab", timeout=60)  # a browser follows the redirects ...
    assert r.url.startswith(f"{hub.url}/hub/login") and "jupyter-config-data" not in r.text  # ... to the login
    r = anonymous.get(f"{hub.url}/user/ana/api/contents/labeling.ipynb", timeout=60)
    assert r.status_code == 403
    r = anonymous.get(f"{hub.url}/user/ana/api/contents/labeling.ipynb", timeout=60,
                      headers={"Authorization": "token not-a-token"})
    assert r.status_code == 403
    r = anonymous.get(f"{hub.url}/hub/api/users", timeout=60)
    assert r.status_code == 403


def test_one_user_cannot_reach_another_users_server(hub, ana, ben):
    # Ben's API token against Ana's server
    r = requests.get(f"{hub.url}/user/ana/api/contents/labeling.ipynb",
                     headers={"Authorization": f"token {ben.token}"}, timeout=60)
    assert r.status_code == 403
    r = requests.post(f"{hub.url}/user/ana/api/kernels", headers={"Authorization": f"token {ben.token}"},
                      json={"name": "python3"}, timeout=60)
    assert r.status_code == 403
    # Ben's browser (his login cookie) asking for Ana's JupyterLab: the hub does not let him in
    r = ben.session.get(f"{hub.url}/user/ana/lab", timeout=120)
    assert r.status_code == 403 and "jupyter-config-data" not in r.text, (r.status_code, r.url)
    # and not through the hub API either
    r = ben.hub_api("GET", "/users/ana")
    assert r.status_code in (403, 404)
    r = ben.hub_api("DELETE", "/users/ana/server")
    assert r.status_code in (403, 404)


def test_groups_follow_the_label_database_and_only_admins_manage_users(hub, ana):
    alex = hub.client("alex")
    r = alex.hub_api("GET", "/users")
    assert r.status_code == 200
    groups = {u["name"]: u["groups"] for u in r.json()}
    assert groups["ana"] == ["clinicians"] and groups["alex"] == ["admins"]
    assert ana.hub_api("GET", "/users").status_code == 403
    # an admin manages servers, but cannot enter one
    r = requests.get(f"{hub.url}/user/ana/api/contents/labeling.ipynb",
                     headers={"Authorization": f"token {alex.token}"}, timeout=60)
    assert r.status_code == 403


def test_an_account_the_label_database_does_not_know_gets_no_server(hub):
    client = hub.client("nolabels")
    with pytest.raises(HubClientError, match="not registered in the DeepEpil label database"):
        client.start_server()


def test_a_deactivated_user_logs_in_without_a_group_and_gets_no_server(hub):
    from deepepil.labels import admin
    from hub.accounts import create_account

    admin.add_user("eve", "clinician", "North", url=hub.label_url)
    admin.set_user_active("eve", False, url=hub.label_url)
    create_account("eve", "eve's long password", hub_db_url=hub.hub_db_url)
    eve = HubClient(hub.url)
    eve.login("eve", "eve's long password")
    assert eve.logged_in
    assert eve.hub_api("GET", "/users/eve").json()["groups"] == []
    with pytest.raises(HubClientError, match="eve is deactivated in the DeepEpil label database"):
        eve.start_server()


def test_an_unapproved_signup_cannot_log_in_until_an_admin_approves_it(hub):
    client = HubClient(hub.url)
    r = client.signup("newdoc", "a long enough pass 1")
    assert r.status_code == 200 and "admin" in r.text.lower()
    r = client.login("newdoc", "a long enough pass 1")
    assert not client.logged_in and "has not been authorized" in r.text
    out = subprocess.run([sys.executable, "-m", "deepepil.cli", "admin", "approve", "newdoc",
                          "--hub-db", hub.hub_db_url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "approved" in out.stdout
    client.login("newdoc", "a long enough pass 1")
    assert client.logged_in
    client.login("newdoc", "a wrong password")
    assert not client.logged_in


def test_approving_someone_who_never_signed_up_says_who_is_waiting(hub):
    HubClient(hub.url).signup("waiting1", "another long pass 2")
    out = subprocess.run([sys.executable, "-m", "deepepil.cli", "admin", "approve", "nobody",
                          "--hub-db", hub.hub_db_url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "no hub account 'nobody'" in out.stderr and "waiting1" in out.stderr


def test_a_stopped_server_gives_its_gpu_back(hub, ben):
    with ben.kernel() as k:
        before = k.execute("import os; print(os.environ['CUDA_VISIBLE_DEVICES'])")["stdout"].strip()
    ben.stop_server()
    dana = hub.client("dana")
    dana.start_server()
    with dana.kernel() as k:
        assert k.execute("import os; print(os.environ['CUDA_VISIBLE_DEVICES'])")["stdout"].strip() == before
    dana.stop_server()
