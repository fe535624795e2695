//! The `relay` command: serve, migrate, and the operator's tenant, API-key and master-key tools.

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

use crate::config::{Config, ServeArgs, StoreArgs};
use crate::domain::AllowedOrigin;
use crate::keys::KeyService;
use crate::startup::Application;
use crate::store::{self, DynStore};
use crate::upstream::{UpstreamTimeouts, Upstreams};
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
    Serve(Box<ServeArgs>),
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
    /// Manage console accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print the OpenAPI 3.1 document of the HTTP API (regenerates openapi/openapi.json:
    /// `cargo run -q -p relay -- openapi > openapi/openapi.json`).
    Openapi,
    /// Exit 0 when the server on this machine is ready (`GET /api/ready` answers 200): the
    /// container health check.
    Healthcheck {
        /// The server's listen address (a wildcard address is asked on loopback).
        #[arg(long, env = "RELAY_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first API key (printed once); with --owner-email, also a one-time
    /// console invite link (7 days) where the owner sets a password.
    Create {
        #[arg(long)]
        name: String,
        /// Invite this email as the tenant's owner in the console.
        #[arg(long, value_name = "EMAIL")]
        owner_email: Option<String>,
        /// Where the console is served, for the invite link (default http://localhost:8080).
        #[arg(long, env = "RELAY_PUBLIC_URL", value_name = "URL")]
        public_url: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change a tenant's browser settings, rate limits and free tier, and print them with its
    /// app id. Without flags, only prints them.
    Update {
        /// The tenant id (from `tenant create`).
        #[arg(long)]
        id: Uuid,
        /// An origin (scheme://host[:port]) allowed to call the browser routes; repeat for
        /// several. Replaces the tenant's list.
        #[arg(long = "allowed-origin", value_name = "URL")]
        allowed_origins: Vec<String>,
        /// Remove every allowed origin.
        #[arg(long, conflicts_with = "allowed_origins")]
        clear_allowed_origins: bool,
        /// Turn the byok-relay browser flow (POST /users, /keys) on or off.
        #[arg(long, value_enum, value_name = "on|off")]
        byok_flow: Option<Switch>,
        /// Requests per rly- key: `<count>/<s|min|hour|day>`, `off`, or `default` (the server's).
        #[arg(long, value_name = "LIMIT")]
        rate_limit_key: Option<LimitArg>,
        /// Provider calls per paid-tier end user: a rate, `off`, or `default`.
        #[arg(long, value_name = "LIMIT")]
        rate_limit_user: Option<LimitArg>,
        /// Provider calls per free-tier end user (`X-Relay-Paid: false`): a rate, `off`, or `default`.
        #[arg(long, value_name = "LIMIT")]
        rate_limit_free_user: Option<LimitArg>,
        /// A model glob free-tier end users may call (`gpt-4o-mini`, `claude-haiku-*`); repeat
        /// for several. Replaces the tenant's list. Without any, free users may call every model.
        #[arg(long = "free-model", value_name = "GLOB")]
        free_models: Vec<String>,
        /// Let free-tier end users call every model again.
        #[arg(long, conflicts_with = "free_models")]
        clear_free_models: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// A tenant's limit as given on the command line: `default` drops the tenant's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitArg(Option<crate::ratelimit::Limit>);

impl std::str::FromStr for LimitArg {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        if raw.trim().eq_ignore_ascii_case("default") {
            return Ok(Self(None));
        }
        raw.parse().map(|l| Self(Some(l)))
    }
}

fn shown_limit(own: Option<crate::ratelimit::Limit>) -> String {
    own.map_or_else(|| "server default".to_owned(), |l| l.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
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
pub enum AdminCommand {
    /// Create a console account; the password is read from standard input (one line).
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// The account may operate the server (operator pages come later).
        #[arg(long)]
        operator: bool,
        /// Make the account a member of this tenant…
        #[arg(long, requires = "role")]
        tenant: Option<Uuid>,
        /// …with this role: owner, admin or viewer.
        #[arg(long, requires = "tenant", value_parser = parse_role)]
        role: Option<crate::store::console::Role>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn parse_role(raw: &str) -> Result<crate::store::console::Role, String> {
    crate::store::console::Role::parse(raw).ok_or_else(|| "a role is owner, admin or viewer".to_owned())
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
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(args) => {
            telemetry::init(telemetry::LogFormat::Pretty);
            let (store, _) = open_store(&args).await?;
            writeln!(out(), "Migrations applied ({}).", store.backend())?;
            Ok(())
        }
        Command::Tenant(TenantCommand::Create { name, owner_email, public_url, json, store }) => {
            let name = name.trim();
            anyhow::ensure!(!name.is_empty() && name.chars().count() <= 200, "--name must be 1 to 200 characters");
            let owner = owner_email
                .as_deref()
                .map(|e| {
                    crate::console::Email::parse(e)
                        .map_err(|_| anyhow::anyhow!("--owner-email is not an email address"))
                })
                .transpose()?;
            let (store, _) = open_store(&store).await?;
            let (tenant, key) = tenants::create_tenant(&store, name, "operator").await?;
            let invite = match &owner {
                Some(email) => {
                    let console = crate::console::Console::new(store.clone(), public_url.as_deref());
                    let invite = console
                        .invite(tenant.id, email, crate::store::console::Role::Owner, "operator", None)
                        .await
                        .map_err(|e| anyhow::anyhow!("could not create the invite: {}", e.message()))?;
                    let origin = console.public_origin().unwrap_or("http://localhost:8080").to_owned();
                    Some(crate::console::invite_url(&origin, &invite.token))
                }
                None => None,
            };
            if json {
                let v = json!({
                    "tenantId": tenant.id,
                    "name": tenant.name,
                    "appId": tenant.app_id,
                    "apiKey": key.secret.expose_secret(),
                    "apiKeyId": key.record.public_id,
                    "ownerInviteUrl": invite,
                });
                writeln!(out(), "{v}")?;
            } else {
                writeln!(out(), "Created tenant {:?} with id {} (app id {})", tenant.name, tenant.id, tenant.app_id)?;
                writeln!(out(), "API key (shown once, store it now): {}", key.secret.expose_secret())?;
                if let (Some(url), Some(email)) = (&invite, &owner) {
                    writeln!(out(), "Console invite for {} (one use, 7 days): {url}", email.as_str())?;
                }
            }
            Ok(())
        }
        Command::Tenant(TenantCommand::Update {
            id,
            allowed_origins,
            clear_allowed_origins,
            rate_limit_key,
            rate_limit_user,
            rate_limit_free_user,
            free_models,
            clear_free_models,
            byok_flow,
            json,
            store,
        }) => {
            let origins = allowed_origins
                .iter()
                .map(|raw| {
                    AllowedOrigin::parse(raw)
                        .map(|o| o.as_str().to_owned())
                        .map_err(|e| anyhow::anyhow!("--allowed-origin {raw:?} {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let (store, _) = open_store(&store).await?;
            let tenant = store.get_tenant(id).await?.context("No tenant with that id")?;
            let mut settings = store.get_tenant_settings(id).await?.unwrap_or_default();
            let before = settings.clone();
            if !origins.is_empty() {
                settings.allowed_origins =
                    origins.into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            }
            if clear_allowed_origins {
                settings.allowed_origins.clear();
            }
            if let Some(switch) = byok_flow {
                settings.byok_flow_enabled = switch == Switch::On;
            }
            if let Some(LimitArg(l)) = rate_limit_key {
                settings.rate_limit_api_key = l;
            }
            if let Some(LimitArg(l)) = rate_limit_user {
                settings.rate_limit_end_user = l;
            }
            if let Some(LimitArg(l)) = rate_limit_free_user {
                settings.rate_limit_free_end_user = l;
            }
            if let Some(bad) = free_models.iter().find(|p| !crate::ratelimit::valid_model_pattern(p)) {
                anyhow::bail!("--free-model {bad:?} is not a model name or glob (printable, no spaces)");
            }
            if !free_models.is_empty() {
                settings.free_models =
                    free_models.into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            }
            if clear_free_models {
                settings.free_models.clear();
            }
            if settings != before {
                anyhow::ensure!(store.update_tenant_settings(id, &settings).await?, "No tenant with that id");
                crate::audit::record(&*store, Some(id), "operator", "tenant.update", Some(id.to_string())).await;
            }
            if json {
                let v = json!({
                    "tenantId": tenant.id,
                    "name": tenant.name,
                    "appId": tenant.app_id,
                    "byokFlow": settings.byok_flow_enabled,
                    "allowedOrigins": settings.allowed_origins,
                    "rateLimits": {
                        "apiKey": settings.rate_limit_api_key.map(|l| l.to_string()),
                        "endUser": settings.rate_limit_end_user.map(|l| l.to_string()),
                        "freeEndUser": settings.rate_limit_free_end_user.map(|l| l.to_string()),
                    },
                    "freeModels": settings.free_models,
                });
                writeln!(out(), "{v}")?;
            } else {
                let mut o = out();
                writeln!(o, "Tenant {:?} ({})", tenant.name, tenant.id)?;
                writeln!(o, "  app id:          {}", tenant.app_id)?;
                writeln!(o, "  byok flow:       {}", if settings.byok_flow_enabled { "on" } else { "off" })?;
                let origins = if settings.allowed_origins.is_empty() {
                    "(none)".to_owned()
                } else {
                    settings.allowed_origins.join(", ")
                };
                writeln!(o, "  allowed origins: {origins}")?;
                writeln!(o, "  per rly- key:    {}", shown_limit(settings.rate_limit_api_key))?;
                writeln!(o, "  per end user:    {}", shown_limit(settings.rate_limit_end_user))?;
                writeln!(o, "  per free user:   {}", shown_limit(settings.rate_limit_free_end_user))?;
                let free = if settings.free_models.is_empty() {
                    "(every model)".to_owned()
                } else {
                    settings.free_models.join(", ")
                };
                writeln!(o, "  free-tier models: {free}")?;
            }
            Ok(())
        }
        Command::Apikey(cmd) => apikey(cmd).await,
        Command::Healthcheck { listen } => healthcheck(&listen).await,
        Command::Admin(AdminCommand::Create { email, password_stdin, operator, tenant, role, json, store }) => {
            anyhow::ensure!(password_stdin, "--password-stdin is required");
            let email =
                crate::console::Email::parse(&email).map_err(|_| anyhow::anyhow!("--email is not an email address"))?;
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("could not read the password from standard input")?;
            let password = secrecy::SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned());
            let membership = tenant.zip(role);
            let (store, _) = open_store(&store).await?;
            let account = crate::console::create_account(&store, &email, password, operator, membership).await?;
            if json {
                let v = json!({
                    "accountId": account.id, "email": account.email, "operator": account.operator,
                    "tenantId": tenant, "role": role.map(|r| r.as_str()),
                });
                writeln!(out(), "{v}")?;
            } else {
                writeln!(out(), "Created console account {} ({}).", account.email, account.id)?;
            }
            Ok(())
        }
        Command::Openapi => {
            let mut stdout = out();
            stdout.write_all(crate::openapi::to_pretty_json()?.as_bytes())?;
            stdout.flush()?;
            Ok(())
        }
        Command::Kek(KekCommand::Generate { version }) => {
            anyhow::ensure!(version > 0, "--version must be 1 or more");
            writeln!(out(), "{}", LocalKeyring::generate_entry(version).expose_secret())?;
            Ok(())
        }
        Command::Kek(KekCommand::Rotate { json, store }) => {
            telemetry::init(telemetry::LogFormat::Pretty);
            let (store, config) = open_store(&store).await?;
            let vault = Vault::new(config.keyring.into_source().await.context("The master keys are not usable")?);
            let version = vault.current_kek_version();
            let upstreams = Upstreams::new(&Default::default(), &UpstreamTimeouts::default())?;
            let keys = KeyService::new(store, vault, upstreams, false);
            let report = keys.rotate().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if json {
                let v = json!({
                    "kekVersion": version,
                    "rewrapped": report.rewrapped,
                    "skipped": report.skipped,
                    "failed": report.failed,
                    "sessionSigningKeys": { "rewrapped": report.signing_keys_rewrapped, "failed": report.signing_keys_failed },
                    "webhookSecrets": { "rewrapped": report.webhook_secrets_rewrapped, "failed": report.webhook_secrets_failed },
                });
                writeln!(out(), "{v}")?;
            } else {
                writeln!(
                    out(),
                    "Re-wrapped {} data keys under master key v{version} ({} changed meanwhile, {} failed).",
                    report.rewrapped,
                    report.skipped,
                    report.failed
                )?;
                writeln!(
                    out(),
                    "Re-wrapped {} session signing keys ({} failed).",
                    report.signing_keys_rewrapped,
                    report.signing_keys_failed
                )?;
                writeln!(
                    out(),
                    "Re-wrapped {} webhook secrets ({} failed).",
                    report.webhook_secrets_rewrapped,
                    report.webhook_secrets_failed
                )?;
            }
            let failed = report.failed + report.signing_keys_failed + report.webhook_secrets_failed;
            anyhow::ensure!(failed == 0, "{failed} stored keys could not be re-wrapped; see the log above");
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

async fn healthcheck(listen: &str) -> anyhow::Result<()> {
    let addr: std::net::SocketAddr =
        listen.parse().with_context(|| format!("RELAY_LISTEN ({listen}) is not an address such as 127.0.0.1:8080"))?;
    let host = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("http://{}/api/ready", std::net::SocketAddr::new(host, addr.port()));
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).no_proxy().build()?;
    let res = client.get(&url).send().await.with_context(|| format!("{url} did not answer"))?;
    anyhow::ensure!(res.status().is_success(), "{url} answered {}", res.status());
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    match crate::hardening::disable_core_dumps() {
        Ok(()) => tracing::info!("core dumps are off for this process"),
        Err(e) => tracing::warn!(error = %e, "could not turn core dumps off"),
    }
    let config = Config::from_args(&args)?;
    let kms = !config.store.keyring.aws_kms_keys().is_empty();
    if config.store.embedded && kms {
        tracing::warn!(data_dir = %args.store.data_dir.display(), "embedded SQLite database; for production set DATABASE_URL=postgres://...");
    } else if config.store.embedded {
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
        let url = crate::ratelimit::redacted_url(url);
        tracing::warn!(%provider, %url, "provider upstream overridden");
    }
    let app = Application::build(config).await?;
    tracing::info!(listen = %args.listen, port = app.port(), "relay is listening");
    app.run_until_stopped().await?;
    Ok(())
}
