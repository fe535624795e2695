"""RelayError, what a failed management call raises: Relay's error fields and request id, never
the request itself (whose headers hold the rly- key); and the webhook verification error."""

from __future__ import annotations

from typing import Any, Optional


class RelayError(Exception):
    """A failed call: Relay's answer (4xx/5xx), or no answer at all (``status`` None)."""

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int],
        code: Optional[str] = None,
        type: Optional[str] = None,
        param: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        #: The HTTP status, or None when Relay did not answer (network error, timeout).
        self.status = status
        #: Relay's stable code (``enduser_not_found``, ``relay_key_invalid``, …), ``timeout``
        #: or ``connection_error``.
        self.code = code
        #: The error class (``not_found_error``, ``authentication_error``, …).
        self.type = type
        #: The request field, header or parameter the error is about.
        self.param = param
        #: ``x-relay-request-id`` of the answer: quote it when asking the operator.
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"RelayError(status={self.status!r}, code={self.code!r}, request_id={self.request_id!r}, message={self.message!r})"

    @classmethod
    def from_answer(cls, status: int, headers: Any, body: bytes) -> "RelayError":
        import json

        request_id = headers.get("x-relay-request-id") or headers.get("x-request-id")
        err: dict[str, Any] = {}
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                err = parsed["error"]
        except ValueError:
            pass

        def text(v: Any) -> Optional[str]:
            return v if isinstance(v, str) else None

        return cls(
            text(err.get("message")) or f"Relay answered {status}.",
            status=status,
            code=text(err.get("code")),
            type=text(err.get("type")),
            param=text(err.get("param")),
            request_id=request_id,
        )


class WebhookVerificationError(Exception):
    """A webhook delivery whose signature, timestamp or headers do not check out."""
