"""JupyterHub deployment config for DeepEpil (thin: values from the environment, classes from hub/).

The hub itself is built by a later issue; until then ``./dev demo`` runs a single JupyterLab.
"""

import os

c = get_config()  # noqa: F821 -- provided by JupyterHub when it loads this file

c.JupyterHub.ip = os.environ.get("DEEPEPIL_HUB_IP", "127.0.0.1")
c.JupyterHub.port = int(os.environ.get("DEEPEPIL_HUB_PORT", "8000"))
c.Spawner.default_url = "/lab/tree/notebooks/explore.ipynb"
c.Spawner.environment = {"DEEPEPIL_STORE": os.environ.get("DEEPEPIL_STORE", "/srv/deepepil/store")}
