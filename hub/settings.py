"""The hub's deployment settings, read from environment variables.

Every value ``jupyterhub_config.py`` needs comes from here, so one place says what can be
set, what it defaults to, and what is wrong with a bad value. ``docs/hub.md`` lists them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["HubSettings", "AUTHENTICATORS", "REPO_ROOT", "USERNAME_PATTERN", "HubConfigError", "hub_db_url_from_env"]

#: Hub user names: they become home folder and database role names.
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"

#: Authenticators chosen with ``DEEPEPIL_AUTHENTICATOR`` (a ``module:Class`` or dotted path also works).
AUTHENTICATORS: dict[str, str] = {
    "native": "hub.auth.DeepEpilNativeAuthenticator",
    "ldap": "ldapauthenticator.LDAPAuthenticator",
    "github": "oauthenticator.github.GitHubOAuthenticator",
    "generic-oauth": "oauthenticator.generic.GenericOAuthenticator",
}

#: The source checkout this package sits in (prepared notebooks, the proxy installed by ``./dev``).
REPO_ROOT = Path(__file__).resolve().parent.parent


class HubConfigError(ValueError):
    """A deployment setting is missing or invalid; the message names the variable and what is allowed."""


def hub_db_url_from_env(env: Mapping[str, str] | None = None) -> str:
    """The hub's own database: ``DEEPEPIL_HUB_DB_URL``, else ``jupyterhub.sqlite`` in the state folder."""
    env = os.environ if env is None else env
    state_dir = _path(env, "DEEPEPIL_HUB_STATE_DIR", Path.cwd())
    return env.get("DEEPEPIL_HUB_DB_URL", "").strip() or f"sqlite:///{state_dir / 'jupyterhub.sqlite'}"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HubConfigError(f"{name}={raw!r} is not an integer; give a whole number >= {minimum}") from None
    if value < minimum:
        raise HubConfigError(f"{name}={value} is too small; give a whole number >= {minimum}")
    return value


def _path(env: Mapping[str, str], name: str, default: Path | None) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser().resolve() if raw else default


def _default_proxy_command() -> str:
    local = REPO_ROOT / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(local) if local.exists() else "configurable-http-proxy"


def _default_notebooks() -> Path | None:
    local = REPO_ROOT / "notebooks"
    return local if local.is_dir() else None


def _same_database(a: str, b: str) -> bool:
    from sqlalchemy.engine import make_url

    try:
        ua, ub = make_url(a), make_url(b)
    except Exception:
        return a == b
    return (ua.get_backend_name(), ua.host, ua.port or 5432, ua.database) == \
        (ub.get_backend_name(), ub.host, ub.port or 5432, ub.database)


def _mlflow_settings(env: Mapping[str, str], state_dir: Path, label_urls: tuple[str | None, ...]) -> dict:
    raw = env.get("DEEPEPIL_MLFLOW", "").strip().lower()
    installed = importlib.util.find_spec("mlflow") is not None
    if raw not in ("", "on", "off"):
        raise HubConfigError(f"DEEPEPIL_MLFLOW={raw!r}: use on or off (default: on when mlflow is installed)")
    if raw == "on" and not installed:
        raise HubConfigError("DEEPEPIL_MLFLOW=on but mlflow is not installed in the hub's environment; "
                             "install it (pip install mlflow) or set DEEPEPIL_MLFLOW=off")
    db_url = env.get("DEEPEPIL_MLFLOW_DB_URL", "").strip() or f"sqlite:///{state_dir / 'mlflow.db'}"
    if not db_url.startswith(("sqlite:///", "postgresql", "postgres:")):
        raise HubConfigError(f"DEEPEPIL_MLFLOW_DB_URL must be sqlite:///PATH or a PostgreSQL URL "
                             f"(postgresql+psycopg2://mlflow:PASSWORD@HOST/mlflow), got {db_url.split(':')[0]}:...")
    for label_url in label_urls:
        if label_url and _same_database(db_url, label_url):
            raise HubConfigError("DEEPEPIL_MLFLOW_DB_URL names the label database: MLflow migrates its own "
                                 "tables and needs a database of its own (e.g. createdb -O mlflow mlflow)")
    return {
        "mlflow": raw == "on" or (raw == "" and installed),
        "mlflow_db_url": db_url,
        "mlflow_artifacts": _path(env, "DEEPEPIL_MLFLOW_ARTIFACTS", state_dir / "mlflow-artifacts"),
        "mlflow_port": _int(env, "DEEPEPIL_MLFLOW_PORT", 0),
    }


def _gpus(raw: str) -> tuple[str, ...]:
    devices = tuple(d.strip() for d in raw.split(",") if d.strip())
    for d in devices:
        if not (d.isdigit() or d.startswith(("GPU-", "MIG-"))):
            raise HubConfigError(
                f"DEEPEPIL_GPUS={raw!r}: {d!r} is not a GPU; give a comma-separated list of device indices "
                f"or UUIDs (e.g. 0,1,2,3 or GPU-5a1b...), or leave it unset for no GPU assignment"
            )
    if len(set(devices)) != len(devices):
        raise HubConfigError(f"DEEPEPIL_GPUS={raw!r} names a GPU twice")
    return devices


@dataclasses.dataclass(frozen=True)
class HubSettings:
    """What the deployment sets through the environment (see :meth:`from_env`)."""

    authenticator: str = "native"
    ip: str = "127.0.0.1"
    port: int = 8000
    hub_api_port: int = 8081
    proxy_api_port: int = 8001
    state_dir: Path = dataclasses.field(default_factory=Path.cwd)
    hub_db_url: str = ""
    owner_url: str | None = None
    label_db_url: str | None = None
    store: Path = Path("/srv/deepepil/store")
    homes: Path = Path("/srv/deepepil/home")
    team_dir: Path = Path("/srv/deepepil/team")
    notebooks: Path | None = None
    gpus: tuple[str, ...] = ()
    cull_idle_seconds: int = 3600
    cull_every_seconds: int = 300
    spawn_timeout_seconds: int = 120
    ssl_cert: Path | None = None
    ssl_key: Path | None = None
    proxy_command: str = "configurable-http-proxy"
    default_url: str = "/lab/tree/labeling.ipynb"
    hub_admins: tuple[str, ...] = ()
    extra_config: Path | None = None
    mlflow: bool = False
    mlflow_db_url: str = ""
    mlflow_artifacts: Path | None = None
    mlflow_port: int = 0

    @property
    def postgres(self) -> bool:
        """True when the label database is PostgreSQL (per-user roles, row-level security)."""
        return self.owner_url is not None

    @property
    def lookup_url(self) -> str:
        """The label database URL the hub itself uses (the owner's on PostgreSQL)."""
        return self.owner_url or self.label_db_url or ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HubSettings:
        """Read the settings from ``env`` (default ``os.environ``).

        Raises
        ------
        HubConfigError
            A value is invalid, or a combination is unsafe (e.g. a PostgreSQL label database
            without the owner URL, whose credentials would then be handed to every user).
        """
        env = os.environ if env is None else env
        authenticator = env.get("DEEPEPIL_AUTHENTICATOR", "native").strip() or "native"
        if authenticator not in AUTHENTICATORS and "." not in authenticator and ":" not in authenticator:
            raise HubConfigError(
                f"DEEPEPIL_AUTHENTICATOR={authenticator!r} is not known; use one of "
                f"{', '.join(AUTHENTICATORS)} or a class path (package.module.Class)"
            )
        state_dir = _path(env, "DEEPEPIL_HUB_STATE_DIR", Path.cwd())
        owner_url = env.get("DEEPEPIL_DB_OWNER_URL", "").strip() or None
        label_url = env.get("DEEPEPIL_DATABASE_URL", "").strip() or None
        if owner_url is not None and not owner_url.startswith(("postgresql", "postgres:")):
            raise HubConfigError(
                "DEEPEPIL_DB_OWNER_URL must be a PostgreSQL URL (postgresql+psycopg2://OWNER:PASSWORD@HOST/DB); "
                "for an SQLite label database set DEEPEPIL_DATABASE_URL=sqlite:///PATH instead"
            )
        if owner_url is None:
            if label_url is not None and not label_url.startswith("sqlite"):
                raise HubConfigError(
                    "DEEPEPIL_DATABASE_URL names a PostgreSQL database but DEEPEPIL_DB_OWNER_URL is not set: the "
                    "hub gives each user their own database role, so it needs the owner URL "
                    "(DEEPEPIL_DB_OWNER_URL) and hands no shared URL to users. Set it, or use sqlite:///PATH"
                )
            if label_url is None:
                label_url = f"sqlite:///{state_dir / 'labels.sqlite'}"
        else:
            label_url = None
        cert = _path(env, "DEEPEPIL_SSL_CERT", None)
        key = _path(env, "DEEPEPIL_SSL_KEY", None)
        if (cert is None) != (key is None):
            raise HubConfigError("set both DEEPEPIL_SSL_CERT and DEEPEPIL_SSL_KEY (PEM files), or neither")
        for name, path in (("DEEPEPIL_SSL_CERT", cert), ("DEEPEPIL_SSL_KEY", key)):
            if path is not None and not path.is_file():
                raise HubConfigError(f"{name}={path}: no such file (a PEM certificate / private key)")
        notebooks = _path(env, "DEEPEPIL_NOTEBOOKS", None) or _default_notebooks()
        if notebooks is not None and not notebooks.is_dir():
            raise HubConfigError(f"DEEPEPIL_NOTEBOOKS={notebooks}: no such folder (the prepared notebooks)")
        extra = env.get("DEEPEPIL_HUB_EXTRA_CONFIG", "").strip()
        if extra and not Path(extra).is_file():
            raise HubConfigError(f"DEEPEPIL_HUB_EXTRA_CONFIG={extra}: no such file (a Python config file)")
        default_url = env.get("DEEPEPIL_DEFAULT_URL", "").strip() or cls.default_url
        if not default_url.startswith("/"):
            raise HubConfigError(f"DEEPEPIL_DEFAULT_URL={default_url!r} must start with / (e.g. /lab)")
        return cls(
            authenticator=authenticator,
            ip=env.get("DEEPEPIL_HUB_IP", "").strip() or cls.ip,
            port=_int(env, "DEEPEPIL_HUB_PORT", cls.port, 1),
            hub_api_port=_int(env, "DEEPEPIL_HUB_API_PORT", cls.hub_api_port, 1),
            proxy_api_port=_int(env, "DEEPEPIL_PROXY_API_PORT", cls.proxy_api_port, 1),
            state_dir=state_dir,
            hub_db_url=hub_db_url_from_env(env),
            owner_url=owner_url,
            label_db_url=label_url,
            store=_path(env, "DEEPEPIL_STORE", cls.store),
            homes=_path(env, "DEEPEPIL_HOMES", cls.homes),
            team_dir=_path(env, "DEEPEPIL_TEAM_DIR", cls.team_dir),
            notebooks=notebooks,
            gpus=_gpus(env.get("DEEPEPIL_GPUS", "")),
            cull_idle_seconds=_int(env, "DEEPEPIL_CULL_IDLE_SECONDS", cls.cull_idle_seconds),
            cull_every_seconds=_int(env, "DEEPEPIL_CULL_EVERY_SECONDS", cls.cull_every_seconds, 1),
            spawn_timeout_seconds=_int(env, "DEEPEPIL_SPAWN_TIMEOUT_SECONDS", cls.spawn_timeout_seconds, 10),
            ssl_cert=cert,
            ssl_key=key,
            proxy_command=env.get("DEEPEPIL_PROXY_COMMAND", "").strip() or _default_proxy_command(),
            default_url=default_url,
            hub_admins=tuple(u.strip() for u in env.get("DEEPEPIL_HUB_ADMINS", "").split(",") if u.strip()),
            extra_config=Path(extra) if extra else None,
            **_mlflow_settings(env, state_dir, (owner_url, label_url)),
        )
