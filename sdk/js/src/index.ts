// Relay's JavaScript SDK: `new Relay({ key })`, OpenAI clients bound to one end user, and the
// management API (users, tokens, usage, budgets, webhooks) with typed requests and answers.

import { OpenAI } from 'openai';

import { Http, type RequestOptions } from './http.js';
import type { components, operations } from './generated/openapi.js';
import { verifyWebhook, type VerifyOptions, type WebhookEvent, type WebhookHeaders } from './webhooks.js';

export { RelayError, WebhookVerificationError } from './errors.js';
export type { RequestOptions } from './http.js';
export type { WebhookEvent, WebhookEventType, WebhookHeaders, VerifyOptions } from './webhooks.js';
export type { components, operations, paths } from './generated/openapi.js';

type Schemas = components['schemas'];
export type ProviderId = Schemas['ProviderId'];
export type RegistrationToken = Schemas['RegistrationToken'];
export type RegistrationTokenDescription = Schemas['RegistrationTokenDescription'];
export type SessionToken = Schemas['SessionToken'];
export type EndUser = Schemas['EndUser'];
export type DeletedUser = Schemas['DeletedUser'];
export type DeletedKey = Schemas['DeletedKey'];
export type RevokedSessions = Schemas['RevokedSessions'];
export type Budget = Schemas['Budget'];
export type BudgetRequest = Schemas['BudgetRequest'];
export type DeletedBudget = Schemas['DeletedBudget'];
export type UsageReport = Schemas['UsageReport'];
export type WebhookEndpoint = Schemas['WebhookEndpoint'];
export type WebhookEndpointCreated = Schemas['WebhookEndpointCreated'];
export type WebhookEndpointList = Schemas['WebhookEndpointList'];
export type WebhookEndpointDeleted = Schemas['WebhookEndpointDeleted'];
export type WebhookDeliveryList = Schemas['WebhookDeliveryList'];
export type UsageQuery = NonNullable<operations['getUsage']['parameters']['query']>;
/** `tenant` or `end-user-default`. */
export type BudgetScope = operations['getBudget']['parameters']['path']['scope'];

export interface RelayOptions {
  /** Your Relay API key, `rly-…` (default: the RELAY_API_KEY environment variable). */
  key?: string;
  /** Where Relay listens, without `/v1` (default: RELAY_BASE_URL, else http://localhost:8080). */
  baseURL?: string;
  /** Milliseconds per attempt of a management call (default 30 000). */
  timeout?: number;
  /** Retries of a management call after 408, 429, 5xx or a lost connection (default 2). */
  maxRetries?: number;
  /** A fetch of your own (default: the global fetch). */
  fetch?: typeof fetch;
  /** Headers sent with every management call. */
  defaultHeaders?: Record<string, string>;
}

/** What `relay.openai()` takes: the end user, and any OpenAI client option. */
export type OpenAIOptions = Omit<NonNullable<ConstructorParameters<typeof OpenAI>[0]>, 'apiKey' | 'baseURL'> & {
  /** The end user's label, sent as X-Relay-User. */
  user: string;
  /** The end user's tier, sent as X-Relay-Paid (absent: paid). */
  paid?: boolean;
};

export interface CreateRegistrationTokenParams {
  user: string;
  /** Locks the widget to this provider; omitted, the user picks. */
  provider?: ProviderId;
  /** Seconds until it expires: 60 to 86400 (default 900). */
  expiresIn?: number;
}

export interface CreateSessionTokenParams {
  user: string;
  /** Providers the token may act for; omitted: all. */
  providers?: ProviderId[];
  /** Seconds until it expires: 60 to 86400 (default 900). */
  expiresIn?: number;
}

export interface UsageParams {
  /** Only this end user's requests. */
  user?: string;
  /** Start (inclusive): an RFC 3339 time, a `YYYY-MM-DD` date or a Date. */
  from?: string | Date;
  /** End (exclusive), the same forms. */
  to?: string | Date;
  groupBy?: UsageQuery['groupBy'];
}

function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

const seg = (s: string) => encodeURIComponent(s);
const time = (t: string | Date | undefined) => (t instanceof Date ? t.toISOString() : t);

export class Relay {
  /** Where Relay listens, without `/v1`. */
  readonly baseURL: string;
  readonly users: Users;
  readonly registrationTokens: RegistrationTokens;
  readonly sessionTokens: SessionTokens;
  readonly usage: Usage;
  readonly budgets: Budgets;
  readonly webhooks: Webhooks;
  readonly #key: string;
  readonly #http: Http;

  constructor(options: RelayOptions = {}) {
    const key = options.key ?? env('RELAY_API_KEY');
    if (!key) throw new Error('No Relay API key: pass { key } or set RELAY_API_KEY.');
    this.#key = key;
    this.baseURL = (options.baseURL ?? env('RELAY_BASE_URL') ?? 'http://localhost:8080').replace(/\/+$/, '');
    const f = options.fetch ?? globalThis.fetch;
    this.#http = new Http({
      baseURL: this.baseURL,
      key,
      timeout: options.timeout ?? 30_000,
      maxRetries: options.maxRetries ?? 2,
      fetch: (input, init) => f(input, init),
      headers: options.defaultHeaders ?? {},
    });
    this.users = new Users(this.#http);
    this.registrationTokens = new RegistrationTokens(this.#http);
    this.sessionTokens = new SessionTokens(this.#http);
    this.usage = new Usage(this.#http);
    this.budgets = new Budgets(this.#http);
    this.webhooks = new Webhooks(this.#http);
  }

  /** An OpenAI client whose every call is made for `user`, through Relay's /v1. */
  openai(options: OpenAIOptions): OpenAI {
    const { user, paid, defaultHeaders, ...rest } = options;
    if (!user) throw new Error('relay.openai() needs { user }.');
    const headers: Record<string, string> = { 'X-Relay-User': user };
    if (paid !== undefined) headers['X-Relay-Paid'] = String(paid);
    return new OpenAI({
      ...rest,
      apiKey: this.#key,
      baseURL: `${this.baseURL}/v1`,
      defaultHeaders: { ...(defaultHeaders as Record<string, string> | undefined), ...headers },
    });
  }

  /** A single-use token for the widget or connect page, to connect `user`'s provider key. */
  createRegistrationToken(params: CreateRegistrationTokenParams, options?: RequestOptions): Promise<RegistrationToken> {
    return this.registrationTokens.create(params, options);
  }

  /** A short-lived token for `user`'s browser (sent as `x-relay-token`). */
  createSessionToken(params: CreateSessionTokenParams, options?: RequestOptions): Promise<SessionToken> {
    return this.sessionTokens.create(params, options);
  }

  /** Keeps the key out of console.log and JSON. */
  toJSON(): Record<string, unknown> {
    return { baseURL: this.baseURL };
  }
}

export class RegistrationTokens {
  constructor(private readonly http: Http) {}

  create(params: CreateRegistrationTokenParams, options?: RequestOptions): Promise<RegistrationToken> {
    const body: Schemas['RegistrationTokenRequest'] = {
      endUserLabel: params.user,
      provider: params.provider,
      expiresIn: params.expiresIn,
    };
    return this.http.request('POST', '/v1/registration-tokens', { body }, options);
  }

  /** What a token is for (public: the connect page asks this). */
  describe(token: string, options?: RequestOptions): Promise<RegistrationTokenDescription> {
    return this.http.request('GET', `/v1/connect/${seg(token)}`, { auth: false }, options);
  }
}

export class SessionTokens {
  constructor(private readonly http: Http) {}

  create(params: CreateSessionTokenParams, options?: RequestOptions): Promise<SessionToken> {
    const body: Schemas['SessionTokenRequest'] = {
      endUserLabel: params.user,
      providers: params.providers,
      expiresIn: params.expiresIn,
    };
    return this.http.request('POST', '/v1/session-tokens', { body }, options);
  }

  /** Revokes every session token `user` holds. */
  revoke(user: string, options?: RequestOptions): Promise<RevokedSessions> {
    return this.http.request('POST', `/v1/users/${seg(user)}/sessions/revoke`, {}, options);
  }
}

export class Users {
  readonly budget: UserBudget;

  constructor(private readonly http: Http) {
    this.budget = new UserBudget(http);
  }

  /** The end user, their stored keys (fingerprints only) and tier. */
  retrieve(user: string, options?: RequestOptions): Promise<EndUser> {
    return this.http.request('GET', `/v1/users/${seg(user)}`, {}, options);
  }

  /** Erases the end user and everything stored for them. */
  del(user: string, options?: RequestOptions): Promise<DeletedUser> {
    return this.http.request('DELETE', `/v1/users/${seg(user)}`, {}, options);
  }

  /** Deletes one stored provider key of the end user. */
  deleteKey(user: string, provider: ProviderId, options?: RequestOptions): Promise<DeletedKey> {
    return this.http.request('DELETE', `/v1/users/${seg(user)}/keys/${seg(provider)}`, {}, options);
  }

  /** Revokes every session token the end user holds. */
  revokeSessions(user: string, options?: RequestOptions): Promise<RevokedSessions> {
    return this.http.request('POST', `/v1/users/${seg(user)}/sessions/revoke`, {}, options);
  }
}

/** One end user's own budget. */
export class UserBudget {
  constructor(private readonly http: Http) {}

  retrieve(user: string, options?: RequestOptions): Promise<Budget> {
    return this.http.request('GET', `/v1/users/${seg(user)}/budget`, {}, options);
  }

  set(user: string, budget: BudgetRequest, options?: RequestOptions): Promise<Budget> {
    return this.http.request('PUT', `/v1/users/${seg(user)}/budget`, { body: budget }, options);
  }

  del(user: string, options?: RequestOptions): Promise<DeletedBudget> {
    return this.http.request('DELETE', `/v1/users/${seg(user)}/budget`, {}, options);
  }
}

/** The app's budget (`tenant`) and the default every end user gets (`end-user-default`). */
export class Budgets {
  constructor(private readonly http: Http) {}

  retrieve(scope: BudgetScope, options?: RequestOptions): Promise<Budget> {
    return this.http.request('GET', `/v1/budgets/${seg(scope)}`, {}, options);
  }

  set(scope: BudgetScope, budget: BudgetRequest, options?: RequestOptions): Promise<Budget> {
    return this.http.request('PUT', `/v1/budgets/${seg(scope)}`, { body: budget }, options);
  }

  del(scope: BudgetScope, options?: RequestOptions): Promise<DeletedBudget> {
    return this.http.request('DELETE', `/v1/budgets/${seg(scope)}`, {}, options);
  }
}

export class Usage {
  constructor(private readonly http: Http) {}

  /** Requests, tokens, cost and latency, grouped by day, model, provider or end user. */
  retrieve(params: UsageParams = {}, options?: RequestOptions): Promise<UsageReport> {
    const query: UsageQuery = {
      endUserLabel: params.user,
      from: time(params.from),
      to: time(params.to),
      groupBy: params.groupBy,
    };
    return this.http.request('GET', '/v1/usage', { query }, options);
  }
}

export class Webhooks {
  constructor(private readonly http: Http) {}

  /** A new endpoint; its `secret` (`whsec_…`) is shown only in this answer. */
  create(params: Schemas['CreateEndpointBody'], options?: RequestOptions): Promise<WebhookEndpointCreated> {
    return this.http.request('POST', '/v1/webhook-endpoints', { body: params }, options);
  }

  list(options?: RequestOptions): Promise<WebhookEndpointList> {
    return this.http.request('GET', '/v1/webhook-endpoints', {}, options);
  }

  retrieve(id: string, options?: RequestOptions): Promise<WebhookEndpoint> {
    return this.http.request('GET', `/v1/webhook-endpoints/${seg(id)}`, {}, options);
  }

  del(id: string, options?: RequestOptions): Promise<WebhookEndpointDeleted> {
    return this.http.request('DELETE', `/v1/webhook-endpoints/${seg(id)}`, {}, options);
  }

  /** The endpoint's deliveries, newest first. */
  deliveries(id: string, params: { limit?: number } = {}, options?: RequestOptions): Promise<WebhookDeliveryList> {
    return this.http.request('GET', `/v1/webhook-endpoints/${seg(id)}/deliveries`, { query: params }, options);
  }

  /** Checks a delivery's Standard Webhooks signature; returns its event or throws WebhookVerificationError. */
  verify(
    rawBody: string | Uint8Array | ArrayBuffer,
    headers: WebhookHeaders,
    secret: string,
    options?: VerifyOptions,
  ): Promise<WebhookEvent> {
    return verifyWebhook(rawBody, headers, secret, options);
  }
}

export { verifyWebhook };
export default Relay;
