"""Relay's Python SDK: ``Relay(key=...)`` (and ``AsyncRelay``) for the management API, and
``.openai(user=...)`` / ``.async_openai(user=...)`` for OpenAI clients bound to one end user."""

from ._client import AsyncRelay, Relay
from ._errors import RelayError, WebhookVerificationError
from ._types import (
    Budget,
    EndUser,
    RegistrationToken,
    SessionToken,
    UsageReport,
    WebhookEndpoint,
    WebhookEndpointCreated,
    WebhookEvent,
)
from ._webhooks import verify_webhook

__all__ = [
    "AsyncRelay",
    "Budget",
    "EndUser",
    "Relay",
    "RelayError",
    "RegistrationToken",
    "SessionToken",
    "UsageReport",
    "WebhookEndpoint",
    "WebhookEndpointCreated",
    "WebhookEvent",
    "WebhookVerificationError",
    "verify_webhook",
]
