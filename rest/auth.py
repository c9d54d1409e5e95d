"""Who may call the ``/v1`` API; ``web_guard.WebGuard`` applies this before any route runs.

- With a login (``--auth``) the API takes ``Authorization: Bearer <key>`` with a key from ``api_keys`` instead of
  the page's session cookie; no keys configured = the API is closed, and the 401 says how to open it.
- ``api_keys`` set without a login: the key is required all the same.
- Without a login the API answers only clients on this machine (loopback, not forwarded by a proxy or the share
  tunnel) unless ``api_allow_remote`` is on.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from config import Settings, is_loopback
from rest.errors import APIError

API_PREFIX = "/v1"
# Headers a proxy (or Gradio's share tunnel) adds: their presence means the client is elsewhere.
FORWARDING_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")
KEY_HELP = (
    'Set api_keys (XTTSLAB_API_KEYS=key1,key2, or "api_keys": ("key1",) in my_config.py) and send '
    '"Authorization: Bearer <key>".'
)


def is_api_path(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def bearer_key(scope: dict[str, Any]) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or None."""
    scheme, _, key = (_header(scope, b"authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def is_local_client(scope: dict[str, Any], share_host: str | None = None) -> bool:
    """Whether the request comes from a program on this machine: a loopback peer, no forwarding header, and
    not through the share link (its tunnel connects from loopback but keeps the link's Host)."""
    client = scope.get("client") or ("", 0)
    if not client[0] or not is_loopback(client[0]):
        return False
    if any(_header(scope, name) is not None for name in FORWARDING_HEADERS):
        return False
    host = (_header(scope, b"host") or "").strip().lower()
    host = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]
    return not (share_host and host == share_host.lower())


@dataclass(frozen=True)
class APIAccess:
    """The API's access rule (from settings); ``refusal`` decides one request."""

    keys: tuple[str, ...] = ()
    allow_remote: bool = False
    origins: tuple[str, ...] = ()  # web origins whose pages may call the API from a browser; "*" = any

    @classmethod
    def from_settings(cls, settings: Settings) -> APIAccess:
        return cls(
            keys=tuple(k for k in settings.api_keys if k),
            allow_remote=bool(settings.api_allow_remote),
            origins=tuple(o.strip().rstrip("/").lower() for o in settings.api_allowed_origins if o.strip()),
        )

    def origin_refusal(self, scope: dict[str, Any]) -> APIError | None:
        """Why a browser's cross-origin request may not use the API (403), or None.

        A web page in the user's browser can send requests to a loopback server (a ``text/plain`` POST needs no
        CORS preflight), so the API refuses any ``Origin`` other than its own and ``api_allowed_origins``, and a
        browser's ``Sec-Fetch-Site: cross-site`` without one. Programs send neither header.
        """
        origin = _header(scope, b"origin")
        site = (_header(scope, b"sec-fetch-site") or "").strip().lower()
        if origin is None:
            if site != "cross-site":
                return None
        else:
            origin = origin.strip().rstrip("/").lower()
            host = (_header(scope, b"host") or "").strip().lower()
            if "*" in self.origins or origin in self.origins:
                return None
            if origin != "null" and urlparse(origin).netloc == host and host:
                return None  # the app's own page
        return APIError(
            403,
            f"Cross-origin requests to the API are refused (Origin {origin or '(cross-site)'}). To let a web app "
            "call it from a browser, add its origin to api_allowed_origins (XTTSLAB_API_ALLOWED_ORIGINS=https://app."
            "example).",
            "permission_error",
            None,
            "origin_not_allowed",
        )

    def needs_key(self, login: bool) -> bool:
        return login or bool(self.keys)

    def key_matches(self, key: str | None) -> bool:
        # compare against every key (constant time each), so the answer's timing does not tell which matched
        found = False
        for known in self.keys:
            found |= key is not None and hmac.compare_digest(key.encode(), known.encode())
        return found

    def refusal(self, scope: dict[str, Any], *, login: bool, share_host: str | None = None) -> APIError | None:
        """Why this request may not use the API (an APIError to send), or None when it may.

        Args:
            scope: the ASGI scope (headers, client address).
            login: whether the app has a login (Gradio ``auth``).
            share_host: the share link's host name, when a tunnel is up.
        """
        if login and not self.keys:
            return APIError(
                401,
                "This app has a login (--auth), so its API needs an API key, and none is configured: the API is "
                f"closed. {KEY_HELP}",
                "invalid_request_error",
                None,
                "api_keys_not_configured",
            )
        if self.needs_key(login):
            key = bearer_key(scope)
            if key is None:
                return APIError(
                    401,
                    'No API key given. Send "Authorization: Bearer <key>" with one of the keys in api_keys.',
                    "invalid_request_error",
                    None,
                    "missing_api_key",
                )
            if not self.key_matches(key):
                return APIError(
                    401,
                    "Incorrect API key. Use one of the keys in api_keys.",
                    "invalid_request_error",
                    None,
                    "invalid_api_key",
                )
        if not login and not self.allow_remote and not is_local_client(scope, share_host):
            return APIError(
                403,
                "The API answers only programs on this machine: the app has no login. To serve other machines, "
                f"start it with --auth and API keys ({KEY_HELP}), or set api_allow_remote (anyone who reaches it "
                "can use it).",
                "permission_error",
                None,
                "remote_not_allowed",
            )
        return None


__all__ = ["API_PREFIX", "APIAccess", "bearer_key", "is_api_path", "is_local_client"]
