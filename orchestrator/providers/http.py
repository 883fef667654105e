"""The HTTP client layer every adapter shares: one keep-alive session per process and
the mapping of transport failures onto the port's error tree."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urljoin

import aiohttp
import yarl

from orchestrator.providers.port import OutcomeUnknown, ProviderUnavailable


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]  # case-insensitive when it comes from HttpClient
    body: bytes


REDIRECTS = frozenset({301, 302, 303, 307, 308})


class HttpClient:
    def __init__(self, base_url: str, *, connections: int = 64) -> None:
        self.base_url = base_url.rstrip("/")
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=None),  # the engine sets every deadline
            )
        return self._session

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> HttpAnswer:
        """`target` is a path (and query) under base_url, or a full URL the provider gave.
        Calls the engine runs carry its deadline; any other call (a download) sets one."""
        url = target if "://" in target else f"{self.base_url}{target}"
        return await self._send(method, url, body, headers, timeout_s)

    async def download(self, url: str, *, timeout_s: float, redirects: int = 5) -> HttpAnswer:
        """GET a file at a URL the provider gave, its bytes sent as given (not re-quoted:
        a query the provider signed must reach its server unchanged), following up to
        `redirects` redirects to http(s) URLs, each Location as given too."""
        for _ in range(redirects + 1):
            answer = await self._send("GET", yarl.URL(url, encoded=True), None, None, timeout_s)
            location = answer.headers.get("Location", "")
            if answer.status not in REDIRECTS or not location:
                return answer
            url = urljoin(url, location)
            if not url.startswith(("http://", "https://")):
                raise OutcomeUnknown(f"download redirected to {url!r}, not an http(s) URL")
        raise OutcomeUnknown(f"download redirected more than {redirects} times")

    async def _send(
        self,
        method: str,
        url: str | yarl.URL,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        timeout_s: float | None,
    ) -> HttpAnswer:
        try:
            async with self._client().request(
                method,
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                # A copy of aiohttp's multidict: header names stay case-insensitive.
                headers_read = response.headers.copy()
                return HttpAnswer(response.status, headers_read, await response.read())
        except aiohttp.ClientConnectorError as error:
            raise ProviderUnavailable(f"cannot connect to {url}: {error}") from error
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            # The request may have reached the provider: its effect is unknown.
            raise OutcomeUnknown(f"{method} {url} failed: {error!r}") from error

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


KeysT = TypeVar("KeysT")


class Adapter(Generic[KeysT]):
    """What every protocol adapter holds: its HTTP client, its keys (ours to sign, and
    what verifies the platform: each protocol has its own kind), the merchant id the
    provider knows us by, and a clock."""

    def __init__(
        self,
        http: HttpClient,
        keys: KeysT,
        merchant_id: str,
        clock: Callable[[], float] = time.time,
        *,
        notify_url: str = "",
    ) -> None:
        self._http = http
        self._keys = keys
        self._merchant_id = merchant_id
        self._clock = clock
        self._notify_url = notify_url  # where the provider posts its notifications
