"""How the SDK calls Relay's management API, sync and async: the rly- key, a timeout, retries
of 408/429/5xx and lost connections (honouring Retry-After), and RelayError for failures."""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from typing import Any, Dict, Mapping, Optional

import httpx2 as httpx

from ._errors import RelayError

#: The longest Retry-After the SDK waits for; a longer one is raised to the caller.
MAX_RETRY_AFTER = 60.0


def _retryable(status: int) -> bool:
    return status == 408 or status == 429 or status >= 500


def _retry_after(headers: Mapping[str, str]) -> Optional[float]:
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw) if raw else None
        return None if parsed is None else max(0.0, parsed.timestamp() - time.time())


def _delay(attempt: int, headers: Optional[Mapping[str, str]]) -> Optional[float]:
    """Seconds before the next attempt, or None when Relay asks for too long a wait."""
    asked = _retry_after(headers) if headers is not None else None
    if asked is not None:
        return None if asked > MAX_RETRY_AFTER else asked
    return min(0.5 * 2**attempt, 8.0) * (0.75 + random.random() * 0.25)


def _clean(query: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    return {k: str(v) for k, v in (query or {}).items() if v is not None}


def _answer(res: httpx.Response) -> Any:
    if res.is_success:
        try:
            return res.json()
        except ValueError:
            raise RelayError(
                f"Relay answered {res.status_code} with a body that is not JSON.",
                status=res.status_code,
                request_id=res.headers.get("x-relay-request-id"),
            ) from None
    raise RelayError.from_answer(res.status_code, res.headers, res.content)


def _no_answer(exc: Exception, timeout: float) -> RelayError:
    if isinstance(exc, httpx.TimeoutException):
        return RelayError(f"Relay did not answer within {timeout} s.", status=None, code="timeout")
    return RelayError("Could not reach Relay.", status=None, code="connection_error")


class _Settings:
    def __init__(self, base_url: str, key: str, timeout: float, max_retries: int, headers: Mapping[str, str]):
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.headers = {"accept": "application/json", **headers}
        self._auth = {"authorization": f"Bearer {key}"}

    def build(self, method: str, path: str, query: Optional[Mapping[str, Any]], body: Any, auth: bool) -> Dict[str, Any]:
        headers = dict(self.headers)
        if auth:
            headers.update(self._auth)
        content = None
        if body is not None:
            headers["content-type"] = "application/json"
            content = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        return {"method": method, "url": self.base_url + path, "params": _clean(query), "headers": headers, "content": content}

    def __repr__(self) -> str:
        return f"_Settings(base_url={self.base_url!r})"


class SyncHttp:
    def __init__(self, settings: _Settings, client: Optional[httpx.Client]):
        self.settings = settings
        self.client = client or httpx.Client(timeout=settings.timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Mapping[str, Any]] = None,
        body: Any = None,
        auth: bool = True,
    ) -> Any:
        req = self.settings.build(method, path, query, body, auth)
        attempt = 0
        while True:
            try:
                res = self.client.request(**req, timeout=self.settings.timeout)
            except httpx.TransportError as exc:
                if attempt >= self.settings.max_retries:
                    raise _no_answer(exc, self.settings.timeout) from None
                time.sleep(_delay(attempt, None) or 0)
                attempt += 1
                continue
            if not _retryable(res.status_code) or attempt >= self.settings.max_retries:
                return _answer(res)
            wait = _delay(attempt, res.headers)
            if wait is None:
                return _answer(res)
            time.sleep(wait)
            attempt += 1


class AsyncHttp:
    def __init__(self, settings: _Settings, client: Optional[httpx.AsyncClient]):
        self.settings = settings
        self.client = client or httpx.AsyncClient(timeout=settings.timeout)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Mapping[str, Any]] = None,
        body: Any = None,
        auth: bool = True,
    ) -> Any:
        req = self.settings.build(method, path, query, body, auth)
        attempt = 0
        while True:
            try:
                res = await self.client.request(**req, timeout=self.settings.timeout)
            except httpx.TransportError as exc:
                if attempt >= self.settings.max_retries:
                    raise _no_answer(exc, self.settings.timeout) from None
                await asyncio.sleep(_delay(attempt, None) or 0)
                attempt += 1
                continue
            if not _retryable(res.status_code) or attempt >= self.settings.max_retries:
                return _answer(res)
            wait = _delay(attempt, res.headers)
            if wait is None:
                return _answer(res)
            await asyncio.sleep(wait)
            attempt += 1
