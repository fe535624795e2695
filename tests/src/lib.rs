//! Shared helpers for Relay's end-to-end tests: a fresh database per test on PostgreSQL or
//! SQLite (dropped afterwards), a mock provider that checks keys the way providers do, the app
//! spawned in-process on port 0, the real `relay` binary for CLI and log tests, and the provider
//! wire fixtures with what the suites replaying them share, and a webhook receiver that verifies
//! signatures with the `standardwebhooks` library.

pub mod app;
pub mod db;
pub mod fixtures;
pub mod kms;
pub mod messages;
pub mod mock;
pub mod process;
pub mod receiver;
pub mod responses;
pub mod sdk;

pub use app::{spawn_app, TestApp};
pub use db::{Backend, TestDb};
pub use mock::MockProvider;

/// Random fake provider keys in each provider's format. Generated, never committed, so nothing
/// in the repository looks like a real key.
pub mod fake_keys {
    use rand::distributions::{Alphanumeric, DistString};

    fn random(n: usize) -> String {
        Alphanumeric.sample_string(&mut rand::thread_rng(), n)
    }

    pub fn for_provider(provider: &str) -> String {
        match provider {
            "openai" => format!("sk-proj-{}", random(48)),
            "anthropic" => format!("sk-ant-api03-{}", random(48)),
            "google" => format!("AIza{}", random(35)),
            "groq" => format!("gsk_{}", random(52)),
            "mistral" => random(32),
            "openrouter" => format!("sk-or-v1-{}", random(64)),
            other => panic!("no fake key format for {other}"),
        }
    }
}
