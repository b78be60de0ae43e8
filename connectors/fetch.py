"""A polite, safe HTTP fetcher for news sources.

Polite: a per-host minimum interval, conditional requests (ETag / Last-Modified) so unchanged
feeds cost the publisher a 304, and an identifying User-Agent. Safe: timeouts, a cap on the
response size (read in chunks, aborted past the cap), and no requests to private, loopback or
link-local addresses unless the host is allowlisted — a feed URL from configuration must not
become a way to probe the internal network. Redirects are followed by hand so every hop is checked.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx


class FetchError(RuntimeError):
    """The resource could not be fetched; the message says why (never includes credentials)."""


class FetchRefused(FetchError):
    """The URL points somewhere this fetcher must not go."""


@dataclass(frozen=True)
class FetchPolicy:
    timeout_s: float = 10.0
    max_bytes: int = 5 * 1024 * 1024
    min_interval_s: float = 1.0
    allow_hosts: frozenset[str] = frozenset()
    user_agent: str = "finsent/0.1"
    max_redirects: int = 5


@dataclass
class FetchResult:
    url: str
    status: int
    content: bytes | None  # None when the server answered 304 Not Modified
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


Resolver = Callable[[str], Iterable[str]]


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve {host}: {exc}") from exc
    return [str(info[4][0]) for info in infos]


class PoliteFetcher:
    def __init__(self, policy: FetchPolicy, resolver: Resolver = _resolve) -> None:
        self._policy = policy
        self._resolver = resolver
        self._client = httpx.Client(
            timeout=policy.timeout_s, follow_redirects=False, headers={"User-Agent": policy.user_agent}
        )
        self._validators: dict[str, dict[str, str]] = {}
        self._last_request: dict[str, float] = {}
        self._lock = threading.Lock()

    def check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchRefused(f"only http and https URLs are fetched, not {parts.scheme or 'no scheme'!r}")
        host = (parts.hostname or "").lower()
        if not host:
            raise FetchRefused("URL has no host")
        if host in self._policy.allow_hosts:
            return
        for address in self._resolver(host):
            if address in self._policy.allow_hosts:
                continue
            if not _is_public(address):
                raise FetchRefused(f"{host} resolves to non-public address {address}; allowlist it to fetch")

    def _wait_turn(self, host: str) -> None:
        with self._lock:
            now = time.monotonic()
            ready_at = self._last_request.get(host, 0.0) + self._policy.min_interval_s
            self._last_request[host] = max(now, ready_at)
        if ready_at > now:
            time.sleep(ready_at - now)

    def get(self, url: str, headers: dict[str, str] | None = None) -> FetchResult:
        current = url
        for _hop in range(self._policy.max_redirects + 1):
            self.check_url(current)
            self._wait_turn(urlsplit(current).hostname or "")
            request_headers = {**self._validators.get(current, {}), **(headers or {})}
            try:
                with self._client.stream("GET", current, headers=request_headers) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    if response.status_code == 304:
                        return FetchResult(current, 304, None, dict(response.headers))
                    if response.status_code >= 400:
                        raise FetchError(f"GET {_redact(current)} answered HTTP {response.status_code}")
                    declared = int(response.headers.get("content-length") or 0)
                    if declared > self._policy.max_bytes:
                        raise FetchError(
                            f"response of {declared} bytes exceeds the {self._policy.max_bytes} limit"
                        )
                    content = self._read_capped(response)
                    self._remember_validators(current, response.headers)
                    return FetchResult(current, response.status_code, content, dict(response.headers))
            except httpx.HTTPError as exc:
                raise FetchError(f"GET {_redact(current)} failed: {type(exc).__name__}: {exc}") from exc
        raise FetchError(f"more than {self._policy.max_redirects} redirects from {_redact(url)}")

    def _read_capped(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self._policy.max_bytes:
                raise FetchError(f"response exceeds the {self._policy.max_bytes}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    def _remember_validators(self, url: str, headers: httpx.Headers) -> None:
        validators = {}
        if "etag" in headers:
            validators["If-None-Match"] = headers["etag"]
        if "last-modified" in headers:
            validators["If-Modified-Since"] = headers["last-modified"]
        if validators:
            self._validators[url] = validators

    def close(self) -> None:
        self._client.close()


def _redact(url: str) -> str:
    """URLs in errors and logs lose their credentials and query (API keys often live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
