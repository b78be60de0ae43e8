"""A polite, safe HTTP fetcher for news sources and article pages.

Polite: a per-host minimum interval (raised per host by a robots.txt crawl-delay), conditional
requests (ETag / Last-Modified) so unchanged pages cost the publisher a 304, and an identifying
User-Agent. Safe: timeouts, a cap on the response size (read in chunks, aborted past the cap) and
on the whole response time (a server dripping one byte a second would otherwise hold a worker
forever), and no requests to private, loopback or link-local addresses unless the host is
allowlisted — a URL from a feed must not become a way to probe the internal network.

The address that passed the check is the one connected to: the request goes to that IP with the
original `Host` header and TLS server name. Resolving once to check and letting the HTTP client
resolve again to connect would leave a DNS-rebinding window (a name that answers a public
address to the check and 127.0.0.1 to the connection). Redirects are followed by hand so every
hop is checked and pinned the same way.
"""

from __future__ import annotations

import email.utils
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx


class FetchError(RuntimeError):
    """The resource could not be fetched; the message says why (never includes credentials).

    `code` is a stable reason for metrics and dead letters; `retryable` says whether trying again
    later can help (a 503 or a timeout can, a 404 cannot).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "fetch_failed",
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class FetchRefused(FetchError):
    """The URL points somewhere this fetcher must not go."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="refused_address")


@dataclass(frozen=True)
class FetchPolicy:
    timeout_s: float = 10.0
    max_bytes: int = 5 * 1024 * 1024
    min_interval_s: float = 1.0
    allow_hosts: frozenset[str] = frozenset()
    user_agent: str = "finsent/0.1"
    max_redirects: int = 5
    max_total_s: float = 30.0  # the whole response, first byte to last


@dataclass
class FetchResult:
    url: str  # after redirects
    status: int
    content: bytes | None  # None when the server answered 304 Not Modified
    headers: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


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
        raise FetchError(f"cannot resolve {host}: {exc}", code="dns_failed", retryable=True) from exc
    return [str(info[4][0]) for info in infos]


def _status_error(url: str, status: int, headers: httpx.Headers) -> FetchError:
    message = f"GET {redact(url)} answered HTTP {status}"
    if status in (404, 410):
        return FetchError(message, code="not_found" if status == 404 else "gone", status=status)
    if status == 429:
        return FetchError(
            message,
            code="rate_limited",
            status=status,
            retryable=True,
            retry_after_s=_retry_after(headers.get("retry-after")),
        )
    if status >= 500:
        return FetchError(
            message,
            code="server_error",
            status=status,
            retryable=True,
            retry_after_s=_retry_after(headers.get("retry-after")),
        )
    return FetchError(message, code="http_error", status=status)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class PoliteFetcher:
    def __init__(self, policy: FetchPolicy, resolver: Resolver = _resolve) -> None:
        self._policy = policy
        self._resolver = resolver
        self._client = httpx.Client(
            timeout=policy.timeout_s, follow_redirects=False, headers={"User-Agent": policy.user_agent}
        )
        self._validators: dict[str, dict[str, str]] = {}
        self._last_request: dict[str, float] = {}
        self._host_interval: dict[str, float] = {}
        self._not_before = 0.0  # no host is requested before this moment (see hold_all_hosts)
        self._lock = threading.Lock()

    @property
    def user_agent(self) -> str:
        return self._policy.user_agent

    def interval(self, host: str) -> float:
        return self._host_interval.get(host.lower(), self._policy.min_interval_s)

    def set_min_interval(self, host: str, seconds: float) -> None:
        """A longer interval for one host (a robots.txt crawl-delay); never shorter than the policy's."""
        with self._lock:
            self._host_interval[host.lower()] = max(self._policy.min_interval_s, seconds)

    def hold_all_hosts(self, seconds: float) -> None:
        """Request no host for `seconds` from now.

        Called when this process takes over hosts from another one (a consumer-group rebalance): the
        previous owner may have requested a page a moment ago, and this process knows neither when
        nor the host's robots.txt crawl-delay yet (reading robots.txt is itself a request), so it
        waits out the longest interval it is configured to expect.
        """
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)

    def check_url(self, url: str) -> str:
        """The address to connect to for `url`'s host, once every address it resolves to is allowed."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchRefused(f"only http and https URLs are fetched, not {parts.scheme or 'no scheme'!r}")
        host = (parts.hostname or "").lower()
        if not host:
            raise FetchRefused("URL has no host")
        addresses = list(self._resolver(host))
        if not addresses:
            raise FetchError(f"{host} resolves to no address", code="dns_failed", retryable=True)
        if host not in self._policy.allow_hosts:
            for address in addresses:
                if address in self._policy.allow_hosts:
                    continue
                if not _is_public(address):
                    raise FetchRefused(
                        f"{host} resolves to non-public address {address}; allowlist it to fetch"
                    )
        return addresses[0]

    def _wait_turn(self, host: str) -> None:
        """Sleep until `host` may be requested again, and reserve that moment for this request."""
        with self._lock:
            now = time.monotonic()
            last = self._last_request.get(host)
            ready_at = max(now, self._not_before, last + self.interval(host) if last is not None else now)
            self._last_request[host] = ready_at
        if ready_at > now:
            time.sleep(ready_at - now)

    def _finished_with(self, host: str) -> None:
        """Count `host`'s interval from the end of the response just read, not from its reserved slot.

        A reserved slot is when the request was *meant* to leave; on a loaded machine it can leave
        late (thread scheduling, a slow DNS answer, TLS) while the next one leaves on time, and the
        server then sees two requests closer than the interval. Measuring from the end of the
        previous response makes the gap the server observes at least the interval, whatever the
        send jitter.
        """
        with self._lock:
            self._last_request[host] = max(self._last_request.get(host, 0.0), time.monotonic())

    def get(
        self, url: str, headers: dict[str, str] | None = None, *, accept: frozenset[str] | None = None
    ) -> FetchResult:
        """GET `url`; with `accept`, a response of another content type is refused before its body
        is read (an article link that serves a 40 MB video costs one header, not the download)."""
        started = time.monotonic()
        current = url
        for _hop in range(self._policy.max_redirects + 1):
            address = self.check_url(current)
            parts = urlsplit(current)
            host = (parts.hostname or "").lower()
            self._wait_turn(host)
            request_headers = {
                "Host": parts.netloc.rsplit("@", 1)[-1],
                **self._validators.get(current, {}),
                **(headers or {}),
            }
            try:
                with self._client.stream(
                    "GET",
                    _pinned(current, address),
                    headers=request_headers,
                    extensions={"sni_hostname": host},
                ) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    if response.status_code == 304:
                        return FetchResult(
                            current, 304, None, dict(response.headers), time.monotonic() - started
                        )
                    if response.status_code >= 400:
                        raise _status_error(current, response.status_code, response.headers)
                    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    if accept is not None and content_type and content_type not in accept:
                        raise FetchError(
                            f"GET {redact(current)} is {content_type}, not one of {sorted(accept)}",
                            code="not_html",
                            status=response.status_code,
                        )
                    declared = int(response.headers.get("content-length") or 0)
                    if declared > self._policy.max_bytes:
                        raise FetchError(
                            f"response of {declared} bytes exceeds the {self._policy.max_bytes} limit",
                            code="too_large",
                        )
                    content = self._read_capped(response, started)
                    self._remember_validators(current, response.headers)
                    return FetchResult(
                        current,
                        response.status_code,
                        content,
                        dict(response.headers),
                        time.monotonic() - started,
                    )
            except httpx.TimeoutException as exc:
                raise FetchError(
                    f"GET {redact(current)} timed out: {type(exc).__name__}", code="timeout", retryable=True
                ) from exc
            except httpx.HTTPError as exc:
                raise FetchError(
                    f"GET {redact(current)} failed: {type(exc).__name__}: {exc}",
                    code="connection_failed",
                    retryable=True,
                ) from exc
            finally:
                self._finished_with(host)
        raise FetchError(
            f"more than {self._policy.max_redirects} redirects from {redact(url)}", code="redirects"
        )

    def _read_capped(self, response: httpx.Response, started: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        deadline = started + self._policy.max_total_s
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self._policy.max_bytes:
                raise FetchError(
                    f"response exceeds the {self._policy.max_bytes}-byte limit", code="too_large"
                )
            if time.monotonic() > deadline:
                raise FetchError(
                    f"response took longer than {self._policy.max_total_s:g} s",
                    code="timeout",
                    retryable=True,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _remember_validators(self, url: str, headers: httpx.Headers) -> None:
        validators = {}
        if "etag" in headers:
            validators["If-None-Match"] = headers["etag"]
        if "last-modified" in headers:
            validators["If-Modified-Since"] = headers["last-modified"]
        if validators:
            with self._lock:
                self._validators[url] = validators

    def close(self) -> None:
        self._client.close()


def _pinned(url: str, address: str) -> str:
    """`url` with its host replaced by the checked address (credentials are never sent)."""
    parts = urlsplit(url)
    ip = ipaddress.ip_address(address)
    host = f"[{address}]" if ip.version == 6 else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def redact(url: str) -> str:
    """URLs in errors and logs lose their credentials and query (API keys often live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
