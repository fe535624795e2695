//! Relay: a self-hosted, multi-tenant vault and relay for bring-your-own-key AI apps.
//!
//! The map, in reading order:
//! - `startup` assembles the server: the services, each registered on its own for the handlers
//!   that take it (`web::Data<…>`), and the middleware (`telemetry`, `browser`, `auth`).
//! - `routes` is the HTTP surface, one file per resource; handlers stay thin.
//! - `auth` says who is calling: `rly-` keys (middleware, deny by default), session tokens, and
//!   `Caller`, the extractor that resolves the end user a provider call is for and admits it.
//! - `gateway` is the unified API (chat, embeddings, models); `passthrough` the raw
//!   `/relay/{provider}/…`. Both reach providers through `upstream`, the one way there: key
//!   opened and injected, target, timeouts, errors, masking, metrics, usage records, and the
//!   key's health as the provider's answer shows it.
//! - `providers` holds one definition per provider (`Provider`: URL, auth, key format, paths,
//!   routing, dialect) and the translators; nothing outside it matches on a provider.
//! - `keys` connects, opens (refusing a key marked `invalid`) and rotates provider keys; `vault`
//!   is the envelope encryption under master keys held locally or in AWS KMS; `store` the
//!   PostgreSQL and SQLite persistence (behind `store::cached`).
//! - `pricing` is the price table and what a call cost; `upstream` prices each usage record;
//!   `budgets` admits a call while the limits that apply to it have room.
//! - Beside them: `domain` (values parsed at the edge: rates and limits, money, key status),
//!   `ratelimit`, `browser` (CORS, client addresses), `audit`, `usage_log`, `metrics`, `ssrf`,
//!   `sse`, `config`, `cli`, `hardening` (core dumps off), `client_limits` (body deadline,
//!   connection cap).
//! - `retention` prunes expired usage events, daily usage roll-ups and spend counters in small
//!   batches; `store::usage` holds the roll-ups `routes::usage` reads for whole days.
//! - `console` owns the console's accounts (Argon2id passwords), sessions, invites and roles;
//!   `auth::console` authenticates its requests (session cookie, CSRF token, same-origin check)
//!   and `routes::console_*` serve its JSON API and its pages (embedded from `console/`).
//! - `webhooks` owns signed webhooks: endpoints, `Webhooks::emit` (called after an action, like
//!   `audit::record`), the durable outbox's delivery worker, and signing.
//!
//! Dependencies point down this list: nothing below `routes` imports `startup`, and
//! `tests/tests/architecture.rs` keeps it so.

pub mod audit;
pub mod auth;
pub mod browser;
pub mod budgets;
pub mod cli;
pub mod client_limits;
pub mod config;
pub mod console;
pub mod domain;
pub mod error;
pub mod gateway;
pub mod hardening;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod passthrough;
pub mod pricing;
pub mod providers;
pub mod ratelimit;
pub mod retention;
pub mod routes;
pub mod sse;
pub mod ssrf;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod upstream;
pub mod usage_log;
pub mod vault;
pub mod webhooks;
