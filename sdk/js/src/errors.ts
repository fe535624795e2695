// RelayError: what a failed call to Relay's management API throws. It carries Relay's error
// fields and request id, never the request itself (whose headers hold the rly- key).

/** A failed call: Relay's answer (4xx/5xx), or no answer at all (`status` null). */
export class RelayError extends Error {
  /** The HTTP status, or null when Relay did not answer (network error, timeout). */
  readonly status: number | null;
  /** Relay's stable code (`enduser_not_found`, `relay_key_invalid`, …), `timeout` or `connection_error`. */
  readonly code: string | null;
  /** The error class (`not_found_error`, `authentication_error`, …). */
  readonly type: string | null;
  /** The request field, header or parameter the error is about. */
  readonly param: string | null;
  /** `x-relay-request-id` of the answer: quote it when asking the operator. */
  readonly requestId: string | null;

  constructor(init: {
    message: string;
    status: number | null;
    code?: string | null;
    type?: string | null;
    param?: string | null;
    requestId?: string | null;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'RelayError';
    this.status = init.status;
    this.code = init.code ?? null;
    this.type = init.type ?? null;
    this.param = init.param ?? null;
    this.requestId = init.requestId ?? null;
  }
}

/** A webhook delivery whose signature, timestamp or headers do not check out. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}
