"""The web guard under abuse (issue 20, part 2): throttling by credential and globally, never by address; no
credentials is not a failed login; long-lived connections before login are capped. ASGI level, no server."""

from __future__ import annotations

import asyncio
import json
import time
import types
import urllib.parse

from rest.auth import APIAccess
from web_guard import Throttle, WebGuard

KEY = "sk-right-key"
USER, PASSWORD = "ann", "correct-horse"


async def _inner(scope, receive, send) -> None:
    """The app behind the guard: the login form answers 200 for the right password, 400 otherwise."""
    if scope["path"] == "/login":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        form = urllib.parse.parse_qs(body.decode())
        ok = form.get("username") == [USER] and form.get("password") == [PASSWORD]
        status = 200 if ok else 400
    elif scope["path"].startswith("/gradio_api/heartbeat/"):
        await scope["hold"].wait()  # a heartbeat stays open until the page goes
        status = 200
    else:
        status = 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


APP = types.SimpleNamespace(auth={USER: PASSWORD}, tokens={}, cookie_id="x")


def _scope(path: str, address: str, method: str = "GET", **headers: str) -> dict:
    items = [(b"host", b"127.0.0.1:7860")] + [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "method": method, "path": path, "client": (address, 50000), "headers": items, "app": APP}


async def _call(guard: WebGuard, scope: dict, body: bytes = b"") -> tuple[int, bytes]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await guard(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _login(guard: WebGuard, user: str, password: str, address: str = "127.0.0.1"):
    body = urllib.parse.urlencode({"username": user, "password": password}).encode()
    scope = _scope("/login", address, "POST", content_type="application/x-www-form-urlencoded")
    return _call(guard, scope, body)


def _key(guard: WebGuard, key: str | None, address: str = "127.0.0.1"):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return _call(guard, _scope("/v1/models", address, **headers))


def _guard(**throttle) -> WebGuard:
    return WebGuard(_inner, hosts=(), throttle=Throttle(**throttle), api=APIAccess(keys=(KEY,)))


def test_wrong_passwords_from_many_addresses_are_throttled_together() -> None:
    """60 wrong passwords from 20 loopback addresses took 0.21 s: the throttle was per address."""
    guard = _guard(base=0.01, cap=0.05, global_free=1000)  # short delays: the shape, not the minutes

    async def sweep() -> list[int]:
        attempts = [_login(guard, USER, f"guess-{i}", f"127.0.0.{i % 20 + 1}") for i in range(60)]
        return [status for status, _ in await asyncio.gather(*attempts)]

    start = time.monotonic()
    statuses = asyncio.run(sweep())
    elapsed = time.monotonic() - start
    assert statuses.count(400) == 60
    # one user: its own throttle holds them one behind the other, whatever the address
    assert guard.throttle.own_delay(f"user:{USER}") == 0.05 and elapsed >= 0.01 + 0.02 + 0.04 + 0.05 * 54


def test_parallel_wrong_keys_are_queued_and_slowed_globally() -> None:
    """Wrong keys in parallel, each a different key from a different address: past global_free, one at a time."""
    guard = _guard(global_free=5, global_base=0.05, global_cap=0.1)

    async def sweep() -> list[int]:
        return [s for s, _ in await asyncio.gather(*[_key(guard, f"sk-{i}", f"127.0.1.{i}") for i in range(25)])]

    start = time.monotonic()
    statuses = asyncio.run(sweep())
    elapsed = time.monotonic() - start
    assert statuses == [401] * 25
    assert elapsed >= 0.05 + 0.1 * 18  # 20 attempts past the free five, queued, 0.05 s then 0.1 s each
    assert guard.throttle.recent_failures() == 25
    assert asyncio.run(_key(guard, KEY))[0] == 200  # the right key is never queued behind them


def test_queue_is_capped() -> None:
    guard = _guard(global_free=0, global_base=0.2, global_cap=0.2, max_queue=3)

    async def sweep() -> list[int]:
        return [s for s, _ in await asyncio.gather(*[_key(guard, f"sk-{i}") for i in range(8)])]

    statuses = asyncio.run(sweep())
    assert statuses.count(429) == 5 and statuses.count(401) == 3


def test_a_valid_key_does_not_clear_password_failures() -> None:
    guard = _guard()
    for i in range(4):
        assert asyncio.run(_login(guard, USER, f"guess-{i}"))[0] == 400
    waiting = guard.throttle.own_delay(f"user:{USER}")
    assert waiting > 0
    assert asyncio.run(_key(guard, KEY))[0] == 200
    assert guard.throttle.own_delay(f"user:{USER}") == waiting


def test_requests_without_a_key_are_not_failed_logins() -> None:
    """Nine bare GET /v1/models locked the real user's login out for 30 s."""
    guard = _guard()
    for _ in range(9):
        status, body = asyncio.run(_key(guard, None))
        assert status == 401 and json.loads(body)["error"]["code"] == "missing_api_key"
    assert guard.throttle.recent_failures() == 0 and guard.throttle.delay(f"user:{USER}") == 0
    start = time.monotonic()
    assert asyncio.run(_login(guard, USER, PASSWORD))[0] == 200
    assert time.monotonic() - start < 0.5


def test_one_users_failures_do_not_delay_another() -> None:
    guard = _guard()
    for i in range(6):
        asyncio.run(_login(guard, "mallory", f"guess-{i}"))
    assert guard.throttle.delay(f"user:{USER}") == 0 and guard.throttle.delay("user:mallory") > 0


def test_heartbeats_before_login_are_capped() -> None:
    """150 heartbeat streams were accepted before login; now at most max_anonymous_streams stay open."""
    guard = WebGuard(_inner, hosts=(), max_anonymous_streams=4)

    async def sweep() -> list[int]:
        hold = asyncio.Event()
        scopes = [{**_scope(f"/gradio_api/heartbeat/s{i}", "127.0.0.1"), "hold": hold} for i in range(10)]
        tasks = [asyncio.ensure_future(_call(guard, s)) for s in scopes]
        await asyncio.sleep(0.1)
        refused = [t.result()[0] for t in tasks if t.done()]
        hold.set()
        await asyncio.gather(*tasks)
        return refused

    refused = asyncio.run(sweep())
    assert refused == [429] * 6 and guard._anonymous_streams == 0
