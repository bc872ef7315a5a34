"""Apply the DeepEpil hub configuration to a JupyterHub config object.

``jupyterhub_config.py`` calls :func:`configure` (single host: local spawner, proxy, culler,
TLS, ports) and Zero to JupyterHub's ``hub.extraConfig`` calls :func:`configure_kubernetes`
(the chart itself configures KubeSpawner, the proxy and the culler; we add the authenticator,
the groups and roles and the spawn hooks). All values come from :class:`hub.settings.HubSettings`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hub.auth import authenticator_class, hub_roles, mlflow_role
from hub.hooks import DeepEpilHooks
from hub.settings import REPO_ROOT, USERNAME_PATTERN, HubSettings

__all__ = ["configure", "configure_kubernetes", "culler_role", "mlflow_service"]


def culler_role() -> dict:
    """The idle culler service's role: see activity, stop idle servers, nothing else."""
    return {"name": "idle-culler", "description": "Stop idle servers",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"]}


#: JupyterHub's default scopes of a server's own API token (its ``server`` role).
_SERVER_TOKEN_SCOPES = ("users:activity!user", "access:servers!server")


def _server_api_token(spawner: Any) -> str:
    """``Spawner.environment`` value: the server's own API token (MLflow sends it as a bearer token)."""
    return spawner.api_token


class _TrackingUri:
    """``Spawner.environment`` value: the MLflow service for members of its groups, else empty (local store)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, spawner: Any) -> str:
        groups = {g.name for g in getattr(spawner.user, "groups", [])}
        return self.url if groups & set(mlflow_role()["groups"]) else ""


def mlflow_service(s: HubSettings) -> dict:
    """The MLflow service (:mod:`hub.mlflow_service`): hub login in front, MLflow on 127.0.0.1 behind.

    Its port is ``DEEPEPIL_MLFLOW_PORT``, else one free when the hub starts. The backend URL
    reaches this service's process only, never a user's server.
    """
    from deepepil.processes import free_port

    port = s.mlflow_port or free_port()
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "name": "mlflow",
        "display": True,
        "url": f"http://127.0.0.1:{port}",
        "command": [sys.executable, "-m", "hub.mlflow_service"],
        "cwd": str(s.state_dir),
        "environment": {
            "DEEPEPIL_MLFLOW_DB_URL": s.mlflow_db_url,
            "DEEPEPIL_MLFLOW_ARTIFACTS": str(s.mlflow_artifacts or s.state_dir / "mlflow-artifacts"),
            "PYTHONPATH": pythonpath,
            "MLFLOW_DISABLE_TELEMETRY": "true",
        },
        "oauth_no_confirm": True,  # the hub's own service: no "authorize this application?" page
    }


def _auth_and_hooks(c: Any, s: HubSettings) -> DeepEpilHooks:
    hooks = DeepEpilHooks(s)
    cls = authenticator_class(s.authenticator)
    c.JupyterHub.authenticator_class = cls
    c.Authenticator.username_pattern = USERNAME_PATTERN
    c.Authenticator.manage_groups = True  # groups follow the label database's roles (hooks.post_auth)
    c.Authenticator.post_auth_hook = hooks.post_auth
    if s.hub_admins:
        c.Authenticator.admin_users = set(s.hub_admins)
    if s.authenticator == "native":
        # approval is the gate: NativeAuthenticator logs in approved accounts only
        c.Authenticator.allow_all = True
        c.NativeAuthenticator.enable_signup = True
        c.NativeAuthenticator.open_signup = False
        c.NativeAuthenticator.minimum_password_length = 10
        c.NativeAuthenticator.check_common_password = True
        c.NativeAuthenticator.allowed_failed_logins = 5
        c.NativeAuthenticator.seconds_before_next_try = 300
    c.JupyterHub.load_roles = hub_roles()
    c.Spawner.pre_spawn_hook = hooks.pre_spawn
    c.Spawner.post_stop_hook = hooks.post_stop
    c.Spawner.default_url = s.default_url
    return hooks


def _singleuser_command() -> list[str]:
    script = Path(sys.executable).parent / "jupyterhub-singleuser"
    return [str(script)] if script.exists() else [sys.executable, "-m", "jupyterhub.singleuser"]


def _stop_when_parent_dies(parent_pid: int, interval_seconds: float = 1.0) -> None:
    """Send this process one SIGTERM (JupyterHub's clean shutdown) once ``parent_pid`` is no longer its parent."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="deepepil-parent-watch", daemon=True).start()


def configure(c: Any, settings: HubSettings | None = None) -> DeepEpilHooks:
    """Configure a single-host hub: native accounts, local servers, proxy, culler, TLS.

    With ``DEEPEPIL_HUB_PARENT_PID`` set (by :class:`hub.launcher.HubProcess`), the hub shuts
    down cleanly when that process dies. Returns the hooks object (it holds the GPU assignment).
    """
    s = settings if settings is not None else HubSettings.from_env()
    parent = os.environ.get("DEEPEPIL_HUB_PARENT_PID", "")
    if parent.isdigit() and int(parent) == os.getppid():
        _stop_when_parent_dies(int(parent))
    hooks = _auth_and_hooks(c, s)
    s.state_dir.mkdir(parents=True, exist_ok=True)

    c.JupyterHub.ip = s.ip
    c.JupyterHub.port = s.port
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = s.hub_api_port
    c.JupyterHub.db_url = s.hub_db_url
    c.JupyterHub.cookie_secret_file = str(s.state_dir / "jupyterhub_cookie_secret")
    c.ConfigurableHTTPProxy.command = [s.proxy_command]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s.proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = str(s.state_dir / "jupyterhub-proxy.pid")
    if s.ssl_cert is not None:
        c.JupyterHub.ssl_cert = str(s.ssl_cert)
        c.JupyterHub.ssl_key = str(s.ssl_key)

    from hub.spawner import DeepEpilLocalSpawner

    c.JupyterHub.spawner_class = DeepEpilLocalSpawner
    c.DeepEpilLocalSpawner.homes_root = str(s.homes)
    c.DeepEpilLocalSpawner.notebook_templates = str(s.notebooks) if s.notebooks else ""
    c.DeepEpilLocalSpawner.team_dir = str(s.team_dir)
    c.Spawner.cmd = _singleuser_command()
    c.Spawner.args = [
        # clinic networks are closed: no news feed, no update checks, nothing fetched
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    c.Spawner.start_timeout = s.spawn_timeout_seconds
    c.Spawner.http_timeout = s.spawn_timeout_seconds
    c.Spawner.environment = {"DEEPEPIL_STORE": str(s.store)}

    services = []
    if s.cull_idle_seconds > 0:
        services.append({
            "name": "idle-culler",
            "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={s.cull_idle_seconds}",
                        f"--cull-every={s.cull_every_seconds}"],
        })
        c.JupyterHub.load_roles = [*c.JupyterHub.load_roles, culler_role()]
    if s.mlflow:
        service = mlflow_service(s)
        services.append(service)
        c.JupyterHub.load_roles = [*c.JupyterHub.load_roles, mlflow_role()]
        # kernels track through the service with their server's own token: a data scientist's or an
        # admin's server token carries the access scope, a clinician's does not (the hub drops scopes
        # a user lacks), so the service refuses it; no database credentials reach any server
        c.Spawner.server_token_scopes = [*_SERVER_TOKEN_SCOPES, f"access:services!service={service['name']}"]
        c.Spawner.environment = {
            **c.Spawner.environment,
            "MLFLOW_TRACKING_URI": _TrackingUri(f"{service['url']}/services/{service['name']}"),
            "MLFLOW_TRACKING_TOKEN": _server_api_token,
        }
    if services:
        c.JupyterHub.services = services
    return hooks


def configure_kubernetes(c: Any, settings: HubSettings | None = None) -> DeepEpilHooks:
    """Add the DeepEpil authenticator, roles and spawn hooks to a Zero to JupyterHub hub.

    Keeps the chart's spawner, proxy and culler; the culler role is the chart's too.
    Existing ``load_roles`` from the chart's values are kept.
    """
    s = settings if settings is not None else HubSettings.from_env()
    existing = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    hooks = _auth_and_hooks(c, s)
    c.JupyterHub.load_roles = existing + c.JupyterHub.load_roles
    return hooks
