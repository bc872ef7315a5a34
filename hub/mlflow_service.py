"""MLflow behind the hub: the hub's OAuth in front, an MLflow server on 127.0.0.1 behind.

The hub runs this module as a managed service (``python -m hub.mlflow_service``, see
:func:`hub.config.mlflow_service`). It starts ``mlflow server`` (:func:`deepepil.ml.tracking.mlflow_server_command`)
on a free port of 127.0.0.1 and answers every request under ``/services/mlflow/``:

* the user is identified by the hub (OAuth login cookie in a browser, ``Authorization: token|bearer
  TOKEN`` for a client); nobody identified: a page view is sent to the hub's login, anything else gets 403;
* a user without the ``access:services!service=mlflow`` scope (only data scientists and admins have it,
  :func:`hub.auth.mlflow_role`) gets 403;
* a state-changing request authenticated by the cookie must come from the hub's own pages
  (``Sec-Fetch-Site: same-origin`` or an ``Origin`` equal to the request's host), so another site
  cannot make a logged-in browser change MLflow;
* everything else is forwarded to MLflow without the hub's cookies or the caller's token.

Settings come from the environment the hub gives the service: ``DEEPEPIL_MLFLOW_DB_URL``,
``DEEPEPIL_MLFLOW_ARTIFACTS`` and JupyterHub's ``JUPYTERHUB_*`` variables.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from tornado import httpclient, web
from tornado.httpserver import HTTPServer
from tornado.log import app_log

from deepepil.processes import die_with_parent, free_port

__all__ = ["MlflowUpstream", "MlflowProxyHandler", "make_app", "main", "MAX_BODY_BYTES"]

#: Largest request or response body forwarded (artifact uploads and downloads are held in memory).
MAX_BODY_BYTES = 1024**3
_START_TIMEOUT_SECONDS = 180.0
_HOP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "content-length",
})
# what MLflow must not see: the hub's cookies and the caller's hub token; Host and Origin are MLflow's own
_DROP_REQUEST_HEADERS = _HOP_HEADERS | {"cookie", "authorization", "host", "origin"}


class MlflowUpstream:
    """The MLflow server this service starts and forwards to.

    Parameters
    ----------
    backend_uri : str
        MLflow's tracking store (``sqlite:///...`` or a PostgreSQL database of its own).
    artifact_root : Path
        Folder of the artifacts (the server proxies uploads and downloads).
    prefix : str
        The service's URL prefix without the trailing slash (``/services/mlflow``).
    """

    def __init__(self, backend_uri: str, artifact_root: Path, prefix: str) -> None:
        self.backend_uri = backend_uri
        self.artifact_root = Path(artifact_root)
        self.prefix = prefix
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.ready = asyncio.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start ``mlflow server`` (its output goes to this service's log)."""
        from deepepil.ml.tracking import mlflow_server_command

        self.artifact_root.mkdir(parents=True, exist_ok=True)
        if self.backend_uri.startswith("sqlite:///"):
            Path(self.backend_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
        for name in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "DEEPEPIL_MLFLOW_DB_URL"):
            env.pop(name, None)  # MLflow has its store on the command line; the hub token stays here
        command = mlflow_server_command(self.backend_uri, self.artifact_root, self.port, self.prefix)
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=die_with_parent)
        app_log.info("started MLflow (pid %s) on 127.0.0.1:%s", self.process.pid, self.port)

    async def wait_healthy(self, timeout_seconds: float = _START_TIMEOUT_SECONDS) -> None:
        """Poll ``/health`` until MLflow answers; then :attr:`ready` is set."""
        client = httpclient.AsyncHTTPClient()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while loop.time() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the MLflow server exited with status {self.process.returncode}")
            try:
                r = await client.fetch(f"{self.base_url}{self.prefix}/health", request_timeout=5, raise_error=False)
                if r.code == 200:
                    self.ready.set()
                    app_log.info("MLflow is ready")
                    return
            except OSError:
                pass
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the MLflow server did not answer within {timeout_seconds:g} s")

    def stop(self) -> None:
        """Stop the MLflow server and its workers (its own process group)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class MlflowProxyHandler(HubOAuthenticated, web.RequestHandler):
    """Every request under the prefix: check the user, then forward to MLflow."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

    def initialize(self, upstream: MlflowUpstream) -> None:
        self.upstream = upstream

    async def prepare(self) -> None:
        # identify the user without blocking the event loop (get_current_user then reads the cache)
        model = await self.hub_auth.get_user(self, sync=False)
        try:
            self._hub_auth_user_cache = self.check_hub_user(model) if model else None
        except UserNotAllowed:
            raise web.HTTPError(403, f"{model.get('kind', 'user')} {model.get('name')} may not use MLflow") from None

    def check_xsrf_cookie(self) -> None:
        """Cookie-authenticated changes only from the hub's own pages (MLflow's UI knows no hub XSRF token)."""
        if getattr(self, "_token_authenticated", False) or self.request.method in ("GET", "HEAD", "OPTIONS"):
            return
        site = self.request.headers.get("Sec-Fetch-Site")
        origin = self.request.headers.get("Origin")
        if site is not None:
            same = site in ("same-origin", "none")
        else:
            same = origin is not None and urlsplit(origin).netloc == self.request.host
        if not same:
            raise web.HTTPError(403, "cross-site request refused: use the MLflow pages of this hub, or a token")

    def _refuse_anonymous(self) -> bool:
        if self.current_user:
            return False
        if self.request.method in ("GET", "HEAD"):
            self.redirect(self.get_login_url())  # the hub's OAuth; it comes back to this URL
        else:
            raise web.HTTPError(403, "log in to the hub, or send Authorization: token <hub API token>")
        return True

    async def _forward(self) -> None:
        if self._refuse_anonymous():
            return
        self.check_xsrf_cookie()
        if not self.upstream.ready.is_set():
            try:
                await asyncio.wait_for(self.upstream.ready.wait(), _START_TIMEOUT_SECONDS)
            except asyncio.TimeoutError:
                raise web.HTTPError(503, "MLflow is not running; tell an administrator") from None
        headers = {k: v for k, v in self.request.headers.get_all() if k.lower() not in _DROP_REQUEST_HEADERS}
        headers["X-Forwarded-User"] = self.current_user["name"]
        body = self.request.body if self.request.method in ("POST", "PUT", "PATCH") else (self.request.body or None)
        request = httpclient.HTTPRequest(
            self.upstream.base_url + self.request.uri, method=self.request.method, headers=headers,
            body=body if self.request.method not in ("GET", "HEAD") else None,
            follow_redirects=False, decompress_response=False, allow_nonstandard_methods=True,
            request_timeout=600, connect_timeout=20,
        )
        try:
            response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as exc:
            raise web.HTTPError(502, f"MLflow did not answer ({exc})") from None
        if response.code == 599:
            raise web.HTTPError(502, f"MLflow did not answer ({response.error})")
        self.set_status(response.code, response.reason)
        self._headers.clear()
        for name, value in response.headers.get_all():
            if name.lower() in _HOP_HEADERS:
                continue
            if name.lower() == "set-cookie" or name in self._headers:
                self.add_header(name, value)
            else:
                self.set_header(name, value)
        if response.body and self.request.method != "HEAD" and response.code not in (204, 304):
            self.write(response.body)
        await self.finish()

    get = head = post = put = patch = delete = options = _forward


def make_app(upstream: MlflowUpstream, prefix: str, callback_path: str) -> web.Application:
    """The service's tornado application: the OAuth callback, then everything else to MLflow."""
    return web.Application(
        [
            (callback_path, HubOAuthCallbackHandler),
            (prefix.rstrip("/"), web.RedirectHandler, {"url": prefix.rstrip("/") + "/"}),
            (prefix.rstrip("/") + r"/.*", MlflowProxyHandler, {"upstream": upstream}),
        ],
        cookie_secret=os.urandom(32),
    )


async def _serve() -> None:
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/mlflow/")
    service_url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    callback = urlsplit(os.environ.get("JUPYTERHUB_OAUTH_CALLBACK_URL", prefix + "oauth_callback")).path
    backend = os.environ.get("DEEPEPIL_MLFLOW_DB_URL", "").strip()
    artifacts = os.environ.get("DEEPEPIL_MLFLOW_ARTIFACTS", "").strip()
    if not backend or not artifacts:
        raise SystemExit("DEEPEPIL_MLFLOW_DB_URL and DEEPEPIL_MLFLOW_ARTIFACTS must be set (the hub sets them)")
    httpclient.AsyncHTTPClient.configure(None, max_body_size=MAX_BODY_BYTES)
    HubOAuth.instance()  # from the JUPYTERHUB_* environment
    upstream = MlflowUpstream(backend, Path(artifacts), prefix.rstrip("/"))
    upstream.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = HTTPServer(make_app(upstream, prefix, callback), max_body_size=MAX_BODY_BYTES, xheaders=True)
    try:
        server.listen(service_url.port or 80, service_url.hostname or "127.0.0.1")
        app_log.info("MLflow service on %s, prefix %s", service_url.geturl(), prefix)
        health = asyncio.ensure_future(upstream.wait_healthy())
        done, _ = await asyncio.wait([health, asyncio.ensure_future(stop.wait())],
                                     return_when=asyncio.FIRST_COMPLETED)
        if health in done and health.exception() is not None:
            raise health.exception()
        await stop.wait()
    finally:
        server.stop()
        upstream.stop()


def main() -> None:
    """Run the service (the hub starts it with the ``JUPYTERHUB_*`` environment)."""
    from tornado.log import enable_pretty_logging

    enable_pretty_logging()
    app_log.setLevel("INFO")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    asyncio.run(_serve())


if __name__ == "__main__":
    sys.exit(main())
