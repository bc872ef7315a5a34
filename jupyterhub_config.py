"""JupyterHub deployment config for DeepEpil: values from the environment, classes from hub/.

    jupyterhub -f jupyterhub_config.py

Every setting is an environment variable (DEEPEPIL_HUB_PORT, DEEPEPIL_DB_OWNER_URL,
DEEPEPIL_AUTHENTICATOR, ...): see docs/hub.md, or hub/settings.py. Settings of a chosen
authenticator (LDAP server, OAuth client) go into the file named by DEEPEPIL_HUB_EXTRA_CONFIG.
`deepepil demo` runs this file with a demo environment.
"""

from hub.config import configure
from hub.settings import HubSettings

c = get_config()  # noqa: F821 -- provided by JupyterHub when it loads this file

settings = HubSettings.from_env()
configure(c, settings)
if settings.extra_config is not None:
    load_subconfig(str(settings.extra_config))  # noqa: F821 -- provided by JupyterHub (traitlets)
