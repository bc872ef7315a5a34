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

from hub.auth import authenticator_class, hub_roles
from hub.hooks import DeepEpilHooks
from hub.settings import HubSettings

__all__ = ["configure", "configure_kubernetes", "culler_role", "USERNAME_PATTERN"]

#: Hub user names: they become home folder and database role names.
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


def culler_role() -> dict:
    """The idle culler service's role: see activity, stop idle servers, nothing else."""
    return {"name": "idle-culler", "description": "Stop idle servers",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"]}


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

    if s.cull_idle_seconds > 0:
        c.JupyterHub.services = [{
            "name": "idle-culler",
            "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={s.cull_idle_seconds}",
                        f"--cull-every={s.cull_every_seconds}"],
        }]
        c.JupyterHub.load_roles = [*c.JupyterHub.load_roles, culler_role()]
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
