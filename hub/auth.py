"""Authenticators and the JupyterHub roles of the DeepEpil groups.

The default authenticator is NativeAuthenticator: people sign up at ``/hub/signup`` and
cannot log in until an administrator approves them (``deepepil admin approve USER`` or the
``/hub/authorize`` page). LDAP and OAuth (GitHub, generic OIDC) are selected with
``DEEPEPIL_AUTHENTICATOR``; their settings go into ``DEEPEPIL_HUB_EXTRA_CONFIG`` (docs/hub.md).
"""

from __future__ import annotations

import importlib

from nativeauthenticator import NativeAuthenticator
from nativeauthenticator import handlers as native_handlers
from nativeauthenticator.orm import UserInfo
from tornado.escape import url_escape
from tornado.httputil import url_concat

from hub.labeldb import GROUP_OF_ROLE
from hub.settings import AUTHENTICATORS, HubConfigError

__all__ = ["DeepEpilNativeAuthenticator", "authenticator_class", "hub_roles", "mlflow_role"]


class _NoTimer:
    """Stands in for the statsd client JupyterHub 6 no longer has (NativeAuthenticator 1.3 times logins)."""

    def timer(self, name: str) -> _NoTimer:
        return self

    def start(self) -> _NoTimer:
        return self

    def stop(self, send: bool = True) -> None:
        return None


class _LoginHandler(native_handlers.LoginHandler):
    """NativeAuthenticator's login page, fitted to JupyterHub 6.

    JupyterHub 6 dropped statsd, and renders a failed form POST through ``_render`` with
    its own keywords (``sync``, ``message``, ...): the native handler took neither.
    """

    statsd = _NoTimer()

    def _render(self, login_error=None, username=None, sync=False, **_ignored):
        return self.render_template(
            "native-login.html",
            sync=sync,
            next=url_escape(self.get_argument("next", default="")),
            username=username,
            login_error=login_error,
            custom_html=self.authenticator.custom_html,
            login_url=self.settings["login_url"],
            enable_signup=self.authenticator.enable_signup,
            two_factor_auth=self.authenticator.allow_2fa,
            authenticator_login_url=url_concat(
                self.authenticator.login_url(self.hub.base_url), {"next": self.get_argument("next", "")}
            ),
        )


class DeepEpilNativeAuthenticator(NativeAuthenticator):
    """NativeAuthenticator that sees account changes made outside the hub process at once.

    JupyterHub keeps ORM objects across commits, so an approval written by
    ``deepepil admin approve`` (another process) would otherwise stay invisible to a hub
    that had loaded the account before (at signup, or a refused login) until it restarts.
    The login page is fitted to JupyterHub 6 (:class:`_LoginHandler`).
    """

    def get_handlers(self, app):
        return [(path, _LoginHandler if handler is native_handlers.LoginHandler else handler)
                for path, handler in super().get_handlers(app)]

    def get_user(self, username: str) -> UserInfo | None:
        return (
            self.db.query(UserInfo)
            .filter(UserInfo.username == self.normalize_username(username))
            .populate_existing()
            .first()
        )


def authenticator_class(name: str) -> type:
    """The authenticator class for ``DEEPEPIL_AUTHENTICATOR`` (a short name or a class path)."""
    path = AUTHENTICATORS.get(name, name)
    module_name, _, class_name = path.replace(":", ".").rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = {"ldap": "jupyterhub-ldapauthenticator", "github": "oauthenticator",
                   "generic-oauth": "oauthenticator"}.get(name, module_name.split(".")[0])
        raise HubConfigError(
            f"DEEPEPIL_AUTHENTICATOR={name}: cannot import {module_name} ({exc}); install {package} "
            f"into the hub's environment"
        ) from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise HubConfigError(f"DEEPEPIL_AUTHENTICATOR={name}: {module_name} has no class {class_name}") from None


def hub_roles() -> list[dict]:
    """``JupyterHub.load_roles``: what each group may do in the hub.

    Clinicians and data scientists use only their own server (the ``self`` scope); their
    data access is decided by their database role, not here. Admins manage users and
    servers (approve accounts, start and stop servers) but cannot enter anyone's server:
    there is no ``access:servers`` scope in their role.
    """
    return [
        {"name": "deepepil-clinician", "description": "Clinicians: their own server only",
         "scopes": ["self"], "groups": [GROUP_OF_ROLE["clinician"]]},
        {"name": "deepepil-data-scientist", "description": "Data scientists: their own server only",
         "scopes": ["self"], "groups": [GROUP_OF_ROLE["data_scientist"]]},
        {"name": "deepepil-admin",
         "description": "Administrators: manage users, groups and servers; no access to other users' servers",
         "scopes": ["self", "admin-ui", "admin:users", "admin:servers", "admin:groups", "list:users",
                    "read:users", "read:hub", "list:services", "read:services", "read:roles"],
         "groups": [GROUP_OF_ROLE["admin"]]},
    ]


def mlflow_role(service: str = "mlflow") -> dict:
    """The role that opens the MLflow service (UI and API): data scientists and admins, not clinicians."""
    return {"name": "deepepil-mlflow", "description": "Use the MLflow tracking server (experiments, models)",
            "scopes": [f"access:services!service={service}"],
            "groups": [GROUP_OF_ROLE["data_scientist"], GROUP_OF_ROLE["admin"]]}
