"""A small client of a running hub, as a person's browser uses it: login form, spawn, kernels.

For the hub tests, the hub benchmark and a deployment smoke check. It talks HTTP to the
public URL (the proxy), logs in through the login form (with its XSRF token), starts the
user's server, and runs code in a kernel of that server over the kernel websocket (the
Jupyter messaging protocol, JSON frames), collecting outputs as nbformat does.

>>> client = HubClient("http://127.0.0.1:8000")                   # doctest: +SKIP
>>> client.login("ana", "password")                                 # doctest: +SKIP
>>> client.start_server()                                           # doctest: +SKIP
>>> with client.kernel() as k: k.execute("1 + 1")["execute_result"]  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

__all__ = ["HubClient", "RemoteKernel", "HubClientError", "ExecutionError"]


class HubClientError(RuntimeError):
    """The hub or the server answered something unexpected; the message says what."""


class ExecutionError(HubClientError):
    """Code raised in the kernel; ``outputs`` holds what it printed, ``ename``/``evalue`` the error."""

    def __init__(self, ename: str, evalue: str, traceback: list[str], outputs: list[dict]) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename, self.evalue, self.traceback, self.outputs = ename, evalue, traceback, outputs


class HubClient:
    """One person's session with the hub (cookies, tokens).

    Parameters
    ----------
    url : str
        The hub's public URL, e.g. ``http://127.0.0.1:8000``.
    timeout_seconds : float
        Timeout of each HTTP request.
    """

    def __init__(self, url: str, *, timeout_seconds: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.session = requests.Session()
        self.username: str | None = None
        self._token: str | None = None

    # -- the hub ---------------------------------------------------------------------------
    def _xsrf(self) -> str | None:
        return self.session.cookies.get("_xsrf", path="/hub/") or self.session.cookies.get("_xsrf")

    def _form_post(self, path: str, data: dict[str, str]) -> requests.Response:
        page = self.session.get(f"{self.url}{path}", timeout=self.timeout_seconds)
        xsrf = self._xsrf()
        if page.status_code != 200 or xsrf is None:
            raise HubClientError(f"GET {path} answered {page.status_code} without an XSRF cookie")
        return self.session.post(f"{self.url}{path}", data={**data, "_xsrf": xsrf},
                                 timeout=self.timeout_seconds, allow_redirects=False)

    def login(self, username: str, password: str) -> requests.Response:
        """Submit the login form. Returns the answer: a redirect (302) when the login worked.

        Raises nothing on a refused login (the form comes back, 200 with an error): check
        :attr:`logged_in`.
        """
        self.logout_local()
        response = self._form_post("/hub/login", {"username": username, "password": password})
        if response.status_code in (302, 303) and self.session.cookies.get("jupyterhub-session-id") is not None:
            self.username = username
        return response

    @property
    def logged_in(self) -> bool:
        """True after a login the hub accepted."""
        return self.username is not None

    def logout_local(self) -> None:
        """Forget cookies and tokens (the next request is anonymous)."""
        self.session.cookies.clear()
        self.username, self._token = None, None

    def signup(self, username: str, password: str) -> requests.Response:
        """Submit NativeAuthenticator's sign-up form."""
        return self._form_post("/hub/signup", {
            "username": username, "signup_password": password, "signup_password_confirmation": password,
            "email": f"{username}@example.org",
        })

    def hub_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A hub REST call (``/hub/api`` + ``path``) with the login cookie and its XSRF token."""
        headers = kwargs.pop("headers", {})
        xsrf = self._xsrf()
        if xsrf:
            headers["X-XSRFToken"] = xsrf
        return self.session.request(method, f"{self.url}/hub/api{path}", headers=headers,
                                    timeout=self.timeout_seconds, **kwargs)

    @property
    def token(self) -> str:
        """An API token of the logged-in user (made once, through the hub API)."""
        if self._token is None:
            self._require_login()
            r = self.hub_api("POST", f"/users/{self.username}/tokens", json={"note": "deepepil hub client",
                                                                              "expires_in": 3600})
            if r.status_code not in (200, 201):
                raise HubClientError(f"could not make an API token for {self.username}: {r.status_code} {r.text}")
            self._token = r.json()["token"]
        return self._token

    def _require_login(self) -> None:
        if self.username is None:
            raise HubClientError("log in first (HubClient.login)")

    def start_server(self, timeout_seconds: float = 300.0) -> float:
        """Start the user's server (as the "Start My Server" button does) and wait until it answers.

        Returns the seconds it took. Raises :class:`HubClientError` with the hub's message
        when the spawn fails or times out.
        """
        self._require_login()
        t0 = time.perf_counter()
        r = self.hub_api("POST", f"/users/{self.username}/server")
        if r.status_code not in (201, 202, 400):  # 400: already running
            raise HubClientError(f"spawn of {self.username}'s server refused: {r.status_code} {r.text}")
        self.wait_ready(timeout_seconds - (time.perf_counter() - t0))
        return time.perf_counter() - t0

    def server_model(self) -> dict:
        """The hub's model of the user's default server (``{}`` when none)."""
        r = self.hub_api("GET", f"/users/{self.username}")
        if r.status_code != 200:
            raise HubClientError(f"GET /hub/api/users/{self.username}: {r.status_code} {r.text}")
        return r.json().get("servers", {}).get("", {})

    def wait_ready(self, timeout_seconds: float = 300.0) -> None:
        """Wait until the user's server is ready, or raise with the hub's failure message."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            model = self.server_model()
            if model.get("ready"):
                return
            if not model or not model.get("pending"):
                events = self.session.get(f"{self.url}/hub/api/users/{self.username}/server/progress",
                                          headers={"Authorization": f"token {self.token}"},
                                          timeout=self.timeout_seconds, stream=False)
                raise HubClientError(f"{self.username}'s server did not start: {_last_progress(events.text)}")
            time.sleep(0.25)
        raise HubClientError(f"{self.username}'s server was not ready within {timeout_seconds:g} s")

    def stop_server(self, timeout_seconds: float = 120.0) -> None:
        """Stop the user's server and wait until it is gone."""
        self._require_login()
        r = self.hub_api("DELETE", f"/users/{self.username}/server")
        if r.status_code not in (202, 204, 400):
            raise HubClientError(f"stopping {self.username}'s server: {r.status_code} {r.text}")
        deadline = time.monotonic() + timeout_seconds
        while self.server_model() and time.monotonic() < deadline:
            time.sleep(0.25)

    # -- the user's server ------------------------------------------------------------------
    def server_url(self, path: str = "") -> str:
        """URL of ``path`` in the user's server (``/user/NAME/`` + path)."""
        self._require_login()
        return f"{self.url}/user/{self.username}/{path.lstrip('/')}"

    def server_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A call to the user's server REST API (``/user/NAME/api`` + path) with the user's token."""
        headers = {"Authorization": f"token {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.server_url(f"api{path}"), headers=headers,
                                timeout=self.timeout_seconds, **kwargs)

    def read_notebook(self, path: str) -> dict:
        """A notebook from the user's server (contents API), as nbformat JSON."""
        r = self.server_api("GET", f"/contents/{path}", params={"content": "1"})
        if r.status_code != 200:
            raise HubClientError(f"GET contents {path}: {r.status_code} {r.text}")
        return r.json()["content"]

    @contextmanager
    def kernel(self, notebook_path: str = "untitled.ipynb", *, kernel_name: str = "python3",
               timeout_seconds: float = 120.0) -> Iterator[RemoteKernel]:
        """A kernel session for ``notebook_path`` in the user's server, shut down afterwards."""
        r = self.server_api("POST", "/sessions", json={"path": notebook_path, "type": "notebook",
                                                       "name": notebook_path, "kernel": {"name": kernel_name}})
        if r.status_code not in (200, 201):
            raise HubClientError(f"could not start a kernel in {self.username}'s server: {r.status_code} {r.text}")
        session = r.json()
        kernel_id = session["kernel"]["id"]
        ws_url = self.server_url(f"api/kernels/{kernel_id}/channels").replace("http", "ws", 1)
        kernel = RemoteKernel(ws_url, self.token, timeout_seconds=timeout_seconds)
        try:
            kernel.wait_idle()
            yield kernel
        finally:
            kernel.close()
            self.server_api("DELETE", f"/sessions/{session['id']}")


def _last_progress(text: str) -> str:
    messages = [json.loads(line[5:]).get("message", "") for line in text.splitlines() if line.startswith("data:")]
    return messages[-1] if messages else text.strip()[:500]


def _decode_frame(frame: str | bytes) -> dict:
    if isinstance(frame, str):
        return json.loads(frame)
    # legacy binary framing: uint32 count, uint32 offsets, then the JSON message and its buffers
    count = struct.unpack("!I", frame[:4])[0]
    offsets = list(struct.unpack(f"!{count}I", frame[4:4 + 4 * count])) + [len(frame)]
    return json.loads(frame[offsets[0]:offsets[1]])


class RemoteKernel:
    """A kernel of a Jupyter server, driven over its websocket (the ``execute_request`` subset)."""

    def __init__(self, ws_url: str, token: str, *, timeout_seconds: float = 120.0) -> None:
        import websocket  # websocket-client, a jupyter-server dependency

        self.timeout_seconds = timeout_seconds
        self.session_id = uuid.uuid4().hex
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"],
                                              timeout=timeout_seconds)

    def close(self) -> None:
        """Close the websocket (the kernel itself stays until its session is deleted)."""
        self.ws.close()

    def _send(self, msg_type: str, content: dict, channel: str = "shell") -> str:
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "username": "deepepil", "session": self.session_id,
                       "date": dt.datetime.now(dt.timezone.utc).isoformat(), "version": "5.3"},
            "parent_header": {}, "metadata": {}, "content": content, "channel": channel, "buffers": [],
        }))
        return msg_id

    def wait_idle(self) -> None:
        """Wait until the kernel answers a ``kernel_info_request`` (it is started and idle)."""
        msg_id = self._send("kernel_info_request", {})
        self._collect(msg_id, "kernel_info_reply")

    def _collect(self, msg_id: str, reply_type: str) -> tuple[dict, list[dict]]:
        outputs: list[dict] = []
        reply: dict | None = None
        idle = False
        deadline = time.monotonic() + self.timeout_seconds
        while not (reply is not None and idle):
            if time.monotonic() > deadline:
                raise HubClientError(f"no {reply_type} within {self.timeout_seconds:g} s")
            msg = _decode_frame(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == reply_type:
                reply = content
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind in ("stream", "display_data", "execute_result", "error", "update_display_data"):
                outputs.append({"output_type": kind, **content})
        return reply, outputs

    def execute(self, code: str) -> dict[str, Any]:
        """Run ``code``; return ``{"outputs": [...], "execute_result": data or None, "stdout": str}``.

        Raises
        ------
        ExecutionError
            The code raised (the outputs so far are kept on the error).
        """
        msg_id = self._send("execute_request", {"code": code, "silent": False, "store_history": True,
                                                "user_expressions": {}, "allow_stdin": False,
                                                "stop_on_error": True})
        reply, outputs = self._collect(msg_id, "execute_reply")
        if reply.get("status") == "error":
            raise ExecutionError(reply.get("ename", "Error"), reply.get("evalue", ""), reply.get("traceback", []),
                                 outputs)
        result = next((o["data"] for o in outputs if o["output_type"] == "execute_result"), None)
        stdout = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream"
                         and o.get("name") == "stdout")
        return {"outputs": outputs, "execute_result": result, "stdout": stdout}

    def run_notebook(self, notebook: dict) -> list[list[dict]]:
        """Run a notebook's code cells in order; return each code cell's outputs.

        Raises :class:`ExecutionError` at the first cell that raises.
        """
        results = []
        for cell in notebook.get("cells", []):
            if cell.get("cell_type") != "code":
                continue
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            results.append(self.execute(source)["outputs"])
        return results
