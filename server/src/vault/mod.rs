//! Envelope encryption of end users' provider keys. Each key gets its own random data key (DEK):
//! XChaCha20-Poly1305 seals the key under the DEK, and a `KekSource` wraps the DEK (AES-256-GCM).
//!
//! Both seals bind the record's context (tenant, end user, provider, record id; the wrap also the
//! KEK version) as associated data, so bytes copied to another row do not open. The KEK version is
//! left out of the key seal on purpose: rotation re-wraps DEKs only, it never touches key bytes.

mod aws_kms;
mod keyring;

use std::fmt;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;
use zeroize::Zeroizing;

pub use keyring::{KekSource, KekVersion, KeyringError, LocalKeyring, MasterKeys};

/// A data key: plaintext only in memory, wiped on drop.
pub type DataKey = Zeroizing<[u8; 32]>;

const SEAL_NONCE_LEN: usize = 24;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("the stored key was wrapped under master key v{0}, which is not configured")]
    UnknownKekVersion(KekVersion),
    #[error("the stored key does not decrypt: it was altered or belongs to another record")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("the decrypted key is not valid UTF-8")]
    NotUtf8,
    /// The master key service could not answer now (unreachable, throttled, its own fault).
    #[error("the master key service did not answer: {0}")]
    KekUnavailable(String),
    /// The master key service answered no: access denied, key disabled or deleted. Retrying
    /// will not help until the operator fixes it.
    #[error("the master key service refused: {0}")]
    KekRefused(String),
}

/// Who a sealed key belongs to. Every field is bound into the ciphertexts.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    pub tenant_id: Uuid,
    pub end_user_id: Uuid,
    pub provider: &'a str,
    pub record_id: Uuid,
}

impl SealContext<'_> {
    /// Length-prefixed fields, so no two different contexts encode to the same bytes.
    fn aad(&self, purpose: &[u8], kek_version: Option<KekVersion>) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        let mut field = |bytes: &[u8]| {
            out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        field(b"relay.vault.v1");
        field(purpose);
        field(self.tenant_id.as_bytes());
        field(self.end_user_id.as_bytes());
        field(self.provider.as_bytes());
        field(self.record_id.as_bytes());
        if let Some(v) = kek_version {
            field(&v.to_be_bytes());
        }
        out
    }

    /// What a data key's wrap under KEK `version` binds.
    fn dek_aad(&self, version: KekVersion) -> Vec<u8> {
        self.aad(b"dek", Some(version))
    }

    /// The same context as a KMS encryption context: the fields by name, so that KMS checks them
    /// on every unwrap and its audit log shows whose key each call opened.
    fn encryption_context(&self, version: KekVersion) -> std::collections::HashMap<String, String> {
        [
            ("relay", "vault.v1.dek".to_owned()),
            ("tenant", self.tenant_id.to_string()),
            ("endUser", self.end_user_id.to_string()),
            ("provider", self.provider.to_owned()),
            ("record", self.record_id.to_string()),
            ("kekVersion", version.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// What the store keeps for one provider key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub kek_version: KekVersion,
    /// 12-byte nonce || AES-256-GCM(DEK).
    pub wrapped_dek: Vec<u8>,
    /// 24-byte nonce || XChaCha20-Poly1305(provider key).
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedKey").field("kek_version", &self.kek_version).finish_non_exhaustive()
    }
}

/// Seals and opens provider keys.
#[derive(Clone)]
pub struct Vault {
    kek: Arc<dyn KekSource>,
}

impl Vault {
    pub fn new(kek: Arc<dyn KekSource>) -> Self {
        Self { kek }
    }

    pub fn current_kek_version(&self) -> KekVersion {
        self.kek.current_version()
    }

    pub async fn seal(&self, ctx: &SealContext<'_>, plaintext: &SecretString) -> Result<SealedKey, VaultError> {
        let mut dek: DataKey = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(dek.as_mut());
        let mut nonce = [0u8; SEAL_NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(dek.as_ref().into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload { msg: plaintext.expose_secret().as_bytes(), aad: &ctx.aad(b"key", None) },
            )
            .map_err(|_| VaultError::Encrypt)?;
        let mut ciphertext = Vec::with_capacity(SEAL_NONCE_LEN + sealed.len());
        ciphertext.extend_from_slice(&nonce);
        ciphertext.extend_from_slice(&sealed);

        let kek_version = self.kek.current_version();
        let wrapped_dek = self.kek.wrap(kek_version, &dek, ctx).await?;
        Ok(SealedKey { kek_version, wrapped_dek, ciphertext })
    }

    pub async fn open(&self, ctx: &SealContext<'_>, sealed: &SealedKey) -> Result<SecretString, VaultError> {
        let dek = self.kek.unwrap(sealed.kek_version, &sealed.wrapped_dek, ctx).await?;
        if sealed.ciphertext.len() < SEAL_NONCE_LEN {
            return Err(VaultError::Decrypt);
        }
        let (nonce, body) = sealed.ciphertext.split_at(SEAL_NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(dek.as_ref().into());
        let plain = Zeroizing::new(
            cipher
                .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad: &ctx.aad(b"key", None) })
                .map_err(|_| VaultError::Decrypt)?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| VaultError::NotUtf8)?;
        Ok(SecretString::from(text.to_owned()))
    }

    /// Re-wraps the data key under the newest KEK; `None` when it already is. The key bytes and
    /// their ciphertext stay as they are.
    pub async fn rewrap(&self, ctx: &SealContext<'_>, sealed: &SealedKey) -> Result<Option<SealedKey>, VaultError> {
        let target = self.kek.current_version();
        if sealed.kek_version == target {
            return Ok(None);
        }
        let dek = self.kek.unwrap(sealed.kek_version, &sealed.wrapped_dek, ctx).await?;
        let wrapped_dek = self.kek.wrap(target, &dek, ctx).await?;
        Ok(Some(SealedKey { kek_version: target, wrapped_dek, ciphertext: sealed.ciphertext.clone() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring(versions: &[KekVersion], entries: &mut Vec<(KekVersion, SecretString)>) -> Arc<dyn KekSource> {
        for v in versions {
            if !entries.iter().any(|(e, _)| e == v) {
                entries.push((*v, LocalKeyring::generate_entry(*v)));
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        let spec = entries.iter().map(|(_, s)| s.expose_secret().to_owned()).collect::<Vec<_>>().join(",");
        Arc::new(LocalKeyring::parse(&SecretString::from(spec)).expect("valid keyring"))
    }

    fn ctx(tenant: Uuid, user: Uuid, record: Uuid) -> SealContext<'static> {
        SealContext { tenant_id: tenant, end_user_id: user, provider: "openai", record_id: record }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
    }

    #[test]
    fn round_trip_and_context_binding() {
        block_on(async {
            let mut entries = Vec::new();
            let vault = Vault::new(ring(&[1], &mut entries));
            let (t, u, r) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
            let secret = SecretString::from("sk-test-plaintext-value".to_owned());
            let sealed = vault.seal(&ctx(t, u, r), &secret).await.expect("seal");
            let opened = vault.open(&ctx(t, u, r), &sealed).await.expect("open");
            assert_eq!(opened.expose_secret(), secret.expose_secret());

            // Any other owner, provider or record id: does not open.
            for other in [ctx(Uuid::new_v4(), u, r), ctx(t, Uuid::new_v4(), r), ctx(t, u, Uuid::new_v4())] {
                assert_eq!(vault.open(&other, &sealed).await.err(), Some(VaultError::Decrypt));
            }
            let other_provider = SealContext { provider: "anthropic", ..ctx(t, u, r) };
            assert_eq!(vault.open(&other_provider, &sealed).await.err(), Some(VaultError::Decrypt));

            // The ciphertext holds no plaintext.
            let hay = [sealed.ciphertext.clone(), sealed.wrapped_dek.clone()].concat();
            assert!(!hay.windows(secret.expose_secret().len()).any(|w| w == secret.expose_secret().as_bytes()));
        });
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        block_on(async {
            let mut entries = Vec::new();
            let vault = Vault::new(ring(&[1], &mut entries));
            let c = ctx(Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
            let sealed = vault.seal(&c, &SecretString::from("gsk_abc".to_owned())).await.expect("seal");
            for i in 0..sealed.wrapped_dek.len() {
                let mut s = sealed.clone();
                s.wrapped_dek[i] ^= 0x01;
                assert_eq!(vault.open(&c, &s).await.err(), Some(VaultError::Decrypt), "wrapped byte {i}");
            }
            for i in 0..sealed.ciphertext.len() {
                let mut s = sealed.clone();
                s.ciphertext[i] ^= 0x80;
                assert_eq!(vault.open(&c, &s).await.err(), Some(VaultError::Decrypt), "ciphertext byte {i}");
            }
            let mut truncated = sealed.clone();
            truncated.ciphertext.truncate(5);
            assert_eq!(vault.open(&c, &truncated).await.err(), Some(VaultError::Decrypt));
            let wrong_version = SealedKey { kek_version: 9, ..sealed.clone() };
            assert_eq!(vault.open(&c, &wrong_version).await.err(), Some(VaultError::UnknownKekVersion(9)));
        });
    }

    #[derive(Debug, Clone)]
    enum Op {
        Seal(usize),
        Open(usize),
        AddKek,
        Rewrap(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..6).prop_map(Op::Seal),
            (0usize..6).prop_map(Op::Open),
            Just(Op::AddKek),
            (0usize..6).prop_map(Op::Rewrap),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Random interleavings of seal, open, adding a KEK and re-wrapping: every open round-trips.
        #[test]
        fn rotation_interleavings_never_lose_a_key(ops in proptest::collection::vec(op(), 1..40)) {
            block_on(async {
                let mut entries = Vec::new();
                let mut versions = vec![1];
                let mut vault = Vault::new(ring(&versions, &mut entries));
                let tenant = Uuid::new_v4();
                let mut records: Vec<Option<(Uuid, Uuid, String, SealedKey)>> = vec![None; 6];
                for op in ops {
                    match op {
                        Op::Seal(i) => {
                            let (u, r) = (Uuid::new_v4(), Uuid::new_v4());
                            let plain = format!("key-{i}-{}", Uuid::new_v4());
                            let sealed = vault.seal(&ctx(tenant, u, r), &SecretString::from(plain.clone())).await.expect("seal");
                            assert_eq!(sealed.kek_version, vault.current_kek_version());
                            records[i] = Some((u, r, plain, sealed));
                        }
                        Op::Open(i) => if let Some((u, r, plain, sealed)) = &records[i] {
                            let opened = vault.open(&ctx(tenant, *u, *r), sealed).await.expect("open");
                            assert_eq!(opened.expose_secret(), plain);
                        },
                        Op::AddKek => {
                            let next = versions.iter().max().copied().unwrap_or(0) + 1;
                            versions.push(next);
                            vault = Vault::new(ring(&versions, &mut entries));
                        }
                        Op::Rewrap(i) => if let Some((u, r, _, sealed)) = &mut records[i] {
                            if let Some(new) = vault.rewrap(&ctx(tenant, *u, *r), sealed).await.expect("rewrap") {
                                assert_eq!(new.ciphertext, sealed.ciphertext);
                                *sealed = new;
                            }
                            assert_eq!(sealed.kek_version, vault.current_kek_version());
                        },
                    }
                }
                for (u, r, plain, sealed) in records.iter().flatten() {
                    let opened = vault.open(&ctx(tenant, *u, *r), sealed).await.expect("final open");
                    assert_eq!(opened.expose_secret(), plain);
                }
            });
        }
    }
}
