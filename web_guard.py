"""The web guard in front of the app: plain ASGI middleware (no gradio import), installed by
``main_launcher.launch_kwargs``.

- Host header check (DNS rebinding): IP addresses, loopback names and ``allowed_hosts(settings)`` pass.
- Before login (``--auth``): only the login form and its assets are served; the page's embedded API
  description is blanked, so nothing of the app's content (dataset names, run ids, paths) leaks.
- Login throttling per client address (``LoginThrottle``); failed logins are logged with the user name.
- ``/v1`` (the OpenAI-compatible API, ``rest``) has its own rule (``rest.auth.APIAccess``): a Bearer key instead
  of the login cookie, loopback clients only without a login; refusals in OpenAI's JSON error shape, and wrong
  keys count against the same per-address throttle as wrong passwords.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlparse

from config import Settings, is_loopback
from rest.auth import APIAccess, is_api_path
from rest.errors import error_body

log = logging.getLogger("xtts_lab")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Paths a browser needs to show the login form and log in; everything else waits for a login.
LOGIN_PAGE_PATHS = frozenset(
    {
        "/",
        "/favicon.ico",
        "/theme.css",
        "/robots.txt",
        "/manifest.json",
        "/login",
        "/logout",
        "/config",  # Gradio answers 401 itself
        "/gradio_api/login_check",
        "/gradio_api/user",
        "/gradio_api/token",
        "/gradio_api/app_id",
        "/gradio_api/theme.css",
        "/gradio_api/startup-events",
    }
)
LOGIN_PAGE_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon", "/gradio_api/heartbeat/")
_API_INFO = re.compile(rb"<script>window\.gradio_api_info = .*?;</script>", re.DOTALL)


def allowed_hosts(settings: Settings) -> tuple[str, ...]:
    """Host header names the app answers besides IP addresses and loopback names.

    The configured ``host`` (unless a wildcard), this machine's name (and ``<name>.local``) and
    ``settings.allowed_hosts`` (an entry starting with a dot allows its subdomains). A share link's host is
    added by ``WebGuard`` once the tunnel is up.
    """
    names = {settings.host.strip("[]").lower()} - {"0.0.0.0", "::", ""}
    machine = socket.gethostname().lower()
    names |= {machine, f"{machine}.local"} if machine else set()
    names |= {h.strip().lower() for h in settings.allowed_hosts if h.strip()}
    return tuple(sorted(names))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _host_name(header: str) -> str:
    """The name part of a Host header: ``[::1]:7860`` -> ``::1``, ``Lab.Example:80`` -> ``lab.example``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


async def _answer(scope: Scope, send: Send, status: int, text: str) -> None:
    """A plain-text refusal (a websocket is closed before it opens)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class LoginThrottle:
    """Failed logins per client address: the first ``free`` are answered at once, then each waits twice as
    long as the one before (``base`` seconds, at most ``cap``); attempts from one address queue one behind
    the other, and a success (or ``window`` seconds without a failure) starts over.

    Every failure is logged with the user name tried and the address, never the password.
    """

    MAX_ADDRESSES = 10000  # oldest forgotten first

    def __init__(self, free: int = 3, base: float = 0.5, cap: float = 30.0, window: float = 900.0) -> None:
        self.free, self.base, self.cap, self.window = free, base, cap, window
        self._failures: dict[str, tuple[int, float]] = {}  # address -> (failures in a row, last failure)
        self._locks: dict[str, asyncio.Lock] = {}

    def delay(self, address: str) -> float:
        """Seconds the next attempt from ``address`` waits."""
        count, last = self._failures.get(address, (0, 0.0))
        if count < self.free or time.monotonic() - last > self.window:
            return 0.0
        return min(self.base * 2 ** (count - self.free), self.cap)

    def failed(self, address: str) -> int:
        count, last = self._failures.pop(address, (0, 0.0))
        count = 1 if time.monotonic() - last > self.window else count + 1
        self._failures[address] = (count, time.monotonic())
        while len(self._failures) > self.MAX_ADDRESSES:
            self._failures.pop(next(iter(self._failures)))
        return count

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    async def guard(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        """Run one ``POST /login`` through the throttle."""
        address = (scope.get("client") or ("unknown", 0))[0]
        if len(self._locks) > self.MAX_ADDRESSES:
            self._locks = {a: held for a, held in self._locks.items() if held.locked()}
        lock = self._locks.setdefault(address, asyncio.Lock())
        async with lock:
            wait = self.delay(address)
            if wait:
                await asyncio.sleep(wait)
            body = b""
            while True:  # the form is small: read it to log the user name, then hand it on
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body") or len(body) > 65536:
                    break
            user = _form_user(body, _header(scope, b"content-type") or "")
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            answered = False

            async def watch(message: dict[str, Any]) -> None:
                # The outcome is counted and logged before the answer leaves, so the client's next attempt
                # (or a test reading the log) always sees it.
                nonlocal answered
                if message["type"] == "http.response.start":
                    answered = True
                    self._outcome(message["status"], user, address)
                await send(message)

            await app(scope, replay, watch)
            if not answered:  # no answer at all counts as a failed attempt
                self._outcome(0, user, address)

    def _outcome(self, status: int, user: str, address: str) -> None:
        if 200 <= status < 400:
            self.succeeded(address)
            log.info("Login: user %r from %s", user, address)
        else:
            count = self.failed(address)
            log.warning(
                "Failed login for user %r from %s (%d in a row; the next attempt from there waits %.1f s)",
                user,
                address,
                count,
                self.delay(address),
            )


class WebGuard:
    """ASGI middleware in front of the Gradio app (``launch_kwargs`` installs it through ``app_kwargs``).

    1. Host header: IP addresses, loopback names, ``hosts`` and the share link's host are answered;
       any other name gets 400 (a DNS-rebinding page in someone's browser names its own domain).
    2. With a login (Gradio ``auth``): before login only the login page and its assets are served, and
       the page carries no API description (Gradio embeds every endpoint with its dropdown choices);
       everything else answers 401.
    3. ``POST /login`` goes through ``LoginThrottle``.
    4. ``/v1``: ``api`` decides (``rest.auth.APIAccess``: Bearer keys, loopback-only without a login).
    """

    def __init__(
        self,
        app: ASGIApp,
        hosts: Sequence[str] = (),
        throttle: LoginThrottle | None = None,
        api: APIAccess | None = None,
    ) -> None:
        self.app = app
        self.names = {h.lower() for h in hosts if not h.startswith(".")}
        self.suffixes = tuple(h.lower() for h in hosts if h.startswith("."))
        self.throttle = throttle or LoginThrottle()
        self.api = api or APIAccess()

    def host_allowed(self, name: str, gradio: Any) -> bool:
        if not name or _is_ip(name) or is_loopback(name) or name in self.names or name.endswith(self.suffixes):
            return True
        share_url = getattr(gradio.get_blocks(), "share_url", None) if hasattr(gradio, "get_blocks") else None
        return bool(share_url) and urlparse(share_url).hostname == name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        gradio = scope.get("app")
        host = _header(scope, b"host")
        if host is not None and not self.host_allowed(_host_name(host), gradio):
            log.warning("Refused a request for host %r (not in allowed_hosts)", _host_name(host))
            await _answer(
                scope, send, 400, f"Host {_host_name(host)!r} is not allowed. Add it to the allowed_hosts setting."
            )
            return
        path = scope.get("path", "/")
        if is_api_path(path):
            await self._api(scope, receive, send, gradio)
            return
        if getattr(gradio, "auth", None) is None:  # no login configured: nothing more to guard
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        if scope["type"] == "http" and method == "POST" and path.rstrip("/") == "/login":
            await self.throttle.guard(scope, receive, send, self.app)
        elif _logged_in(gradio, scope):
            await self.app(scope, receive, send)
        elif path == "/" and method in ("GET", "HEAD"):
            await self.app(scope, receive, _without_api_info(send, method))
        elif path.rstrip("/") in LOGIN_PAGE_PATHS or path.startswith(LOGIN_PAGE_PREFIXES):
            await self.app(scope, receive, send)
        else:
            await _answer(scope, send, 401, "Not authenticated: log in first.")

    async def _api(self, scope: Scope, receive: Receive, send: Send, gradio: Any) -> None:
        """The ``/v1`` rule: ``self.api`` decides; a wrong key waits like a wrong password and is logged."""
        if scope["type"] != "http":
            await _answer(scope, send, 404, "Not found.")
            return
        login = getattr(gradio, "auth", None) is not None
        address = (scope.get("client") or ("unknown", 0))[0]
        keyed = self.api.needs_key(login)
        if keyed:
            wait = self.throttle.delay(address)
            if wait:
                await asyncio.sleep(wait)
        share_url = getattr(gradio.get_blocks(), "share_url", None) if hasattr(gradio, "get_blocks") else None
        refusal = self.api.refusal(scope, login=login, share_host=urlparse(share_url).hostname if share_url else None)
        if refusal is None:
            if keyed:
                self.throttle.succeeded(address)
            await self.app(scope, receive, send)
            return
        if refusal.code in ("missing_api_key", "invalid_api_key"):
            count = self.throttle.failed(address)
            log.warning(
                "Refused an API request from %s: %s (%d in a row; the next attempt from there waits %.1f s)",
                address,
                "no key" if refusal.code == "missing_api_key" else "wrong key",
                count,
                self.throttle.delay(address),
            )
        else:
            log.warning("Refused an API request from %s: %s", address, refusal.code)
        body = error_body(refusal.message, refusal.type, refusal.param, refusal.code)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if refusal.status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _form_user(body: bytes, content_type: str) -> str:
    """The ``username`` field of a login form (urlencoded, or multipart as browsers send it)."""
    if content_type.startswith("multipart/"):
        match = re.search(rb'name="username"\r\n(?:[^\r\n]+\r\n)*\r\n(.*?)\r\n--', body, re.DOTALL)
        return match.group(1).decode("utf-8", "replace").strip() if match else ""
    return (parse_qs(body.decode("utf-8", "replace")).get("username") or [""])[0].strip()


def _logged_in(gradio: Any, scope: Scope) -> bool:
    """Whether the request carries a session cookie Gradio issued (the check Gradio's own routes make)."""
    cookies: dict[str, str] = {}
    for part in (_header(scope, b"cookie") or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            cookies[key] = value
    cookie_id = getattr(gradio, "cookie_id", "")
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return bool(token) and getattr(gradio, "tokens", {}).get(token) is not None


def _without_api_info(send: Send, method: str) -> Send:
    """A ``send`` that holds the page back and blanks Gradio's embedded API description in it."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = _API_INFO.sub(b"<script>window.gradio_api_info = null;</script>", b"".join(chunks))
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if method == "GET":
            headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return wrapped
