"""The web guard in front of the app: plain ASGI middleware (no gradio import), installed by
``main_launcher.launch_kwargs``.

- Host header check (DNS rebinding): IP addresses, loopback names and ``allowed_hosts(settings)`` pass.
- Before login (``--auth``): only the login form and its assets are served; the page's embedded API
  description is blanked, so nothing of the app's content (dataset names, run ids, paths) leaks.
- Login and API-key throttling per credential and globally, never per address (``Throttle``); failed logins are
  logged with the user name. Long-lived connections before login (the heartbeat) are capped.
- ``/v1`` (the OpenAI-compatible API, ``rest``) has its own rule (``rest.auth.APIAccess``): a Bearer key instead
  of the login cookie, loopback clients only without a login, browsers' cross-origin requests only from
  ``api_allowed_origins``; refusals in OpenAI's JSON error shape, and wrong keys (not missing ones) count in the
  same throttle as wrong passwords.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlparse

from config import Settings, is_loopback
from rest.auth import APIAccess, bearer_key, is_api_path
from rest.errors import APIError, busy, error_body

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
ANONYMOUS_STREAM_PREFIXES = ("/gradio_api/heartbeat/",)  # open until the page closes: counted before login
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


class Throttle:
    """Failed logins and wrong API keys, slowed down per credential and all together.

    - Per credential (a user name, or a key's hash): the first ``free`` failures are answered at once, then each
      attempt waits twice as long as the one before (``base`` seconds, at most ``cap``). A success clears that
      credential's count only; ``window`` seconds without a failure clear it too.
    - All together: past ``global_free`` failures within ``window`` (of any credentials, from any address), every
      attempt also waits ``global_base`` seconds doubling, at most ``global_cap``, one behind the other (a single
      queue: parallel guesses are answered one at a time). More than ``max_queue`` attempts waiting: 429 at once.
    - Not by client address: any local process can pick any 127.x source address.

    Every failure is logged with the user name tried (never the password) and the address.
    """

    MAX_CREDENTIALS = 10000  # oldest forgotten first

    def __init__(
        self,
        free: int = 3,
        base: float = 0.5,
        cap: float = 30.0,
        window: float = 900.0,
        global_free: int = 20,
        global_base: float = 0.1,
        global_cap: float = 2.0,
        max_queue: int = 64,
    ) -> None:
        self.free, self.base, self.cap, self.window = free, base, cap, window
        self.global_free, self.global_base, self.global_cap = global_free, global_base, global_cap
        self.max_queue = max_queue
        self._failures: dict[str, tuple[int, float]] = {}  # credential -> (failures in a row, last failure)
        self._recent: list[float] = []  # times of every failure within the window
        self._locks: dict[str, asyncio.Lock] = {}
        self._queue: asyncio.Lock | None = None
        self._waiting = 0

    def recent_failures(self) -> int:
        """Failures of every credential within the window."""
        horizon = time.monotonic() - self.window
        while self._recent and self._recent[0] < horizon:
            self._recent.pop(0)
        return len(self._recent)

    def global_delay(self) -> float:
        """Seconds every attempt waits now, whatever its credential."""
        count = self.recent_failures()
        if count < self.global_free:
            return 0.0
        return min(self.global_base * 2 ** min(count - self.global_free, 30), self.global_cap)

    def own_delay(self, credential: str) -> float:
        """Seconds the next attempt with ``credential`` waits for its own failures."""
        count, last = self._failures.get(credential, (0, 0.0))
        if count < self.free or time.monotonic() - last > self.window:
            return 0.0
        return min(self.base * 2 ** min(count - self.free, 30), self.cap)

    def delay(self, credential: str) -> float:
        """Seconds the next attempt with ``credential`` waits (its own throttle, then the global one)."""
        return self.own_delay(credential) + self.global_delay()

    def failed(self, credential: str) -> int:
        count, last = self._failures.pop(credential, (0, 0.0))
        now = time.monotonic()
        count = 1 if now - last > self.window else count + 1
        self._failures[credential] = (count, now)
        self._recent.append(now)
        while len(self._failures) > self.MAX_CREDENTIALS:
            self._failures.pop(next(iter(self._failures)))
        while len(self._recent) > self.MAX_CREDENTIALS:
            self._recent.pop(0)
        return count

    def succeeded(self, credential: str) -> None:
        self._failures.pop(credential, None)

    @contextlib.asynccontextmanager
    async def turn(self, credential: str) -> AsyncIterator[bool]:
        """Wait for this credential's turn: behind its own earlier attempts (their delay), then in the global
        queue (the global delay). Yields False, at once, when too many attempts already wait (answer 429)."""
        if self._waiting >= self.max_queue:
            yield False
            return
        if len(self._locks) > self.MAX_CREDENTIALS:
            self._locks = {c: held for c, held in self._locks.items() if held.locked()}
        if self._queue is None:
            self._queue = asyncio.Lock()
        self._waiting += 1
        admitted = False
        try:
            async with self._locks.setdefault(credential, asyncio.Lock()):
                own = self.own_delay(credential)
                if own:
                    await asyncio.sleep(own)
                async with self._queue:
                    wait = self.global_delay()
                    if wait:
                        await asyncio.sleep(wait)
                    self._waiting -= 1
                    admitted = True
                    yield True
        finally:
            if not admitted:
                self._waiting -= 1

    async def guard(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        """Run one ``POST /login`` through the throttle (its credential: the user name in the form)."""
        address = (scope.get("client") or ("unknown", 0))[0]
        body = b""
        while True:  # the form is small: read it to know the user, then hand it on
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body") or len(body) > 65536:
                break
        user = _form_user(body, _header(scope, b"content-type") or "")
        async with self.turn(f"user:{user}") as admitted:
            if not admitted:
                log.warning("Refused a login for user %r from %s: too many attempts waiting", user, address)
                await _answer(scope, send, 429, "Too many login attempts at once. Try again shortly.")
                return
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
            self.succeeded(f"user:{user}")
            log.info("Login: user %r from %s", user, address)
        else:
            count = self.failed(f"user:{user}")
            log.warning(
                "Failed login for user %r from %s (%d in a row; the next attempt for that user waits %.1f s)",
                user,
                address,
                count,
                self.delay(f"user:{user}"),
            )


def key_credential(key: str) -> str:
    """A Bearer key's throttle credential: a hash, so the table never holds a key."""
    return "key:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:16]


class WebGuard:
    """ASGI middleware in front of the Gradio app (``launch_kwargs`` installs it through ``app_kwargs``).

    1. Host header: IP addresses, loopback names, ``hosts`` and the share link's host are answered;
       any other name gets 400 (a DNS-rebinding page in someone's browser names its own domain).
    2. With a login (Gradio ``auth``): before login only the login page and its assets are served, and
       the page carries no API description (Gradio embeds every endpoint with its dropdown choices);
       everything else answers 401.
    3. ``POST /login`` goes through ``Throttle``.
    4. ``/v1``: ``api`` decides (``rest.auth.APIAccess``: Bearer keys, loopback-only without a login).
    """

    def __init__(
        self,
        app: ASGIApp,
        hosts: Sequence[str] = (),
        throttle: Throttle | None = None,
        api: APIAccess | None = None,
        max_anonymous_streams: int = 32,
    ) -> None:
        self.app = app
        self.max_anonymous_streams = max_anonymous_streams
        self._anonymous_streams = 0
        self.names = {h.lower() for h in hosts if not h.startswith(".")}
        self.suffixes = tuple(h.lower() for h in hosts if h.startswith("."))
        self.throttle = throttle or Throttle()
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
        elif path.startswith(ANONYMOUS_STREAM_PREFIXES):
            await self._anonymous_stream(scope, receive, send)
        elif path.rstrip("/") in LOGIN_PAGE_PATHS or path.startswith(LOGIN_PAGE_PREFIXES):
            await self.app(scope, receive, send)
        else:
            await _answer(scope, send, 401, "Not authenticated: log in first.")

    async def _anonymous_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A long-lived connection before login (the page's heartbeat): at most ``max_anonymous_streams`` open."""
        if self._anonymous_streams >= self.max_anonymous_streams:
            log.warning("Refused a stream before login: %d already open", self._anonymous_streams)
            await _answer(scope, send, 429, "Too many open connections before login. Log in first.")
            return
        self._anonymous_streams += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._anonymous_streams -= 1

    async def _api(self, scope: Scope, receive: Receive, send: Send, gradio: Any) -> None:
        """The ``/v1`` rule: ``self.api`` decides; a wrong key waits its turn in the throttle and is logged, a
        request without a key is refused without counting (it is not a guess)."""
        if scope["type"] != "http":
            await _answer(scope, send, 404, "Not found.")
            return
        address = (scope.get("client") or ("unknown", 0))[0]
        origin = _header(scope, b"origin")
        refusal = self.api.origin_refusal(scope)
        if refusal is None and scope.get("method") == "OPTIONS" and origin is not None:
            await _send_json(send, 204, b"", _cors_headers(origin, preflight=True))  # a browser's preflight
            return
        if refusal is None:
            login = getattr(gradio, "auth", None) is not None
            share_url = getattr(gradio.get_blocks(), "share_url", None) if hasattr(gradio, "get_blocks") else None
            share_host = urlparse(share_url).hostname if share_url else None
            refusal = self.api.refusal(scope, login=login, share_host=share_host)
        if refusal is None:
            await self.app(scope, receive, _with_cors(send, origin) if origin else send)
            return
        if refusal.code == "invalid_api_key":
            credential = key_credential(bearer_key(scope) or "")
            async with self.throttle.turn(credential) as admitted:
                if not admitted:
                    refusal = busy(429, "Too many requests with wrong API keys are waiting. Try again shortly.")
                else:
                    self.throttle.failed(credential)
                    log.warning(
                        "Refused an API request from %s: wrong key (%d failed logins and keys lately; the next "
                        "attempt waits %.1f s)",
                        address,
                        self.throttle.recent_failures(),
                        self.throttle.delay(credential),
                    )
                    await _send_refusal(send, refusal)
                    return
        log.warning("Refused an API request from %s: %s", address, refusal.code)
        await _send_refusal(send, refusal)


async def _send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    if body:
        headers = [*headers, (b"content-type", b"application/json")]
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_refusal(send: Send, refusal: APIError) -> None:
    body = error_body(refusal.message, refusal.type, refusal.param, refusal.code)
    headers = [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
    if refusal.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await _send_json(send, refusal.status, body, headers)


def _cors_headers(origin: str, *, preflight: bool = False) -> list[tuple[bytes, bytes]]:
    """CORS headers for an allowed origin (``api_allowed_origins``)."""
    headers = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
    if preflight:
        headers += [
            (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
            (b"access-control-allow-headers", b"authorization, content-type"),
            (b"access-control-max-age", b"600"),
        ]
    else:
        headers.append((b"access-control-expose-headers", b"*"))
    return headers


def _with_cors(send: Send, origin: str) -> Send:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *_cors_headers(origin)]}
        await send(message)

    return wrapped


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
