"""The Zero to JupyterHub values (hub/k8s/values.yaml) in a real KubeSpawner, without a cluster.

The chart turns ``singleuser.*`` values into KubeSpawner traits; :func:`spawner_config` does
the same for the keys our values use (the chart's documented mapping), a real ``KubeSpawner``
is made for a real hub ``User`` with that config, a profile is applied as the spawn form
would, and the pod manifest KubeSpawner would send to Kubernetes is checked.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

import pytest
import yaml
from jupyterhub import orm
from jupyterhub.objects import Hub
from jupyterhub.user import User
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from traitlets.config import Config

VALUES = Path(__file__).resolve().parents[2] / "hub" / "k8s" / "values.yaml"
STORE = "/srv/deepepil/store"


# KubeSpawner reads a kube config when it is made; this one names a cluster that does not exist
# (nothing here talks to it: building a pod manifest is local)
KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: deepepil}}]
current-context: none
"""


@pytest.fixture(scope="module")
def values(tmp_path_factory) -> dict:
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(KUBECONFIG)
    with pytest.MonkeyPatch.context() as mp:
        # what KUBECONFIG does, after kubernetes_asyncio has read the environment at import
        mp.setattr("kubernetes_asyncio.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
        mp.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield yaml.safe_load(VALUES.read_text())


def spawner_config(values: dict) -> Config:
    """KubeSpawner traits from the chart's ``singleuser`` values (the subset our values use)."""
    su = values["singleuser"]
    c = Config()
    k = c.KubeSpawner
    k.image = f"{su['image']['name']}:{su['image']['tag']}"
    k.cmd = [su["cmd"]]
    k.default_url = su["defaultUrl"]
    k.cpu_limit, k.cpu_guarantee = float(su["cpu"]["limit"]), float(su["cpu"]["guarantee"])
    k.mem_limit, k.mem_guarantee = su["memory"]["limit"], su["memory"]["guarantee"]
    k.environment = dict(su["extraEnv"])
    storage = su["storage"]
    assert storage["type"] == "dynamic"
    k.pvc_name_template = "claim-{username}{servername}"
    k.storage_pvc_ensure = True
    k.storage_capacity = storage["capacity"]
    k.volumes = [{"name": "volume-{username}{servername}",
                  "persistentVolumeClaim": {"claimName": "{pvc_name}"}}] + storage["extraVolumes"]
    k.volume_mounts = [{"name": "volume-{username}{servername}", "mountPath": storage["homeMountPath"]}] + \
        storage["extraVolumeMounts"]
    k.lifecycle_hooks = su["lifecycleHooks"]
    k.profile_list = su["profileList"]
    return c


def make_spawner(values: dict, username: str = "ana") -> KubeSpawner:
    """A KubeSpawner for a real hub user record, as the hub makes it at spawn time."""
    db = orm.new_session_factory("sqlite:///:memory:")()
    orm_user = orm.User(name=username)
    db.add(orm_user)
    db.commit()
    settings = {"db": db, "spawner_class": KubeSpawner, "config": spawner_config(values),
                "hub": Hub(ip="hub", port=8081, base_url="/hub/"), "domain": "", "users": {}}
    user = User(orm_user, settings)
    return user.spawner


def pod_for(values: dict, profile: str | None):
    async def build():
        spawner = make_spawner(values)
        spawner.user_options = {"profile": profile} if profile else {}
        spawner.api_token = "not-a-real-token"
        await spawner.load_user_options()
        pod = await spawner.get_pod_manifest()
        # the JSON KubeSpawner would send to the Kubernetes API
        return spawner, ApiClient().sanitize_for_serialization(pod)

    # in a thread of its own: a Playwright session of another test may run a loop in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, build()).result()


def test_the_default_profile_is_a_cpu_server_with_the_store_read_only(values):
    spawner, pod = pod_for(values, None)
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "registry.example.org/deepepil/singleuser:0.1.0"
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[STORE]["readOnly"] is True
    assert not mounts["/srv/deepepil/team"].get("readOnly") and "/home/jovyan" in mounts
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["recordings"]["persistentVolumeClaim"] == {"claimName": "deepepil-recordings", "readOnly": True}
    assert volumes["volume-ana"]["persistentVolumeClaim"]["claimName"] == "claim-ana"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DEEPEPIL_STORE"] == STORE and env["PGSSLMODE"] == "require"
    assert env["JUPYTERHUB_USER"] == "ana" and "DEEPEPIL_DB_OWNER_URL" not in env
    assert "/lab/tree/labeling.ipynb" in env["JUPYTERHUB_DEFAULT_URL"]
    assert container["lifecycle"]["postStart"]["exec"]["command"][:3] == ["python", "-m", "hub.provision"]


@pytest.mark.parametrize("profile, gpus", [("gpu-1", "1"), ("gpu-4", "4")])
def test_gpu_profiles_ask_kubernetes_for_gpus_on_gpu_nodes(values, profile, gpus):
    spawner, pod = pod_for(values, profile)
    (container,) = pod["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert pod["spec"]["nodeSelector"] == {"deepepil.org/gpu": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["spec"]["tolerations"])
    # the store stays read-only in every profile
    assert {m["mountPath"]: m.get("readOnly") for m in container["volumeMounts"]}[STORE] is True


def test_an_unknown_profile_is_refused(values):
    with pytest.raises(ValueError, match="profile"):
        pod_for(values, "gpu-99")


def test_the_hub_gets_the_owner_url_from_a_secret_and_our_hooks(values, tmp_path, monkeypatch):
    env = values["hub"]["extraEnv"]
    assert env["DEEPEPIL_DB_OWNER_URL"] == {"valueFrom": {"secretKeyRef": {"name": "deepepil-db-owner", "key": "url"}}}
    assert not [v for v in _strings(values) if "://" in v and "@" in v], "no credentials in the values file"
    # run the chart's extraConfig as the hub would, with the secret resolved
    for name, value in env.items():
        monkeypatch.setenv(name, value if isinstance(value, str) else "postgresql+psycopg2://owner:pw@db:5432/labels")
    monkeypatch.setenv("DEEPEPIL_HUB_STATE_DIR", str(tmp_path))
    c = Config()
    c.JupyterHub.load_roles = [{"name": "chart-role", "scopes": ["read:users"], "services": []}]
    exec(values["hub"]["extraConfig"]["deepepil"], {"c": c})
    from hub.auth import DeepEpilNativeAuthenticator

    assert c.JupyterHub.authenticator_class is DeepEpilNativeAuthenticator
    assert c.Spawner.pre_spawn_hook.__self__.settings.owner_url.startswith("postgresql")
    assert c.Spawner.pre_spawn_hook.__self__.settings.store == Path(STORE)
    names = [r["name"] for r in c.JupyterHub.load_roles]
    assert names[0] == "chart-role" and "deepepil-admin" in names


def _strings(tree):
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from _strings(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _strings(v)


def test_the_culler_stops_idle_servers_and_keeps_users(values):
    cull = values["cull"]
    assert cull["enabled"] is True and cull["users"] is False
    assert 0 < cull["every"] < cull["timeout"] <= 8 * 3600
