//! End users' provider keys: connecting one with a registration token, opening one for a request
//! (never one a provider refused), recording its health, and re-wrapping all of them under the
//! newest master key. Plaintext exists only in `SecretString` values that live for one call.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::auth::session;
use crate::auth::tokens::RegistrationTokenHash;
use crate::domain::key_health::{KeyHealth, KeyStatus};
use crate::domain::money::Usd;
use crate::error::ApiError;
use crate::providers::{self, ProviderId};
use crate::ssrf::{CheckedUrl, SsrfError};
use crate::store::{DynStore, EndUser, RedeemError, RegistrationTokenInfo, StoredProviderKey};
use crate::vault::{KekVersion, SealContext, Vault, VaultError};

/// Asks a provider whether it accepts a key before it is stored (`upstream::Upstreams`).
#[async_trait]
pub trait KeyVerifier: Send + Sync {
    /// An `openai-compatible` base URL, checked against the SSRF policy.
    fn check_base_url(&self, raw: &str) -> Result<CheckedUrl, SsrfError>;
    /// One cheap authenticated call; `base` for `openai-compatible`.
    async fn check_key(
        &self,
        provider: ProviderId,
        base: Option<&CheckedUrl>,
        key: &SecretString,
    ) -> Result<KeyCheck, KeyCheckError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    Accepted,
    /// The provider answered 401 or 403 for this key.
    Rejected,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error("could not reach the provider: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("Relay will not connect there: {reason}")]
    Refused { code: &'static str, reason: String },
    #[error("the provider answered HTTP {0} to the key check")]
    Unexpected(u16),
    #[error("the key cannot be put in an HTTP header")]
    BadKey,
}

#[derive(Clone)]
pub struct KeyService {
    store: DynStore,
    vault: Vault,
    verifier: Arc<dyn KeyVerifier>,
    verify_with_provider: bool,
    /// Keys whose use this node recorded lately (a cached row's `last_used_at` may be older).
    recently_touched: std::sync::Arc<crate::store::cached::TtlMap<Uuid, ()>>,
}

/// How often a key's `last_used_at` is written: at most once a minute per key and node.
const TOUCH_EVERY_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub tenant_id: Uuid,
    pub end_user_label: String,
    pub provider: ProviderId,
    pub fingerprint: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationReport {
    pub rewrapped: u64,
    /// Rows deleted or replaced while rotation ran; they are already on the newest KEK.
    pub skipped: u64,
    /// Rows that do not open under any configured KEK (see the log for which).
    pub failed: u64,
    /// Session-token signing keys re-wrapped (counted apart from provider keys).
    pub signing_keys_rewrapped: u64,
    /// Session-token signing keys that do not open under any configured KEK.
    pub signing_keys_failed: u64,
    /// Webhook endpoint secrets re-wrapped (counted apart from provider keys).
    pub webhook_secrets_rewrapped: u64,
    /// Webhook endpoint secrets that do not open under any configured KEK.
    pub webhook_secrets_failed: u64,
}

impl KeyService {
    /// `verify_with_provider`: ask the provider (through `verifier`) before storing a key.
    pub fn new(
        store: DynStore,
        vault: Vault,
        verifier: impl KeyVerifier + 'static,
        verify_with_provider: bool,
    ) -> Self {
        Self {
            store,
            vault,
            verifier: Arc::new(verifier),
            verify_with_provider,
            recently_touched: std::sync::Arc::new(crate::store::cached::TtlMap::new(std::time::Duration::from_secs(
                TOUCH_EVERY_SECS.unsigned_abs(),
            ))),
        }
    }

    /// Reports the size of the recently-used map to `relay_memory_map_entries{map="recently_touched"}`.
    pub fn with_metrics(mut self, metrics: &crate::metrics::Metrics) -> Self {
        let mut touched =
            crate::store::cached::TtlMap::new(std::time::Duration::from_secs(TOUCH_EVERY_SECS.unsigned_abs()));
        touched.set_gauge(metrics.map_entries.with_label_values(&["recently_touched"]));
        self.recently_touched = std::sync::Arc::new(touched);
        self
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Looks a registration token up without consuming it.
    pub async fn registration_token(&self, raw: &str) -> Result<RegistrationTokenInfo, ApiError> {
        let hash = RegistrationTokenHash::parse(raw).ok_or_else(invalid_token)?;
        let info = self.store.find_registration_token(&hash.0).await?.ok_or_else(invalid_token)?;
        if info.used_at.is_some() {
            return Err(token_used());
        }
        if info.expires_at <= Utc::now() {
            return Err(token_expired());
        }
        Ok(info)
    }

    /// Checks the key (format, then the provider), seals it, and stores it while consuming the
    /// token in one transaction. A rejected key leaves the token usable.
    pub async fn connect(
        &self,
        token: &str,
        provider: &str,
        api_key: &SecretString,
        base_url: Option<&str>,
        monthly_cap: Option<Usd>,
    ) -> Result<Connected, ApiError> {
        let hash = RegistrationTokenHash::parse(token).ok_or_else(invalid_token)?;
        let info = self.registration_token(token).await?;
        let provider = parse_provider(provider)?;
        if let Some(locked) = &info.provider {
            if locked != provider.as_str() {
                return Err(ApiError::invalid_request(
                    "provider_mismatch",
                    format!("This registration token only accepts a key for {locked}."),
                )
                .param("provider"));
            }
        }
        let row = self
            .check_and_seal(info.tenant_id, info.end_user_id, provider, api_key, "apiKey", base_url, monthly_cap)
            .await?;
        let fingerprint = row.fingerprint.clone();
        match self.store.redeem_registration_token(&hash.0, row.created_at, &row).await? {
            Ok(()) => {}
            Err(RedeemError::Used) => return Err(token_used()),
            Err(RedeemError::Expired) => return Err(token_expired()),
            Err(RedeemError::NotFound) => return Err(invalid_token()),
        }
        let target = format!("end_user:{} provider:{provider}", info.end_user_id);
        crate::audit::record(&*self.store, Some(info.tenant_id), "end_user", "provider_key.connect", Some(target))
            .await;
        tracing::info!(tenant_id = %info.tenant_id, provider = %provider, "provider key connected");
        Ok(Connected { tenant_id: info.tenant_id, end_user_label: info.end_user_label, provider, fingerprint })
    }

    /// Stores a key for an end user the caller has already authenticated (the byok flow's
    /// session token), with the same checks and sealing as `connect`, replacing any key the
    /// user had for that provider. `key_param` names the body field in error messages.
    pub async fn store_for_end_user(
        &self,
        end_user: &EndUser,
        provider: ProviderId,
        api_key: &SecretString,
        key_param: &'static str,
        base_url: Option<&str>,
        monthly_cap: Option<Usd>,
    ) -> Result<Connected, ApiError> {
        let row = self
            .check_and_seal(end_user.tenant_id, end_user.id, provider, api_key, key_param, base_url, monthly_cap)
            .await?;
        let fingerprint = row.fingerprint.clone();
        self.store.upsert_provider_key(&row).await?;
        let target = format!("end_user:{} provider:{provider}", end_user.id);
        crate::audit::record(&*self.store, Some(end_user.tenant_id), "end_user", "provider_key.connect", Some(target))
            .await;
        tracing::info!(tenant_id = %end_user.tenant_id, provider = %provider, "provider key stored by session");
        Ok(Connected { tenant_id: end_user.tenant_id, end_user_label: end_user.label.clone(), provider, fingerprint })
    }

    /// Trims the pasted key, checks its format and (if configured) asks the provider, then
    /// seals it under a new record id, with the end user's own monthly cap. Nothing is stored yet.
    #[allow(clippy::too_many_arguments)]
    async fn check_and_seal(
        &self,
        tenant_id: Uuid,
        end_user_id: Uuid,
        provider: ProviderId,
        api_key: &SecretString,
        key_param: &'static str,
        base_url: Option<&str>,
        monthly_cap: Option<Usd>,
    ) -> Result<StoredProviderKey, ApiError> {
        let base = self.check_base_url(provider, base_url)?;
        let key = SecretString::from(api_key.expose_secret().trim().to_owned());
        provider.check_key_format(key.expose_secret()).map_err(|e| {
            ApiError::invalid_request("provider_key_malformed", format!("That is not a valid {provider} API key: {e}."))
                .param(key_param)
        })?;
        if self.verify_with_provider {
            self.verify(provider, base.as_ref(), &key, key_param).await?;
        }
        let record_id = Uuid::new_v4();
        let base_url = base.map(|b| b.to_string());
        let label = sealed_provider_label(provider.as_str(), base_url.as_deref());
        let ctx = SealContext { tenant_id, end_user_id, provider: &label, record_id };
        let sealed = self.vault.seal(&ctx, &key).await.map_err(|e| match master_key_error(&e) {
            Some(api) => {
                tracing::error!(tenant_id = %tenant_id, error = %e, "could not seal a provider key");
                api
            }
            None => ApiError::internal(e),
        })?;
        let fingerprint = providers::fingerprint(provider, key.expose_secret());
        drop(key);
        Ok(StoredProviderKey {
            id: record_id,
            tenant_id,
            end_user_id,
            provider: provider.as_str().to_owned(),
            fingerprint,
            sealed,
            created_at: Utc::now(),
            last_used_at: None,
            base_url,
            monthly_cap,
            health: KeyHealth::default(),
        })
    }

    /// `openai-compatible` needs a base URL that passes the SSRF policy; the other providers
    /// take none.
    fn check_base_url(&self, provider: ProviderId, base_url: Option<&str>) -> Result<Option<CheckedUrl>, ApiError> {
        let own_server = provider.def().base_url.is_none();
        match (own_server, base_url.map(str::trim).filter(|b| !b.is_empty())) {
            (true, Some(raw)) => self.verifier.check_base_url(raw).map(Some).map_err(|e| {
                ApiError::invalid_request(e.code(), format!("This base URL cannot be used: {e}.")).param("baseUrl")
            }),
            (true, None) => Err(ApiError::invalid_request(
                "base_url_required",
                "An openai-compatible key needs the server's base URL (for example https://llm.example.com/v1).",
            )
            .param("baseUrl")),
            (false, None) => Ok(None),
            (false, Some(_)) => Err(ApiError::invalid_request(
                "base_url_not_allowed",
                format!("{provider} keys are always used with {provider}'s own API; only openai-compatible keys take a base URL."),
            )
            .param("baseUrl")),
        }
    }

    async fn verify(
        &self,
        provider: ProviderId,
        base: Option<&CheckedUrl>,
        key: &SecretString,
        key_param: &'static str,
    ) -> Result<(), ApiError> {
        match self.verifier.check_key(provider, base, key).await {
            Ok(KeyCheck::Accepted) => Ok(()),
            Ok(KeyCheck::Rejected) => Err(ApiError::invalid_request(
                "provider_key_rejected",
                format!("{provider} did not accept this API key. Check that it is active and copied in full."),
            )
            .param(key_param)),
            Err(e @ KeyCheckError::BadKey) => Err(ApiError::invalid_request(
                "provider_key_malformed",
                format!("That is not a valid {provider} API key."),
            )
            .param(key_param)
            .with_source(e)),
            Err(KeyCheckError::Refused { code, reason }) => {
                Err(ApiError::forbidden(code, format!("Relay will not connect there: {reason}.")))
            }
            Err(e) => Err(ApiError::bad_gateway(
                "provider_unavailable",
                format!("Could not check the key with {provider} right now; nothing was stored. Try again shortly."),
            )
            .with_source(e)),
        }
    }

    /// Opens an end user's key for one request. A key a provider refused (`invalid`) is not
    /// opened: 403 `enduser_key_invalid` until the end user connects a new one.
    pub async fn open(
        &self,
        end_user: &EndUser,
        provider: ProviderId,
    ) -> Result<(StoredProviderKey, SecretString), ApiError> {
        let row = self.store.get_provider_key(end_user.id, provider.as_str()).await?.ok_or_else(|| {
            ApiError::not_found(
                "enduser_key_missing",
                format!(
                    "This end user has not connected a {provider} key. Send them a registration token to connect one."
                ),
            )
        })?;
        if row.health.status == KeyStatus::Invalid {
            return Err(key_invalid(provider));
        }
        let label = sealed_provider_label(provider.as_str(), row.base_url.as_deref());
        let ctx = SealContext {
            tenant_id: end_user.tenant_id,
            end_user_id: end_user.id,
            provider: &label,
            record_id: row.id,
        };
        match self.vault.open(&ctx, &row.sealed).await {
            Ok(secret) => Ok((row, secret)),
            Err(e) => {
                tracing::error!(tenant_id = %end_user.tenant_id, record_id = %row.id, error = %e, "could not open a stored provider key");
                Err(open_error(&e, provider))
            }
        }
    }

    /// Notes that a key was used; at most once a minute per key, to keep writes off the hot path.
    pub async fn touch(&self, row: &StoredProviderKey) {
        let now = Utc::now();
        if row.last_used_at.is_some_and(|t| now - t < chrono::Duration::seconds(TOUCH_EVERY_SECS))
            || self.recently_touched.get(&row.id).is_some()
        {
            return;
        }
        self.recently_touched.insert(row.id, ());
        if let Err(e) = self.store.touch_provider_key(row.id, now).await {
            tracing::warn!(error = ?e, "could not record key use");
        }
    }

    /// Records what a provider's answer said about the key row `key_id` (see
    /// `Store::set_provider_key_health`); true when this call changed its status. A database
    /// that fails is logged: the call's answer goes out all the same.
    pub async fn set_health(&self, key_id: Uuid, health: &KeyHealth) -> bool {
        self.store.set_provider_key_health(key_id, health).await.unwrap_or_else(|e| {
            tracing::warn!(error = ?e, "could not record a key's health");
            false
        })
    }

    /// Re-wraps every data key not yet under the newest KEK. Safe while servers keep serving:
    /// each update is a compare-and-set, so a key replaced meanwhile is left alone.
    pub async fn rotate(&self) -> Result<RotationReport, ApiError> {
        let target = self.vault.current_kek_version();
        let mut report = RotationReport::default();
        let mut after = None;
        loop {
            let batch = self.store.provider_keys_not_on_version(target, after, 200).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id);
            for row in &batch {
                let label = sealed_provider_label(&row.provider, row.base_url.as_deref());
                let ctx = SealContext {
                    tenant_id: row.tenant_id,
                    end_user_id: row.end_user_id,
                    provider: &label,
                    record_id: row.id,
                };
                match self.vault.rewrap(&ctx, &row.sealed).await {
                    Ok(Some(new)) => {
                        if self.store.rewrap_provider_key(row.id, &row.sealed, &new).await? {
                            report.rewrapped += 1;
                        } else {
                            report.skipped += 1;
                        }
                    }
                    Ok(None) => report.skipped += 1,
                    // KMS not answering or refusing: stop here; every row not yet moved is as it was.
                    Err(e @ (VaultError::KekUnavailable(_) | VaultError::KekRefused(_))) => {
                        tracing::error!(record_id = %row.id, error = %e, "key rotation stopped");
                        let api = master_key_error(&e).unwrap_or_else(|| ApiError::internal(e.clone()));
                        return Err(api.with_source(e));
                    }
                    Err(
                        e @ (VaultError::Decrypt
                        | VaultError::UnknownKekVersion(_)
                        | VaultError::NotUtf8
                        | VaultError::Encrypt),
                    ) => {
                        tracing::error!(record_id = %row.id, error = %e, "could not re-wrap a stored key");
                        report.failed += 1;
                    }
                }
            }
        }
        self.rotate_signing_keys(target, &mut report).await?;
        self.rotate_webhook_secrets(target, &mut report).await?;
        let summary = format!("v{target} rewrapped:{} failed:{}", report.rewrapped, report.failed);
        crate::audit::record(&*self.store, None, "operator", "kek.rotate", Some(summary)).await;
        Ok(report)
    }

    /// The session-token signing key is sealed like a provider key: re-wrap it the same way.
    async fn rotate_signing_keys(&self, target: KekVersion, report: &mut RotationReport) -> Result<(), ApiError> {
        for row in self.store.session_signing_keys_not_on_version(target).await? {
            match self.vault.rewrap(&session::signing_key_context(row.id), &row.sealed).await {
                // A compare-and-set miss means another rotation already moved it.
                Ok(Some(new)) if self.store.rewrap_session_signing_key(row.id, &row.sealed, &new).await? => {
                    report.signing_keys_rewrapped += 1
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(record_id = %row.id, error = %e, "could not re-wrap the session signing key");
                    report.signing_keys_failed += 1;
                }
            }
        }
        Ok(())
    }
}

impl KeyService {
    /// Webhook endpoint secrets are sealed like provider keys: re-wrap them the same way.
    async fn rotate_webhook_secrets(&self, target: KekVersion, report: &mut RotationReport) -> Result<(), ApiError> {
        for row in self.store.webhook_endpoints_not_on_version(target).await? {
            let ctx = crate::webhooks::secret_context(row.tenant_id, row.id);
            match self.vault.rewrap(&ctx, &row.sealed_secret).await {
                Ok(Some(new)) if self.store.rewrap_webhook_secret(row.id, &row.sealed_secret, &new).await? => {
                    report.webhook_secrets_rewrapped += 1
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(record_id = %row.id, error = %e, "could not re-wrap a webhook secret");
                    report.webhook_secrets_failed += 1;
                }
            }
        }
        Ok(())
    }
}

/// What a caller is told when a stored key does not open. The log has the cause.
fn open_error(e: &VaultError, provider: ProviderId) -> ApiError {
    master_key_error(e).unwrap_or_else(|| {
        ApiError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "provider_key_undecryptable",
            format!(
                "The stored {provider} key for this end user cannot be decrypted. Ask the user to connect it again."
            ),
        )
    })
}

/// The master key, not the stored key, is the problem: an operator's to fix (or a moment's wait
/// when KMS does not answer). Asking the user to reconnect would overwrite a key that is still
/// recoverable.
fn master_key_error(e: &VaultError) -> Option<ApiError> {
    use actix_web::http::header::{HeaderName, HeaderValue};
    use actix_web::http::StatusCode;
    match e {
        VaultError::UnknownKekVersion(_) => Some(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "master_key_unavailable",
            "The key is stored under a master key version this server does not have. The operator must add it to RELAY_MASTER_KEYS.",
        )),
        VaultError::KekRefused(_) => Some(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "master_key_unavailable",
            "The key management service refused to use Relay's master key (access denied, or the key is disabled). The operator must fix it; no key was changed.",
        )),
        VaultError::KekUnavailable(_) => Some(
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "master_key_unavailable",
                "The key management service holding Relay's master key did not answer; nothing was changed. Try again shortly.",
            )
            .header(HeaderName::from_static("retry-after"), HeaderValue::from_static("1")),
        ),
        VaultError::Decrypt | VaultError::Encrypt | VaultError::NotUtf8 => None,
    }
}

/// Parses a provider name from a request: 400 `provider_unknown` naming the accepted ones.
pub fn parse_provider(raw: &str) -> Result<ProviderId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::invalid_request(
            "provider_unknown",
            format!("Unknown provider. Accepted providers: {}.", providers::accepted_providers()),
        )
        .param("provider")
    })
}

/// The provider as bound into a sealed key's context. For `openai-compatible` it includes the
/// base URL, so a stored key cannot be pointed at another server by editing its row.
fn sealed_provider_label<'a>(provider: &'a str, base_url: Option<&str>) -> std::borrow::Cow<'a, str> {
    match base_url {
        Some(base) => std::borrow::Cow::Owned(format!("{provider}|{base}")),
        None => std::borrow::Cow::Borrowed(provider),
    }
}

/// 403 `enduser_key_invalid`: the provider refused the stored key; only a new one helps.
fn key_invalid(provider: ProviderId) -> ApiError {
    ApiError::forbidden(
        "enduser_key_invalid",
        format!(
            "{provider} refused this end user's stored {provider} key, so Relay no longer sends it. \
             The end user must connect a new {provider} key: send them a registration token."
        ),
    )
}

fn invalid_token() -> ApiError {
    ApiError::not_found(
        "registration_token_invalid",
        "This registration token is not valid. Ask the app for a new one.",
    )
    .param("registrationToken")
}

fn token_used() -> ApiError {
    ApiError::gone(
        "registration_token_used",
        "This registration token has already been used. Ask the app for a new one.",
    )
    .param("registrationToken")
}

fn token_expired() -> ApiError {
    ApiError::gone("registration_token_expired", "This registration token has expired. Ask the app for a new one.")
        .param("registrationToken")
}
