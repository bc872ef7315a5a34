"""DeepEpil on JupyterHub: authenticator, roles, spawn hooks and services used by ``jupyterhub_config.py``."""
