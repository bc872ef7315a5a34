"""The hub's hooks: groups at login, database credentials and a GPU at spawn, cleanup at stop.

* ``post_auth`` (``Authenticator.post_auth_hook``): the user's JupyterHub group follows their
  role in the label database (``clinicians``, ``data-scientists``, ``admins``; none when not
  registered or deactivated), whatever authenticator proved who they are.
* ``pre_spawn`` (``Spawner.pre_spawn_hook``): refuses users the label database does not know
  or has deactivated, with a message that says what to do; otherwise puts the user's own
  database URL (a fresh password for their PostgreSQL role), the recording store and a GPU
  into the environment of that one server -- never into the hub's environment or a file.
* ``post_stop`` (``Spawner.post_stop_hook``): revokes the password and frees the GPU.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from tornado import web

from hub.gpus import GpuAssigner
from hub.labeldb import LabelUser, lookup_user, revoke_user_credentials, user_database_url
from hub.settings import HubSettings

__all__ = ["SpawnRefused", "DeepEpilHooks"]

log = logging.getLogger("deepepil.hub")
T = TypeVar("T")


class SpawnRefused(web.HTTPError):
    """A spawn the hub will not do; ``jupyterhub_message`` is what the user reads."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(status_code, "%s", message)
        self.jupyterhub_message = message


def _server_key(spawner: Any) -> str:
    return f"{spawner.user.name}/{spawner.name}"


async def _database_call(refusal: str, func: Callable[..., T], username: str, *args: Any, **kwargs: Any) -> T:
    """``func(username, ...)`` in a thread; its error is logged and becomes a 503 that says ``refusal``
    (``{error}`` in it is replaced by the error's type)."""
    try:
        return await asyncio.to_thread(func, username, *args, **kwargs)
    except Exception as exc:
        log.exception("%s of %s failed", func.__name__, username)
        raise SpawnRefused(503, refusal.format(error=type(exc).__name__)) from exc


class DeepEpilHooks:
    """The hooks of one hub, sharing its settings and GPU assignment.

    Parameters
    ----------
    settings : HubSettings
        The deployment settings.
    gpus : GpuAssigner, optional
        Default: one over ``settings.gpus``.
    """

    def __init__(self, settings: HubSettings, gpus: GpuAssigner | None = None) -> None:
        self.settings = settings
        self.gpus = gpus if gpus is not None else GpuAssigner(settings.gpus)

    def __deepcopy__(self, memo: dict) -> DeepEpilHooks:
        # traitlets deep-copies config values into every spawner; the hooks (and the GPU
        # assignment they hold) must stay one object shared by all of them
        return self

    async def _lookup(self, username: str) -> LabelUser | None:
        return await _database_call(
            "The label database cannot be reached ({error}); please try again later or tell an administrator.",
            lookup_user, username, self.settings.lookup_url,
        )

    async def post_auth(self, authenticator: Any, handler: Any, auth_model: dict) -> dict:
        """Set ``auth_model["groups"]`` from the user's role in the label database."""
        user = await self._lookup(auth_model["name"])
        auth_model["groups"] = [user.group] if user is not None and user.active else []
        return auth_model

    async def pre_spawn(self, spawner: Any) -> None:
        """Check the user, then give this server its database URL, store, team folder and GPU."""
        name = spawner.user.name
        user = await self._lookup(name)
        if user is None:
            raise SpawnRefused(
                403, f"{name} is not registered in the DeepEpil label database, so no server can start. "
                     f"Ask an administrator to run: deepepil admin add-user {name} --role clinician "
                     f"--clinic CLINIC (or --role data_scientist / admin)."
            )
        if not user.active:
            raise SpawnRefused(403, f"{name} is deactivated in the DeepEpil label database; ask an administrator.")
        if getattr(spawner.authenticator, "manage_groups", False) and hasattr(spawner.user, "sync_groups"):
            spawner.user.sync_groups([user.group])  # a role changed since login takes effect now
        url = await _database_call(
            f"Database credentials for {name} could not be issued ({{error}}); tell an administrator.",
            user_database_url, name, owner_url=self.settings.owner_url, sqlite_url=self.settings.label_db_url,
        )
        env = dict(spawner.environment)
        env.update({
            "DEEPEPIL_DATABASE_URL": url,
            "DEEPEPIL_STORE": str(self.settings.store),
            "DEEPEPIL_ROLE": user.role,
            "DEEPEPIL_TEAM_DIR": str(self.settings.team_dir),
        })
        gpu = self.gpus.assign(_server_key(spawner))
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        spawner.environment = env
        log.info("spawning %s (%s%s)%s", name, user.role, f", {user.clinic}" if user.clinic else "",
                 f" on GPU {gpu}" if gpu is not None else "")

    async def post_stop(self, spawner: Any) -> None:
        """Free the server's GPU and revoke the user's database password."""
        self.gpus.release(_server_key(spawner))
        env = dict(spawner.environment)
        env.pop("DEEPEPIL_DATABASE_URL", None)  # the spent password does not stay in the hub's memory
        spawner.environment = env
        if self.settings.owner_url is None:
            return
        try:
            await asyncio.to_thread(revoke_user_credentials, spawner.user.name, owner_url=self.settings.owner_url)
        except Exception:
            log.exception("revoking the database credentials of %s failed", spawner.user.name)
