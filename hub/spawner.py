"""The local spawner of the single-host hub (demo, tests, a small server).

Every user's server runs as the hub's own OS user, with a home folder of its own under
``DEEPEPIL_HOMES``. That is no isolation between users on the machine (one user's kernel
could read another's files or process environment): it suits the demo and a single trusted
host; for real multi-user deployments use per-user OS accounts (JupyterHub's
``LocalProcessSpawner`` or ``SystemdSpawner``) or containers (KubeSpawner, ``hub/k8s``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode, default

from hub.hooks import SpawnRefused
from hub.provision import provision_home

__all__ = ["DeepEpilLocalSpawner"]


class DeepEpilLocalSpawner(SimpleLocalProcessSpawner):
    """A local server per user, in ``<homes>/<username>`` with the prepared notebooks provisioned."""

    homes_root = Unicode("/srv/deepepil/home", config=True, help="Folder holding one home folder per user.")
    notebook_templates = Unicode(
        "", config=True, help="Folder of prepared notebooks copied into each home ('' for none)."
    )
    team_dir = Unicode("", config=True, help="Shared team notebooks folder, linked as ~/team ('' for none).")

    @default("home_dir_template")
    def _default_home_template(self) -> str:
        return os.path.join(self.homes_root, "{username}")

    def _checked_home(self) -> Path:
        root = Path(self.homes_root).resolve()
        home = Path(self.home_dir).resolve()
        if home.parent != root:
            raise SpawnRefused(400, f"user name {self.user.name!r} does not make a home folder under {root}")
        return home

    def get_args(self) -> list[str]:
        args = super().get_args()
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--allow-root")  # else jupyter-server exits and the spawn only times out
        return args

    async def start(self):
        """Provision the home (never overwriting edits), then start the server."""
        home = self._checked_home()
        templates = Path(self.notebook_templates) if self.notebook_templates else None
        team = Path(self.team_dir) if self.team_dir else None
        report = await asyncio.to_thread(provision_home, home, templates, team)
        self.log.info("provisioned %s: %s", home, report)
        return await super().start()
