"""Each management call of Relay as (method, path, query, body), built once and shared by the
sync and async clients, so the two can never disagree on a path or a field name."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Dict, List, Optional, Union
from urllib.parse import quote

from ._types import BudgetScope, GroupBy, ProviderId, WebhookEventType

Route = Dict[str, Any]
When = Union[str, datetime, date, None]


def _seg(s: str) -> str:
    return quote(s, safe="")


def _when(t: When) -> Optional[str]:
    return t.isoformat() if isinstance(t, (datetime, date)) else t


def registration_token(user: str, provider: Optional[ProviderId], expires_in: Optional[int]) -> Route:
    body = {"endUserLabel": user, "provider": provider, "expiresIn": expires_in}
    return {"method": "POST", "path": "/v1/registration-tokens", "body": body}


def describe_registration_token(token: str) -> Route:
    return {"method": "GET", "path": f"/v1/connect/{_seg(token)}", "auth": False}


def session_token(user: str, providers: Optional[List[ProviderId]], expires_in: Optional[int]) -> Route:
    body = {"endUserLabel": user, "providers": providers, "expiresIn": expires_in}
    return {"method": "POST", "path": "/v1/session-tokens", "body": body}


def revoke_sessions(user: str) -> Route:
    return {"method": "POST", "path": f"/v1/users/{_seg(user)}/sessions/revoke"}


def get_user(user: str) -> Route:
    return {"method": "GET", "path": f"/v1/users/{_seg(user)}"}


def delete_user(user: str) -> Route:
    return {"method": "DELETE", "path": f"/v1/users/{_seg(user)}"}


def delete_key(user: str, provider: ProviderId) -> Route:
    return {"method": "DELETE", "path": f"/v1/users/{_seg(user)}/keys/{_seg(provider)}"}


def _budget_body(limit_usd: float, period: str, alert_at: Optional[float]) -> Dict[str, Any]:
    return {"limitUsd": limit_usd, "period": period, "alertAt": alert_at}


def user_budget(method: str, user: str, limit_usd: float = 0, period: str = "", alert_at: Optional[float] = None) -> Route:
    route: Route = {"method": method, "path": f"/v1/users/{_seg(user)}/budget"}
    if method == "PUT":
        route["body"] = _budget_body(limit_usd, period, alert_at)
    return route


def budget(method: str, scope: BudgetScope, limit_usd: float = 0, period: str = "", alert_at: Optional[float] = None) -> Route:
    route: Route = {"method": method, "path": f"/v1/budgets/{_seg(scope)}"}
    if method == "PUT":
        route["body"] = _budget_body(limit_usd, period, alert_at)
    return route


def usage(user: Optional[str], from_: When, to: When, group_by: Optional[GroupBy]) -> Route:
    query = {"endUserLabel": user, "from": _when(from_), "to": _when(to), "groupBy": group_by}
    return {"method": "GET", "path": "/v1/usage", "query": query}


def create_webhook(url: str, events: Optional[List[WebhookEventType]], description: Optional[str]) -> Route:
    body = {"url": url, "events": events, "description": description}
    return {"method": "POST", "path": "/v1/webhook-endpoints", "body": body}


def webhook(method: str, endpoint_id: Optional[str] = None) -> Route:
    path = "/v1/webhook-endpoints" + ("" if endpoint_id is None else f"/{_seg(endpoint_id)}")
    return {"method": method, "path": path}


def webhook_deliveries(endpoint_id: str, limit: Optional[int]) -> Route:
    return {"method": "GET", "path": f"/v1/webhook-endpoints/{_seg(endpoint_id)}/deliveries", "query": {"limit": limit}}
