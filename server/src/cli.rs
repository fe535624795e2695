//! The `relay` command: serve, migrate, and the operator's tenant, API-key and master-key tools.

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

use crate::config::{Config, ServeArgs, StoreArgs};
use crate::keys::KeyService;
use crate::providers::{UpstreamTimeouts, Upstreams};
use crate::startup::Application;
use crate::store::{self, DynStore};
use crate::vault::{LocalKeyring, Vault};
use crate::{telemetry, tenants};

#[derive(Debug, Parser)]
#[command(name = "relay", version, about = "Relay: a self-hosted vault and relay for bring-your-own-key AI apps")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (embedded SQLite in ./relay-data when DATABASE_URL is unset).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(StoreArgs),
    /// Manage tenants (app developers).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage a tenant's rly- API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Manage master keys (KEKs).
    #[command(subcommand)]
    Kek(KekCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first API key (printed once).
    Create {
        #[arg(long)]
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key for a tenant (printed once).
    Create {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List a tenant's API keys (never their secrets).
    List {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an API key by its id (from `apikey list`).
    Revoke {
        #[arg(long)]
        tenant: Uuid,
        /// The key id shown by `apikey list`.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KekCommand {
    /// Re-wrap every stored data key under the newest master key. Safe while servers run.
    Rotate {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a new random master key entry, `v<N>:<base64>`.
    Generate {
        #[arg(long, default_value_t = 1)]
        version: u32,
    },
}

fn out() -> std::io::StdoutLock<'static> {
    std::io::stdout().lock()
}

async fn open_store(args: &StoreArgs) -> anyhow::Result<(DynStore, crate::config::StoreConfig)> {
    let config = args.resolve()?;
    let store = store::connect(&config.database).await.context("Could not open the database")?;
    store.migrate().await.context("Could not apply migrations")?;
    Ok((store, config))
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => {
            telemetry::init(telemetry::LogFormat::Pretty);
            let (store, _) = open_store(&args).await?;
            writeln!(out(), "Migrations applied ({}).", store.backend())?;
            Ok(())
        }
        Command::Tenant(TenantCommand::Create { name, json, store }) => {
            let name = name.trim();
            anyhow::ensure!(!name.is_empty() && name.chars().count() <= 200, "--name must be 1 to 200 characters");
            let (store, _) = open_store(&store).await?;
            let (tenant, key) = tenants::create_tenant(&store, name, "operator").await?;
            if json {
                let v = json!({
                    "tenantId": tenant.id,
                    "name": tenant.name,
                    "apiKey": key.secret.expose_secret(),
                    "apiKeyId": key.record.public_id,
                });
                writeln!(out(), "{v}")?;
            } else {
                writeln!(out(), "Created tenant {:?} with id {}", tenant.name, tenant.id)?;
                writeln!(out(), "API key (shown once, store it now): {}", key.secret.expose_secret())?;
            }
            Ok(())
        }
        Command::Apikey(cmd) => apikey(cmd).await,
        Command::Kek(KekCommand::Generate { version }) => {
            anyhow::ensure!(version > 0, "--version must be 1 or more");
            writeln!(out(), "{}", LocalKeyring::generate_entry(version).expose_secret())?;
            Ok(())
        }
        Command::Kek(KekCommand::Rotate { json, store }) => {
            telemetry::init(telemetry::LogFormat::Pretty);
            let (store, config) = open_store(&store).await?;
            let vault = Vault::new(std::sync::Arc::new(config.keyring));
            let version = vault.current_kek_version();
            let upstreams = Upstreams::new(&Default::default(), &UpstreamTimeouts::default())?;
            let keys = KeyService::new(store, vault, upstreams, false, UpstreamTimeouts::default().key_check);
            let report = keys.rotate().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if json {
                let v = json!({ "kekVersion": version, "rewrapped": report.rewrapped, "skipped": report.skipped, "failed": report.failed });
                writeln!(out(), "{v}")?;
            } else {
                writeln!(
                    out(),
                    "Re-wrapped {} data keys under master key v{version} ({} changed meanwhile, {} failed).",
                    report.rewrapped,
                    report.skipped,
                    report.failed
                )?;
            }
            anyhow::ensure!(
                report.failed == 0,
                "{} stored keys could not be re-wrapped; see the log above",
                report.failed
            );
            Ok(())
        }
    }
}

async fn apikey(cmd: ApikeyCommand) -> anyhow::Result<()> {
    match cmd {
        ApikeyCommand::Create { tenant, name, json, store } => {
            let (store, _) = open_store(&store).await?;
            store.get_tenant(tenant).await?.context("No tenant with that id")?;
            let key = tenants::create_api_key(&store, tenant, name.as_deref(), "operator").await?;
            if json {
                let v =
                    json!({ "apiKey": key.secret.expose_secret(), "id": key.record.public_id, "display": key.display });
                writeln!(out(), "{v}")?;
            } else {
                writeln!(
                    out(),
                    "API key {} (shown once, store it now): {}",
                    key.record.public_id,
                    key.secret.expose_secret()
                )?;
            }
        }
        ApikeyCommand::List { tenant, json, store } => {
            let (store, _) = open_store(&store).await?;
            let keys = store.list_api_keys(tenant).await?;
            if json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        json!({
                            "id": k.public_id, "name": k.name, "display": format!("rly-…{}", k.last4),
                            "createdAt": k.created_at, "revokedAt": k.revoked_at,
                        })
                    })
                    .collect();
                writeln!(out(), "{}", serde_json::Value::Array(v))?;
            } else {
                let mut o = out();
                for k in &keys {
                    let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                    writeln!(
                        o,
                        "{}  rly-…{}  {:8} {}  {}",
                        k.public_id,
                        k.last4,
                        state,
                        k.created_at.format("%Y-%m-%d"),
                        k.name.as_deref().unwrap_or("")
                    )?;
                }
            }
        }
        ApikeyCommand::Revoke { tenant, id, store } => {
            let (store, _) = open_store(&store).await?;
            anyhow::ensure!(
                tenants::revoke_api_key(&store, tenant, &id, "operator").await?,
                "No active API key {id} for that tenant"
            );
            writeln!(out(), "Revoked API key {id}.")?;
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let config = Config::from_args(&args)?;
    if config.store.embedded {
        eprintln!(
            "\n  ************************************************************************\n  \
             *  DEVELOPMENT SETUP: embedded SQLite and a generated master key in     *\n  \
             *  {:<68}*\n  \
             *  Anyone who can read that folder can decrypt the stored keys. For     *\n  \
             *  production set DATABASE_URL=postgres://... and RELAY_MASTER_KEYS.    *\n  \
             ************************************************************************\n",
            format!("{}/", args.store.data_dir.display())
        );
    }
    for (provider, url) in &config.upstreams {
        tracing::warn!(%provider, %url, "provider upstream overridden");
    }
    let app = Application::build(config).await?;
    tracing::info!(listen = %args.listen, port = app.port(), "relay is listening");
    app.run_until_stopped().await?;
    Ok(())
}
