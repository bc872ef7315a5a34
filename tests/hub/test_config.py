"""Hub settings from the environment, GPU assignment, roles and the config the hub loads."""

from __future__ import annotations

import pytest
from jupyterhub.scopes import expand_scopes
from traitlets.config import Config

from hub.auth import authenticator_class, hub_roles
from hub.config import configure, culler_role
from hub.gpus import GpuAssigner
from hub.settings import HubConfigError, HubSettings


def test_defaults_are_native_accounts_and_sqlite_labels(tmp_path):
    s = HubSettings.from_env({"DEEPEPIL_HUB_STATE_DIR": str(tmp_path)})
    assert s.authenticator == "native" and s.ip == "127.0.0.1" and s.port == 8000
    assert s.owner_url is None and s.label_db_url == f"sqlite:///{tmp_path / 'labels.sqlite'}"
    assert s.hub_db_url == f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    assert s.cull_idle_seconds == 3600 and s.gpus == ()


@pytest.mark.parametrize("env, message", [
    ({"DEEPEPIL_AUTHENTICATOR": "dummy"}, "use one of native, ldap, github, generic-oauth"),
    ({"DEEPEPIL_DATABASE_URL": "postgresql+psycopg2://u:p@db/labels"}, "DEEPEPIL_DB_OWNER_URL"),
    ({"DEEPEPIL_DB_OWNER_URL": "sqlite:///x"}, "must be a PostgreSQL URL"),
    ({"DEEPEPIL_SSL_CERT": "/etc/cert.pem"}, "set both DEEPEPIL_SSL_CERT and DEEPEPIL_SSL_KEY"),
    ({"DEEPEPIL_SSL_CERT": "/nope/c.pem", "DEEPEPIL_SSL_KEY": "/nope/k.pem"}, "no such file"),
    ({"DEEPEPIL_GPUS": "0,gpu1"}, "'gpu1' is not a GPU"),
    ({"DEEPEPIL_GPUS": "0,0"}, "names a GPU twice"),
    ({"DEEPEPIL_HUB_PORT": "eighty"}, "DEEPEPIL_HUB_PORT='eighty' is not an integer"),
    ({"DEEPEPIL_CULL_IDLE_SECONDS": "-5"}, "too small"),
    ({"DEEPEPIL_NOTEBOOKS": "/no/such/folder"}, "no such folder"),
    ({"DEEPEPIL_DEFAULT_URL": "lab"}, "must start with /"),
])
def test_bad_settings_name_the_variable_and_what_is_allowed(tmp_path, env, message):
    with pytest.raises(HubConfigError, match=message):
        HubSettings.from_env({"DEEPEPIL_HUB_STATE_DIR": str(tmp_path), **env})


def test_postgresql_mode_hands_no_shared_url_to_users(tmp_path):
    s = HubSettings.from_env({"DEEPEPIL_HUB_STATE_DIR": str(tmp_path),
                              "DEEPEPIL_DB_OWNER_URL": "postgresql+psycopg2://owner:pw@db:5432/labels",
                              "DEEPEPIL_DATABASE_URL": "postgresql+psycopg2://owner:pw@db:5432/labels"})
    assert s.postgres and s.label_db_url is None and s.lookup_url.startswith("postgresql")


def test_tls_settings_reach_the_hub(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("c")
    key.write_text("k")
    c = Config()
    configure(c, HubSettings.from_env({"DEEPEPIL_HUB_STATE_DIR": str(tmp_path), "DEEPEPIL_SSL_CERT": str(cert),
                                       "DEEPEPIL_SSL_KEY": str(key)}))
    assert c.JupyterHub.ssl_cert == str(cert) and c.JupyterHub.ssl_key == str(key)


def test_the_culler_runs_as_a_service_with_only_the_scopes_it_needs(tmp_path):
    c = Config()
    configure(c, HubSettings.from_env({"DEEPEPIL_HUB_STATE_DIR": str(tmp_path), "DEEPEPIL_CULL_IDLE_SECONDS": "900",
                                        "DEEPEPIL_MLFLOW": "off"}))
    (service,) = c.JupyterHub.services
    assert service["name"] == "idle-culler" and "--timeout=900" in service["command"]
    assert service["command"][1:3] == ["-m", "jupyterhub_idle_culler"]
    assert culler_role() in c.JupyterHub.load_roles
    c = Config()
    configure(c, HubSettings.from_env({"DEEPEPIL_HUB_STATE_DIR": str(tmp_path), "DEEPEPIL_CULL_IDLE_SECONDS": "0",
                                        "DEEPEPIL_MLFLOW": "off"}))
    assert "services" not in c.JupyterHub


def test_only_admins_manage_users_and_nobody_enters_another_users_server():
    roles = {r["name"]: r for r in hub_roles()}
    # 'self' is each user's own resources; what else a role grants, expanded:
    admin = expand_scopes(set(roles["deepepil-admin"]["scopes"]) - {"self"})
    assert {"admin:users", "admin:servers", "admin-ui", "delete:servers", "read:users"} <= admin
    assert not [s for s in admin if s.startswith("access:servers")], "admins must not enter users' servers"
    assert roles["deepepil-clinician"]["scopes"] == ["self"]
    assert roles["deepepil-data-scientist"]["scopes"] == ["self"]
    assert roles["deepepil-clinician"]["groups"] == ["clinicians"]
    assert roles["deepepil-data-scientist"]["groups"] == ["data-scientists"]
    assert roles["deepepil-admin"]["groups"] == ["admins"]


def test_authenticators_are_chosen_by_name_and_a_missing_package_says_what_to_install():
    from hub.auth import DeepEpilNativeAuthenticator

    assert authenticator_class("native") is DeepEpilNativeAuthenticator
    with pytest.raises(HubConfigError, match="install jupyterhub-ldapauthenticator"):
        authenticator_class("ldap")
    with pytest.raises(HubConfigError, match="install oauthenticator"):
        authenticator_class("github")


def test_gpus_go_to_the_least_used_device_and_stay_with_a_running_server():
    gpus = GpuAssigner(("0", "1", "2"))
    assert [gpus.assign(u) for u in ("a/", "b/", "c/", "d/")] == ["0", "1", "2", "0"]
    assert gpus.assign("b/") == "1"  # a re-spawn of a running server keeps its GPU
    assert gpus.release("b/") == "1"
    assert gpus.assign("e/") == "1"  # the freed device is the least used one
    assert gpus.load() == {"0": 2, "1": 1, "2": 1}
    assert GpuAssigner(()).assign("a/") is None


def test_the_hooks_survive_traitlets_copying_and_stay_shared(tmp_path):
    import copy

    c = Config()
    hooks = configure(c, HubSettings.from_env({"DEEPEPIL_HUB_STATE_DIR": str(tmp_path), "DEEPEPIL_GPUS": "0"}))
    assert copy.deepcopy(c.Spawner.pre_spawn_hook).__self__ is hooks


def test_jupyterhub_config_reads_the_environment_and_loads_the_extra_config(tmp_path, monkeypatch):
    from traitlets.config.loader import PyFileConfigLoader

    from hub.launcher import CONFIG_FILE
    from hub.spawner import DeepEpilLocalSpawner

    extra = tmp_path / "extra.py"
    extra.write_text("c.Spawner.mem_limit = '8G'\nc.DeepEpilLocalSpawner.homes_root = '/data/homes'\n")
    for name, value in {"DEEPEPIL_HUB_STATE_DIR": str(tmp_path), "DEEPEPIL_HUB_PORT": "8443",
                        "DEEPEPIL_HUB_EXTRA_CONFIG": str(extra), "DEEPEPIL_HOMES": str(tmp_path / "homes")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DEEPEPIL_DATABASE_URL", raising=False)
    monkeypatch.delenv("DEEPEPIL_DB_OWNER_URL", raising=False)
    c = PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()
    assert c.JupyterHub.port == 8443 and c.JupyterHub.ip == "127.0.0.1"
    assert c.JupyterHub.spawner_class is DeepEpilLocalSpawner
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    assert c.Spawner.mem_limit == "8G" and c.DeepEpilLocalSpawner.homes_root == "/data/homes"  # extra config last
    assert c.Authenticator.manage_groups is True and c.NativeAuthenticator.open_signup is False
