"""``Relay`` (sync) and ``AsyncRelay``: OpenAI clients bound to one end user, and the management
API (users, tokens, usage, budgets, webhooks) as resources in snake_case."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Union

import httpx2 as httpx
import openai

from . import _routes as r
from ._http import AsyncHttp, SyncHttp, _Settings
from ._types import (
    Budget,
    BudgetScope,
    DeletedBudget,
    DeletedKey,
    DeletedUser,
    EndUser,
    GroupBy,
    Period,
    ProviderId,
    RegistrationToken,
    RegistrationTokenDescription,
    RevokedSessions,
    SessionToken,
    UsageReport,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookEndpointCreated,
    WebhookEndpointDeleted,
    WebhookEndpointList,
    WebhookEvent,
    WebhookEventType,
)
from ._webhooks import verify_webhook


class _Base:
    base_url: str

    def __init__(
        self,
        key: Optional[str],
        base_url: Optional[str],
        timeout: float,
        max_retries: int,
        default_headers: Optional[Mapping[str, str]],
    ) -> None:
        key = key or os.environ.get("RELAY_API_KEY")
        if not key:
            raise ValueError("No Relay API key: pass key=... or set RELAY_API_KEY.")
        self.__key = key
        self.base_url = (base_url or os.environ.get("RELAY_BASE_URL") or "http://localhost:8080").rstrip("/")
        self._settings = _Settings(self.base_url, key, timeout, max_retries, default_headers or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _openai_options(self, user: str, paid: Optional[bool], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        if not user:
            raise ValueError("openai() needs user=...")
        headers: Dict[str, str] = dict(kwargs.pop("default_headers", None) or {})
        headers["X-Relay-User"] = user
        if paid is not None:
            headers["X-Relay-Paid"] = "true" if paid else "false"
        return {**kwargs, "api_key": self.__key, "base_url": f"{self.base_url}/v1", "default_headers": headers}

    def openai(self, *, user: str, paid: Optional[bool] = None, **kwargs: Any) -> openai.OpenAI:
        """An ``openai.OpenAI`` whose every call is made for ``user``, through Relay's /v1.
        Other keyword arguments go to ``openai.OpenAI``."""
        return openai.OpenAI(**self._openai_options(user, paid, kwargs))

    def async_openai(self, *, user: str, paid: Optional[bool] = None, **kwargs: Any) -> openai.AsyncOpenAI:
        """The same as :meth:`openai`, as an ``openai.AsyncOpenAI``."""
        return openai.AsyncOpenAI(**self._openai_options(user, paid, kwargs))


class Relay(_Base):
    """Relay's management API, synchronous. ``key`` defaults to ``RELAY_API_KEY``, ``base_url``
    (without ``/v1``) to ``RELAY_BASE_URL``, else http://localhost:8080."""

    def __init__(
        self,
        key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        default_headers: Optional[Mapping[str, str]] = None,
        http_client: Optional[httpx.Client] = None,
    ) -> None:
        super().__init__(key, base_url, timeout, max_retries, default_headers)
        self._http = SyncHttp(self._settings, http_client)
        self.users = Users(self._http)
        self.registration_tokens = RegistrationTokens(self._http)
        self.session_tokens = SessionTokens(self._http)
        self.usage = Usage(self._http)
        self.budgets = Budgets(self._http)
        self.webhooks = Webhooks(self._http)

    def create_registration_token(
        self, *, user: str, provider: Optional[ProviderId] = None, expires_in: Optional[int] = None
    ) -> RegistrationToken:
        """A single-use token for the widget or connect page, to connect ``user``'s provider key."""
        return self.registration_tokens.create(user=user, provider=provider, expires_in=expires_in)

    def create_session_token(
        self, *, user: str, providers: Optional[List[ProviderId]] = None, expires_in: Optional[int] = None
    ) -> SessionToken:
        """A short-lived token for ``user``'s browser (sent as ``x-relay-token``)."""
        return self.session_tokens.create(user=user, providers=providers, expires_in=expires_in)

    def close(self) -> None:
        self._http.client.close()

    def __enter__(self) -> "Relay":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncRelay(_Base):
    """Relay's management API for asyncio; the same resources as :class:`Relay`, awaited."""

    def __init__(
        self,
        key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        default_headers: Optional[Mapping[str, str]] = None,
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        super().__init__(key, base_url, timeout, max_retries, default_headers)
        self._http = AsyncHttp(self._settings, http_client)
        self.users = AsyncUsers(self._http)
        self.registration_tokens = AsyncRegistrationTokens(self._http)
        self.session_tokens = AsyncSessionTokens(self._http)
        self.usage = AsyncUsage(self._http)
        self.budgets = AsyncBudgets(self._http)
        self.webhooks = AsyncWebhooks(self._http)

    async def create_registration_token(
        self, *, user: str, provider: Optional[ProviderId] = None, expires_in: Optional[int] = None
    ) -> RegistrationToken:
        return await self.registration_tokens.create(user=user, provider=provider, expires_in=expires_in)

    async def create_session_token(
        self, *, user: str, providers: Optional[List[ProviderId]] = None, expires_in: Optional[int] = None
    ) -> SessionToken:
        return await self.session_tokens.create(user=user, providers=providers, expires_in=expires_in)

    async def close(self) -> None:
        await self._http.client.aclose()

    async def __aenter__(self) -> "AsyncRelay":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


# Sync resources.


class RegistrationTokens:
    def __init__(self, http: SyncHttp) -> None:
        self._http = http

    def create(
        self, *, user: str, provider: Optional[ProviderId] = None, expires_in: Optional[int] = None
    ) -> RegistrationToken:
        return self._http.request(**r.registration_token(user, provider, expires_in))

    def describe(self, token: str) -> RegistrationTokenDescription:
        """What a token is for (public: the connect page asks this)."""
        return self._http.request(**r.describe_registration_token(token))


class SessionTokens:
    def __init__(self, http: SyncHttp) -> None:
        self._http = http

    def create(
        self, *, user: str, providers: Optional[List[ProviderId]] = None, expires_in: Optional[int] = None
    ) -> SessionToken:
        return self._http.request(**r.session_token(user, providers, expires_in))

    def revoke(self, user: str) -> RevokedSessions:
        return self._http.request(**r.revoke_sessions(user))


class UserBudget:
    def __init__(self, http: SyncHttp) -> None:
        self._http = http

    def retrieve(self, user: str) -> Budget:
        return self._http.request(**r.user_budget("GET", user))

    def set(self, user: str, *, limit_usd: float, period: Period, alert_at: Optional[float] = None) -> Budget:
        return self._http.request(**r.user_budget("PUT", user, limit_usd, period, alert_at))

    def delete(self, user: str) -> DeletedBudget:
        return self._http.request(**r.user_budget("DELETE", user))


class Users:
    def __init__(self, http: SyncHttp) -> None:
        self._http = http
        self.budget = UserBudget(http)

    def retrieve(self, user: str) -> EndUser:
        return self._http.request(**r.get_user(user))

    def delete(self, user: str) -> DeletedUser:
        """Erases the end user and everything stored for them."""
        return self._http.request(**r.delete_user(user))

    def delete_key(self, user: str, provider: ProviderId) -> DeletedKey:
        return self._http.request(**r.delete_key(user, provider))

    def revoke_sessions(self, user: str) -> RevokedSessions:
        return self._http.request(**r.revoke_sessions(user))


class Budgets:
    """The app's budget (``tenant``) and the default every end user gets (``end-user-default``)."""

    def __init__(self, http: SyncHttp) -> None:
        self._http = http

    def retrieve(self, scope: BudgetScope) -> Budget:
        return self._http.request(**r.budget("GET", scope))

    def set(self, scope: BudgetScope, *, limit_usd: float, period: Period, alert_at: Optional[float] = None) -> Budget:
        return self._http.request(**r.budget("PUT", scope, limit_usd, period, alert_at))

    def delete(self, scope: BudgetScope) -> DeletedBudget:
        return self._http.request(**r.budget("DELETE", scope))


class Usage:
    def __init__(self, http: SyncHttp) -> None:
        self._http = http

    def retrieve(
        self, *, user: Optional[str] = None, from_: r.When = None, to: r.When = None, group_by: Optional[GroupBy] = None
    ) -> UsageReport:
        return self._http.request(**r.usage(user, from_, to, group_by))


class _Verify:
    @staticmethod
    def verify(
        raw_body: Union[bytes, str], headers: Mapping[str, Any], secret: str, *, tolerance_seconds: int = 300
    ) -> WebhookEvent:
        """Checks a delivery's Standard Webhooks signature; returns its event or raises
        WebhookVerificationError."""
        return verify_webhook(raw_body, headers, secret, tolerance_seconds=tolerance_seconds)


class Webhooks(_Verify):
    def __init__(self, http: SyncHttp) -> None:
        self._http = http

    def create(
        self, *, url: str, events: Optional[List[WebhookEventType]] = None, description: Optional[str] = None
    ) -> WebhookEndpointCreated:
        """A new endpoint; its ``secret`` (``whsec_…``) is shown only in this answer."""
        return self._http.request(**r.create_webhook(url, events, description))

    def list(self) -> WebhookEndpointList:
        return self._http.request(**r.webhook("GET"))

    def retrieve(self, endpoint_id: str) -> WebhookEndpoint:
        return self._http.request(**r.webhook("GET", endpoint_id))

    def delete(self, endpoint_id: str) -> WebhookEndpointDeleted:
        return self._http.request(**r.webhook("DELETE", endpoint_id))

    def deliveries(self, endpoint_id: str, *, limit: Optional[int] = None) -> WebhookDeliveryList:
        return self._http.request(**r.webhook_deliveries(endpoint_id, limit))


# Async resources: the same calls, awaited.


class AsyncRegistrationTokens:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def create(
        self, *, user: str, provider: Optional[ProviderId] = None, expires_in: Optional[int] = None
    ) -> RegistrationToken:
        return await self._http.request(**r.registration_token(user, provider, expires_in))

    async def describe(self, token: str) -> RegistrationTokenDescription:
        return await self._http.request(**r.describe_registration_token(token))


class AsyncSessionTokens:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def create(
        self, *, user: str, providers: Optional[List[ProviderId]] = None, expires_in: Optional[int] = None
    ) -> SessionToken:
        return await self._http.request(**r.session_token(user, providers, expires_in))

    async def revoke(self, user: str) -> RevokedSessions:
        return await self._http.request(**r.revoke_sessions(user))


class AsyncUserBudget:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def retrieve(self, user: str) -> Budget:
        return await self._http.request(**r.user_budget("GET", user))

    async def set(self, user: str, *, limit_usd: float, period: Period, alert_at: Optional[float] = None) -> Budget:
        return await self._http.request(**r.user_budget("PUT", user, limit_usd, period, alert_at))

    async def delete(self, user: str) -> DeletedBudget:
        return await self._http.request(**r.user_budget("DELETE", user))


class AsyncUsers:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http
        self.budget = AsyncUserBudget(http)

    async def retrieve(self, user: str) -> EndUser:
        return await self._http.request(**r.get_user(user))

    async def delete(self, user: str) -> DeletedUser:
        return await self._http.request(**r.delete_user(user))

    async def delete_key(self, user: str, provider: ProviderId) -> DeletedKey:
        return await self._http.request(**r.delete_key(user, provider))

    async def revoke_sessions(self, user: str) -> RevokedSessions:
        return await self._http.request(**r.revoke_sessions(user))


class AsyncBudgets:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def retrieve(self, scope: BudgetScope) -> Budget:
        return await self._http.request(**r.budget("GET", scope))

    async def set(
        self, scope: BudgetScope, *, limit_usd: float, period: Period, alert_at: Optional[float] = None
    ) -> Budget:
        return await self._http.request(**r.budget("PUT", scope, limit_usd, period, alert_at))

    async def delete(self, scope: BudgetScope) -> DeletedBudget:
        return await self._http.request(**r.budget("DELETE", scope))


class AsyncUsage:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def retrieve(
        self, *, user: Optional[str] = None, from_: r.When = None, to: r.When = None, group_by: Optional[GroupBy] = None
    ) -> UsageReport:
        return await self._http.request(**r.usage(user, from_, to, group_by))


class AsyncWebhooks(_Verify):
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def create(
        self, *, url: str, events: Optional[List[WebhookEventType]] = None, description: Optional[str] = None
    ) -> WebhookEndpointCreated:
        return await self._http.request(**r.create_webhook(url, events, description))

    async def list(self) -> WebhookEndpointList:
        return await self._http.request(**r.webhook("GET"))

    async def retrieve(self, endpoint_id: str) -> WebhookEndpoint:
        return await self._http.request(**r.webhook("GET", endpoint_id))

    async def delete(self, endpoint_id: str) -> WebhookEndpointDeleted:
        return await self._http.request(**r.webhook("DELETE", endpoint_id))

    async def deliveries(self, endpoint_id: str, *, limit: Optional[int] = None) -> WebhookDeliveryList:
        return await self._http.request(**r.webhook_deliveries(endpoint_id, limit))
