// The one way the SDK calls Relay's management API: fetch with the rly- key, a timeout per
// attempt, retries of 408/429/5xx and lost connections (honouring Retry-After), and RelayError.

import { RelayError } from './errors.js';

/** Per-call overrides of the client's settings. */
export interface RequestOptions {
  /** Milliseconds per attempt before giving up on it. */
  timeout?: number;
  /** Retries after the first attempt. */
  maxRetries?: number;
  /** Cancels the call (and its retries). */
  signal?: AbortSignal;
}

export interface HttpSettings {
  baseURL: string;
  key: string;
  timeout: number;
  maxRetries: number;
  fetch: typeof fetch;
  headers: Record<string, string>;
}

type Query = Record<string, string | number | undefined | null>;

/** The longest Retry-After the SDK waits for; a longer one is thrown to the caller. */
const MAX_RETRY_AFTER_MS = 60_000;

export class Http {
  constructor(private readonly settings: HttpSettings) {}

  async request<T>(
    method: string,
    path: string,
    init: { query?: Query; body?: unknown; auth?: boolean } = {},
    options: RequestOptions = {},
  ): Promise<T> {
    const url = new URL(this.settings.baseURL.replace(/\/+$/, '') + path);
    for (const [k, v] of Object.entries(init.query ?? {})) {
      if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { accept: 'application/json', ...this.settings.headers };
    if (init.auth !== false) headers.authorization = `Bearer ${this.settings.key}`;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    const body = init.body === undefined ? undefined : JSON.stringify(init.body);
    const maxRetries = options.maxRetries ?? this.settings.maxRetries;
    const timeout = options.timeout ?? this.settings.timeout;

    for (let attempt = 0; ; attempt++) {
      const outcome = await this.attempt(method, url, headers, body, timeout, options.signal);
      const retryable = outcome instanceof Response ? isRetryable(outcome.status) : outcome.retryable;
      if (!retryable || attempt >= maxRetries) {
        if (outcome instanceof Response) return (await readAnswer(outcome)) as T;
        throw outcome.error;
      }
      const wait = delayBefore(attempt, outcome instanceof Response ? outcome.headers : null);
      if (wait === null) return (await readAnswer(outcome as Response)) as T;
      if (outcome instanceof Response) await outcome.body?.cancel().catch(() => undefined);
      await sleep(wait, options.signal);
    }
  }

  private async attempt(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: string | undefined,
    timeout: number,
    signal: AbortSignal | undefined,
  ): Promise<Response | { error: RelayError; retryable: boolean }> {
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeout);
    try {
      const res = await this.settings.fetch(url, { method, headers, body, signal: controller.signal });
      // Read the body under the same deadline.
      const text = await res.text();
      return new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers });
    } catch (cause) {
      if (signal?.aborted) {
        return { error: new RelayError({ message: 'The request was cancelled.', status: null, code: 'aborted', cause }), retryable: false };
      }
      if (timedOut) {
        return {
          error: new RelayError({ message: `Relay did not answer within ${timeout} ms.`, status: null, code: 'timeout' }),
          retryable: true,
        };
      }
      return {
        error: new RelayError({ message: 'Could not reach Relay.', status: null, code: 'connection_error', cause }),
        retryable: true,
      };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

function isRetryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Milliseconds to wait before the next attempt, or null when Relay asks for too long a wait. */
function delayBefore(attempt: number, headers: Headers | null): number | null {
  const asked = headers ? retryAfterMs(headers) : null;
  if (asked !== null) return asked > MAX_RETRY_AFTER_MS ? null : asked;
  const base = Math.min(500 * 2 ** attempt, 8_000);
  return base * (0.75 + Math.random() * 0.25);
}

function retryAfterMs(headers: Headers): number | null {
  const ms = Number(headers.get('retry-after-ms') ?? NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const raw = headers.get('retry-after');
  if (raw === null) return null;
  const secs = Number(raw);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new RelayError({ message: 'The request was cancelled.', status: null, code: 'aborted' }));
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new RelayError({ message: 'The request was cancelled.', status: null, code: 'aborted' }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The parsed JSON of a 2xx answer; RelayError for anything else. */
async function readAnswer(res: Response): Promise<unknown> {
  const requestId = res.headers.get('x-relay-request-id') ?? res.headers.get('x-request-id');
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text === '' ? null : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (res.ok) {
    if (parsed === undefined) {
      throw new RelayError({ message: `Relay answered ${res.status} with a body that is not JSON.`, status: res.status, requestId });
    }
    return parsed;
  }
  const err = (parsed as { error?: Record<string, unknown> } | undefined)?.error;
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  throw new RelayError({
    message: str(err?.message) ?? `Relay answered ${res.status}.`,
    status: res.status,
    code: str(err?.code),
    type: str(err?.type),
    param: str(err?.param),
    requestId,
  });
}
