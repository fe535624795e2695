"""The shapes of Relay's answers as TypedDicts, mirroring openapi/openapi.json's schemas (keys
as Relay sends them, camelCase), so editors and type checkers know every field."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, TypedDict

ProviderId = Literal["openai", "anthropic", "google", "groq", "mistral", "openrouter", "openai-compatible"]
WebhookEventType = Literal[
    "key.connected", "key.removed", "key.invalid", "budget.threshold", "budget.exceeded", "user.erased"
]
GroupBy = Literal["day", "model", "provider", "endUser"]
Period = Literal["day", "month"]
BudgetScope = Literal["tenant", "end-user-default"]


class RegistrationToken(TypedDict):
    registrationToken: str
    endUserLabel: str
    provider: Optional[ProviderId]
    expiresAt: str


class RegistrationTokenDescription(TypedDict):
    appId: str
    appName: str
    provider: Optional[ProviderId]
    providers: List[ProviderId]
    expiresAt: str


class SessionToken(TypedDict):
    sessionToken: str
    endUserLabel: str
    providers: Optional[List[ProviderId]]
    expiresAt: str


class StoredKey(TypedDict):
    provider: ProviderId
    fingerprint: str
    createdAt: str
    lastUsedAt: Optional[str]
    monthlyCapUsd: Optional[float]
    spentThisMonthUsd: float
    status: str
    statusReason: Optional[str]
    statusAt: Optional[str]


class EndUser(TypedDict):
    endUserLabel: str
    providers: List[StoredKey]
    paid: bool


class DeletedUser(TypedDict):
    endUserLabel: str
    deleted: bool


class DeletedKey(TypedDict):
    endUserLabel: str
    provider: ProviderId
    deleted: bool


class RevokedSessions(TypedDict):
    endUserLabel: str
    revoked: bool


class Budget(TypedDict):
    scope: str
    endUserLabel: Optional[str]
    limitUsd: float
    period: str
    alertAt: float
    spentUsd: Optional[float]
    periodStart: str
    resetsAt: str
    createdAt: str
    updatedAt: str


class DeletedBudget(TypedDict):
    scope: str
    deleted: bool


class LatencyMs(TypedDict):
    p50: int
    p95: int


class UsageBucket(TypedDict):
    key: str
    requests: int
    errors: int
    promptTokens: int
    completionTokens: int
    costUsd: float
    unpricedCalls: int
    latencyMs: LatencyMs


# `from` is a Python keyword, hence the functional form.
UsageReport = TypedDict(
    "UsageReport",
    {
        "object": str,
        "groupBy": GroupBy,
        "from": str,
        "to": str,
        "endUserLabel": Optional[str],
        "total": UsageBucket,
        "data": List[UsageBucket],
    },
)


class WebhookEndpoint(TypedDict):
    id: str
    url: str
    events: Optional[List[WebhookEventType]]
    description: Optional[str]
    createdAt: str


class WebhookEndpointCreated(WebhookEndpoint):
    secret: str


class WebhookEndpointList(TypedDict):
    data: List[WebhookEndpoint]


class WebhookEndpointDeleted(TypedDict):
    id: str
    deleted: bool


class WebhookDelivery(TypedDict):
    eventId: str
    type: WebhookEventType
    status: str
    attempts: int
    lastStatus: Optional[int]
    lastError: Optional[str]
    lastAttemptAt: Optional[str]
    nextAttemptAt: Optional[str]
    createdAt: str


class WebhookDeliveryList(TypedDict):
    data: List[WebhookDelivery]


class WebhookEvent(TypedDict):
    """The body of every delivery."""

    type: WebhookEventType
    timestamp: str
    data: Dict[str, Any]
