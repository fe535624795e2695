//! Master keys held by AWS KMS: data keys wrapped by KMS `Encrypt` / `Decrypt` with the record's
//! seal context as the KMS encryption context, through the official AWS SDK for Rust.
//!
//! Credentials, region and endpoint come from the standard AWS environment (`AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`…, profiles, instance and container roles, web identity, and
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_KMS`). Every provider call opens its key, so unwrapped
//! data keys are kept in memory for a few minutes (at most `DEK_CACHE_CAP`), as the AWS
//! Encryption SDK's caching does: without it each call would wait on KMS and count against its
//! request quota.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;
use aws_smithy_types::Blob;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::keyring::{KekSource, KekVersion};
use super::{DataKey, SealContext, VaultError};

/// How long an unwrapped data key is reused without asking KMS again.
const DEK_CACHE_TTL: Duration = Duration::from_secs(300);
/// At most this many unwrapped data keys are kept (one per stored key in use).
const DEK_CACHE_CAP: usize = 10_000;

/// A call that needs KMS fails after this long (with 503 and Retry-After), as one that needs
/// the database does, rather than hang; KMS answers in milliseconds when it is well.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// KMS errors that say "not now" rather than "no": worth a retry later.
const TRANSIENT_CODES: &[&str] = &[
    "KMSInternalException",
    "DependencyTimeoutException",
    "KeyUnavailableException",
    "ThrottlingException",
    "LimitExceededException",
];
/// KMS errors that say the ciphertext or its context is not what was wrapped.
const NOT_THIS_CIPHERTEXT_CODES: &[&str] = &["InvalidCiphertextException", "IncorrectKeyException"];

/// The AWS KMS keys among the master key versions.
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    keys: Vec<(KekVersion, String)>,
    cache: DekCache,
}

impl AwsKms {
    /// Loads the AWS configuration from the environment and, when the newest master key
    /// (`current`) is one of these, checks with one `Encrypt` and `Decrypt` that it can wrap and
    /// unwrap, so a wrong key, policy or endpoint stops the server at start rather than at the
    /// first connect. An older KMS key is only ever asked to unwrap, and is not checked.
    pub async fn connect(keys: Vec<(KekVersion, String)>, current: KekVersion) -> Result<Self, VaultError> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
            .build_https();
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(500))
                    .operation_attempt_timeout(Duration::from_secs(1))
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(100)))
            .load()
            .await;
        if config.region().is_none() {
            return Err(VaultError::KekRefused(
                "AWS KMS needs a region: set AWS_REGION (or a profile with one)".to_owned(),
            ));
        }
        let kms = Self { client: aws_sdk_kms::Client::new(&config), keys, cache: DekCache::default() };
        if let Some((version, key_id)) = kms.keys.iter().find(|(v, _)| *v == current).cloned() {
            kms.check(version).await.map_err(|e| match e {
                VaultError::KekUnavailable(why) => {
                    VaultError::KekUnavailable(format!("AWS KMS key {key_id} (master key v{version}): {why}"))
                }
                VaultError::KekRefused(why) => {
                    VaultError::KekRefused(format!("AWS KMS key {key_id} (master key v{version}): {why}"))
                }
                other => other,
            })?;
        }
        Ok(kms)
    }

    /// True when master key `version` is held by KMS.
    pub fn holds(&self, version: KekVersion) -> bool {
        self.keys.iter().any(|(v, _)| *v == version)
    }

    fn key_id(&self, version: KekVersion) -> Result<&str, VaultError> {
        self.keys
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, id)| id.as_str())
            .ok_or(VaultError::UnknownKekVersion(version))
    }

    /// Wraps and unwraps a throwaway data key under `version`.
    async fn check(&self, version: KekVersion) -> Result<(), VaultError> {
        let mut probe: DataKey = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(probe.as_mut());
        let ctx = SealContext {
            tenant_id: uuid::Uuid::nil(),
            end_user_id: uuid::Uuid::nil(),
            provider: "relay.startup-check",
            record_id: uuid::Uuid::nil(),
        };
        let wrapped = self.wrap(version, &probe, &ctx).await?;
        let back = self.decrypt(version, &wrapped, &ctx).await?;
        if back != probe {
            return Err(VaultError::Decrypt);
        }
        Ok(())
    }

    async fn decrypt(&self, version: KekVersion, wrapped: &[u8], ctx: &SealContext<'_>) -> Result<DataKey, VaultError> {
        let mut out = self
            .client
            .decrypt()
            .key_id(self.key_id(version)?)
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_encryption_context(Some(ctx.encryption_context(version)))
            .send()
            .await
            .map_err(classify)?;
        let plain = Zeroizing::new(out.plaintext.take().map(Blob::into_inner).unwrap_or_default());
        let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| VaultError::Decrypt)?;
        Ok(Zeroizing::new(key))
    }
}

#[async_trait]
impl KekSource for AwsKms {
    fn current_version(&self) -> KekVersion {
        self.keys.first().map(|(v, _)| *v).unwrap_or_default()
    }

    async fn wrap(&self, version: KekVersion, dek: &DataKey, ctx: &SealContext<'_>) -> Result<Vec<u8>, VaultError> {
        let out = self
            .client
            .encrypt()
            .key_id(self.key_id(version)?)
            .plaintext(Blob::new(dek.to_vec()))
            .set_encryption_context(Some(ctx.encryption_context(version)))
            .send()
            .await
            .map_err(classify)?;
        out.ciphertext_blob.map(Blob::into_inner).ok_or(VaultError::Encrypt)
    }

    async fn unwrap(&self, version: KekVersion, wrapped: &[u8], ctx: &SealContext<'_>) -> Result<DataKey, VaultError> {
        let slot = DekCache::slot(version, wrapped, ctx);
        if let Some(dek) = self.cache.get(&slot) {
            return Ok(dek);
        }
        let dek = self.decrypt(version, wrapped, ctx).await?;
        self.cache.insert(slot, dek.clone());
        Ok(dek)
    }
}

/// Sorts an SDK error into the vault's three answers: not this ciphertext, not now, or no.
/// The text keeps KMS's error code and message (key ids, never key material) for the log.
fn classify<E, R>(e: SdkError<E, R>) -> VaultError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let code = e.code().map(str::to_owned);
    let message = e.message().map(str::to_owned);
    match (&e, code.as_deref()) {
        (SdkError::ServiceError(_), Some(code)) if NOT_THIS_CIPHERTEXT_CODES.contains(&code) => VaultError::Decrypt,
        (SdkError::ServiceError(_), Some(code)) if TRANSIENT_CODES.contains(&code) => {
            VaultError::KekUnavailable(format!("{code}: {}", message.unwrap_or_default()))
        }
        (SdkError::ServiceError(_), Some(code)) => {
            VaultError::KekRefused(format!("{code}: {}", message.unwrap_or_default()))
        }
        (SdkError::TimeoutError(_), _) => VaultError::KekUnavailable("timed out".to_owned()),
        (SdkError::DispatchFailure(d), _) => VaultError::KekUnavailable(if d.is_timeout() {
            "timed out".to_owned()
        } else {
            "could not connect".to_owned()
        }),
        (SdkError::ConstructionFailure(_), _) => VaultError::KekRefused(format!(
            "the request could not be made (credentials or configuration): {}",
            error_chain(&e)
        )),
        _ => VaultError::KekUnavailable(format!("unexpected answer: {}", error_chain(&e))),
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Unwrapped data keys by (version, context, wrapped bytes), for `DEK_CACHE_TTL`. Bounded: when
/// full, expired entries go, and if none has expired an arbitrary one does.
#[derive(Default)]
struct DekCache {
    entries: Mutex<HashMap<[u8; 32], (Instant, DataKey)>>,
}

impl DekCache {
    fn slot(version: KekVersion, wrapped: &[u8], ctx: &SealContext<'_>) -> [u8; 32] {
        let aad = ctx.dek_aad(version);
        let mut h = Sha256::new();
        h.update(version.to_be_bytes());
        h.update(u64::try_from(aad.len()).unwrap_or(u64::MAX).to_be_bytes());
        h.update(&aad);
        h.update(wrapped);
        h.finalize().into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Instant, DataKey)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, slot: &[u8; 32]) -> Option<DataKey> {
        let mut map = self.lock();
        match map.get(slot) {
            Some((at, dek)) if at.elapsed() < DEK_CACHE_TTL => Some(dek.clone()),
            Some(_) => {
                map.remove(slot);
                None
            }
            None => None,
        }
    }

    fn insert(&self, slot: [u8; 32], dek: DataKey) {
        let mut map = self.lock();
        if map.len() >= DEK_CACHE_CAP {
            map.retain(|_, (at, _)| at.elapsed() < DEK_CACHE_TTL);
        }
        if map.len() >= DEK_CACHE_CAP {
            if let Some(victim) = map.keys().next().copied() {
                map.remove(&victim);
            }
        }
        map.insert(slot, (Instant::now(), dek));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dek_cache_stays_within_its_bound() {
        let cache = DekCache::default();
        for i in 0..(DEK_CACHE_CAP as u32 * 3) {
            let mut slot = [0u8; 32];
            slot[..4].copy_from_slice(&i.to_be_bytes());
            cache.insert(slot, Zeroizing::new([1u8; 32]));
            assert!(cache.len() <= DEK_CACHE_CAP);
        }
        let mut last = [0u8; 32];
        last[..4].copy_from_slice(&(DEK_CACHE_CAP as u32 * 3 - 1).to_be_bytes());
        assert!(cache.get(&last).is_some(), "the newest entry is kept");
    }

    #[test]
    fn cache_slots_differ_by_context_version_and_bytes() {
        let ctx = SealContext {
            tenant_id: uuid::Uuid::from_u128(1),
            end_user_id: uuid::Uuid::from_u128(2),
            provider: "openai",
            record_id: uuid::Uuid::from_u128(3),
        };
        let other = SealContext { record_id: uuid::Uuid::from_u128(4), ..ctx };
        let base = DekCache::slot(1, b"wrapped", &ctx);
        assert_ne!(base, DekCache::slot(1, b"wrapped", &other));
        assert_ne!(base, DekCache::slot(2, b"wrapped", &ctx));
        assert_ne!(base, DekCache::slot(1, b"wrappeD", &ctx));
        assert_eq!(base, DekCache::slot(1, b"wrapped", &ctx));
    }
}
