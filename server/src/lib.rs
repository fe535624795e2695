//! Relay: a self-hosted, multi-tenant vault and relay for bring-your-own-key AI apps.
//!
//! Read in this order: `startup` (how the server is assembled), `routes` (the HTTP surface),
//! `auth` (who may call what), `keys` (connect / open / rotate provider keys), `vault` (envelope
//! encryption), `store` (PostgreSQL and SQLite), `providers` (what each provider needs).

pub mod audit;
pub mod auth;
pub mod browser;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod gateway;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod passthrough;
pub mod providers;
pub mod ratelimit;
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
