"""API keys, the ``Host`` allow-list and the ASGI middleware that enforces both.

A key is a random secret (``prk_...``) with scopes: ``read`` (every GET, ``POST /search``,
a user's export) and ``write`` (``POST /items``, ``POST /events``, every DELETE). Only the
keys' SHA-256 digests are kept (in a keys file made by ``polyrec keys``); secrets may also
come from the environment (:data:`KEYS_ENV`). Neither is ever logged.

The request carries its key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``;
for GET requests a ``polyrec_key`` cookie also counts, so the web page's ``<img>`` tags
(which cannot send headers) show item images. The web page, its static files, the OpenAPI
docs and ``/health`` need no key: they hold no data.

The ``Host`` allow-list defends a loopback server against DNS rebinding (a web page on
``evil.example`` whose name resolves to 127.0.0.1 would otherwise reach the API from the
victim's browser): a request whose ``Host`` is not listed gets a 400.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

__all__ = [
    "SCOPES",
    "KEYS_ENV",
    "KEYS_FILE_ENV",
    "ACCESS_ENV",
    "access_environment",
    "access_from_environment",
    "COOKIE",
    "LOOPBACK_HOSTS",
    "AccessPolicy",
    "ApiKey",
    "KeyRing",
    "AccessGuard",
    "new_secret",
    "digest_of",
    "read_keys_file",
    "write_keys_file",
    "load_keys",
    "required_scope",
    "is_loopback",
    "api_key_dependencies",
]

SCOPES = ("read", "write")
#: ``scope+scope:secret`` entries, separated by whitespace or commas: ``read:prk_a read+write:prk_b``
KEYS_ENV = "POLYREC_API_KEYS"
#: default keys file for ``polyrec serve`` and ``polyrec keys``
KEYS_FILE_ENV = "POLYREC_KEYS_FILE"
#: the access policy ``polyrec serve --workers N`` hands its worker processes (digests only)
ACCESS_ENV = "POLYREC_SERVE_ACCESS"
COOKIE = "polyrec_key"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_PUBLIC_PATHS = frozenset(
    {"/", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/favicon.ico", "/favicon.svg"}
)
_PUBLIC_PREFIXES = ("/static/",)
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_READ_POSTS = frozenset({"/search"})  # a query, not a change

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_secret() -> str:
    """A new random key: 256 bits, URL-safe."""
    return "prk_" + secrets.token_urlsafe(32)


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AccessPolicy:
    """Who may call the API: ``keys`` (empty: no keys needed), the ``Host`` names served
    (None: any; ``polyrec serve`` lists the loopback names and its bind address) and the
    origins allowed cross-origin requests (none: CORS stays closed)."""

    keys: KeyRing = field(default_factory=lambda: KeyRing())
    allowed_hosts: tuple[str, ...] | None = None
    cors_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiKey:
    """One key as the server knows it: a name, its scopes and the digest of its secret."""

    name: str
    scopes: frozenset[str]
    digest: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "scopes": sorted(self.scopes), "sha256": self.digest}


def _check_scopes(scopes: Iterable[str], where: str) -> frozenset[str]:
    chosen = frozenset(scopes)
    unknown = sorted(chosen - set(SCOPES))
    if unknown or not chosen:
        raise ValueError(f"{where}: scopes must be some of {', '.join(SCOPES)}, got {sorted(chosen) or 'none'}")
    return chosen


class KeyRing:
    """The configured keys; :meth:`find` compares digests in constant time."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self.keys = tuple(keys)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, secret: str) -> ApiKey | None:
        digest = digest_of(secret)
        found = None
        for key in self.keys:  # no early exit: the time taken does not depend on which key matched
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found


def read_keys_file(path: Path) -> list[ApiKey]:
    """The keys of a keys file (``{"keys": [{"name", "scopes", "sha256"}]}``); ValueError naming the problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"keys file {path} does not exist (create keys with `polyrec keys create`)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"keys file {path} cannot be read: {exc}") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f'keys file {path}: expected {{"keys": [...]}}')
    keys = []
    for n, entry in enumerate(entries):
        where = f"keys file {path}, key {n}"
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or len(entry["sha256"]) != 64:
            raise ValueError(f"{where}: needs name, scopes and a sha256 digest")
        keys.append(
            ApiKey(str(entry.get("name", f"key-{n}")), _check_scopes(entry.get("scopes", []), where), entry["sha256"])
        )
    return keys


def write_keys_file(path: Path, keys: Iterable[ApiKey]) -> None:
    """Write the keys (digests only) atomically, readable by the owner alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    text = json.dumps({"keys": [key.as_json() for key in keys]}, indent=2) + "\n"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _env_keys(text: str) -> list[ApiKey]:
    keys = []
    for n, entry in enumerate(text.replace(",", " ").split()):
        scopes, _, secret = entry.rpartition(":")
        if not secret or not scopes:
            raise ValueError(f"{KEYS_ENV}: entry {n} must look like 'read+write:SECRET'")
        keys.append(ApiKey(f"env-{n}", _check_scopes(scopes.split("+"), f"{KEYS_ENV} entry {n}"), digest_of(secret)))
    return keys


def load_keys(path: Path | None = None, environ: Mapping[str, str] | None = None) -> KeyRing:
    """Keys from ``path`` (or the file named by :data:`KEYS_FILE_ENV`) and from :data:`KEYS_ENV`."""
    environ = os.environ if environ is None else environ
    keys: list[ApiKey] = []
    if path is None and environ.get(KEYS_FILE_ENV):
        path = Path(environ[KEYS_FILE_ENV])
    if path is not None:
        keys += read_keys_file(path)
    if environ.get(KEYS_ENV):
        keys += _env_keys(environ[KEYS_ENV])
    return KeyRing(keys)


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs; None for the public pages (web page, docs, health)."""
    if path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES):
        return None
    if method.upper() in _READ_METHODS or (method.upper() == "POST" and path in _READ_POSTS):
        return "read"
    return "write"


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    import ipaddress

    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    """``example.org:8000`` -> ``example.org``; ``[::1]:8000`` -> ``::1``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class AccessGuard:
    """Pure ASGI middleware: 400 for a ``Host`` not allowed; 401/403 without a key of the needed scope.

    ``allowed_hosts`` None lets every host through; ``keys`` empty turns keys off.
    """

    def __init__(self, app: App, keys: KeyRing, allowed_hosts: Iterable[str] | None = None) -> None:
        self.app = app
        self.keys = keys
        self.allowed_hosts = None if allowed_hosts is None else frozenset(_host_name(h) for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        host = _host_name(headers.get("host", ""))
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            shown = host[:100] or "(none)"
            detail = f"Host {shown!r} is not allowed (server option --allowed-host)"
            await _send_error(send, 400, "bad_request", detail)
            return
        needed = required_scope(scope.get("method", "GET"), scope.get("path", "/"))
        if self.keys and needed is not None:
            secret = _secret_of(headers, scope.get("method", "GET"))
            key = self.keys.find(secret) if secret else None
            if key is None:
                detail = "send an API key: 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
                if secret:
                    detail = "the API key is not valid"
                await _send_error(send, 401, "unauthorized", detail, [(b"www-authenticate", b"Bearer")])
                return
            if needed not in key.scopes:
                detail = f"the API key {key.name!r} lacks the {needed!r} scope this request needs"
                await _send_error(send, 403, "forbidden", detail)
                return
        await self.app(scope, receive, send)


def _secret_of(headers: Mapping[str, str], method: str) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    if headers.get("x-api-key"):
        return headers["x-api-key"].strip()
    if method.upper() in {"GET", "HEAD"} and "cookie" in headers:  # images on the web page
        try:
            cookie = SimpleCookie(headers["cookie"])
        except CookieError:
            return None
        morsel = cookie.get(COOKIE)
        return morsel.value if morsel is not None and morsel.value else None
    return None


async def _send_error(
    send: Send, status: int, code: str, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": code, "detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def api_key_dependencies() -> list[Any]:
    """Route dependencies that only declare the two ways to send a key, so the OpenAPI schema
    has security schemes and ``/docs`` an "Authorize" button; :class:`AccessGuard` checks keys."""
    from fastapi import Security
    from fastapi.security import APIKeyHeader, HTTPBearer

    header = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False)
    bearer = HTTPBearer(scheme_name="Bearer", auto_error=False)
    return [Security(header), Security(bearer)]


def access_environment(policy: AccessPolicy) -> str:
    """``policy`` as the JSON :func:`access_from_environment` reads (key digests, never secrets)."""
    return json.dumps(
        {
            "keys": [key.as_json() for key in policy.keys.keys],
            "allowed_hosts": None if policy.allowed_hosts is None else list(policy.allowed_hosts),
            "cors_origins": list(policy.cors_origins),
        }
    )


def access_from_environment(environ: Mapping[str, str] | None = None) -> AccessPolicy | None:
    """The policy a ``polyrec serve --workers N`` parent left in :data:`ACCESS_ENV`; None if none."""
    text = (os.environ if environ is None else environ).get(ACCESS_ENV)
    if not text:
        return None
    data = json.loads(text)
    keys = [ApiKey(entry["name"], frozenset(entry["scopes"]), entry["sha256"]) for entry in data["keys"]]
    hosts = data["allowed_hosts"]
    return AccessPolicy(KeyRing(keys), None if hosts is None else tuple(hosts), tuple(data["cors_origins"]))
