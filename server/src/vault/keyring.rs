//! Master keys (KEKs): the `KekSource` trait that wraps and unwraps data keys, the master key
//! list (`MasterKeys`: each version held here or in AWS KMS) and the local keyring.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::aws_kms::AwsKms;
use super::{DataKey, SealContext, VaultError};

/// A KEK version as written in `v<N>:...` and stored next to every wrapped data key.
pub type KekVersion = u32;

const WRAP_NONCE_LEN: usize = 12;
const AWS_KMS_PREFIX: &str = "aws-kms:";

/// Where master keys live. Wrapping always uses the newest version; unwrapping any known one.
/// `ctx` is the record the data key belongs to: each source binds it (and the version) so a
/// wrapped key copied to another record does not unwrap.
#[async_trait]
pub trait KekSource: Send + Sync + 'static {
    /// The version new data keys are wrapped under.
    fn current_version(&self) -> KekVersion;

    /// Wraps `dek` under KEK `version`, bound to `ctx`.
    async fn wrap(&self, version: KekVersion, dek: &DataKey, ctx: &SealContext<'_>) -> Result<Vec<u8>, VaultError>;

    /// Unwraps a data key wrapped by `wrap` with the same version and context.
    async fn unwrap(&self, version: KekVersion, wrapped: &[u8], ctx: &SealContext<'_>) -> Result<DataKey, VaultError>;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    #[error("no master key is configured")]
    Empty,
    #[error("master key entry {0} is not of the form v<N>:<base64 of 32 bytes> or v<N>:aws-kms:<key id>")]
    Malformed(usize),
    #[error("master key entry {0} does not decode to exactly 32 bytes")]
    WrongLength(usize),
    #[error("master key version v{0} appears more than once")]
    DuplicateVersion(KekVersion),
    #[error("master keys must be listed newest first (v{newer} is listed after v{older})")]
    NotNewestFirst { newer: KekVersion, older: KekVersion },
    #[error("master key v{0} is held by AWS KMS, not in this process")]
    NotLocal(KekVersion),
}

/// One master key version: its bytes, or the AWS KMS key that holds it.
enum MasterKey {
    Local(Zeroizing<[u8; 32]>),
    AwsKms(String),
}

/// The configured master keys, newest first, as parsed from `RELAY_MASTER_KEYS` or a key file:
/// `v<N>:<base64 of 32 bytes>` for a key held here, `v<N>:aws-kms:<key id, ARN or alias>` for
/// one held by AWS KMS. Mixing both is how keys move between them (`relay kek rotate`).
pub struct MasterKeys {
    entries: Vec<(KekVersion, MasterKey)>,
}

impl MasterKeys {
    /// Parses `v2:aws-kms:alias/relay,v1:<base64>` (commas or newlines between entries, `#`
    /// comments), newest first.
    pub fn parse(spec: &SecretString) -> Result<Self, KeyringError> {
        let mut entries: Vec<(KekVersion, MasterKey)> = Vec::new();
        let lines =
            spec.expose_secret().split([',', '\n']).map(str::trim).filter(|e| !e.is_empty() && !e.starts_with('#'));
        for (i, entry) in lines.enumerate() {
            let n = i + 1;
            let (version, rest) = entry.split_once(':').ok_or(KeyringError::Malformed(n))?;
            let version: KekVersion = version
                .strip_prefix('v')
                .and_then(|v| v.parse().ok())
                .filter(|v| *v > 0)
                .ok_or(KeyringError::Malformed(n))?;
            let key = match rest.trim().strip_prefix(AWS_KMS_PREFIX) {
                Some(key_id) => MasterKey::AwsKms(parse_kms_key_id(key_id).ok_or(KeyringError::Malformed(n))?),
                None => {
                    let bytes = Zeroizing::new(
                        base64::engine::general_purpose::STANDARD
                            .decode(rest.trim())
                            .map_err(|_| KeyringError::Malformed(n))?,
                    );
                    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyringError::WrongLength(n))?;
                    MasterKey::Local(Zeroizing::new(key))
                }
            };
            if entries.iter().any(|(v, _)| *v == version) {
                return Err(KeyringError::DuplicateVersion(version));
            }
            if let Some((prev, _)) = entries.last() {
                if *prev < version {
                    return Err(KeyringError::NotNewestFirst { newer: version, older: *prev });
                }
            }
            entries.push((version, key));
        }
        if entries.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Self { entries })
    }

    /// One AWS KMS key as master key v1: what `RELAY_KMS_KEY_ID` alone means.
    pub fn aws_kms(key_id: &str) -> Result<Self, KeyringError> {
        let key_id = parse_kms_key_id(key_id).ok_or(KeyringError::Malformed(1))?;
        Ok(Self { entries: vec![(1, MasterKey::AwsKms(key_id))] })
    }

    pub fn current_version(&self) -> KekVersion {
        self.entries.first().map(|(v, _)| *v).unwrap_or_default()
    }

    pub fn versions(&self) -> impl Iterator<Item = KekVersion> + '_ {
        self.entries.iter().map(|(v, _)| *v)
    }

    /// The versions held by AWS KMS, with their key ids.
    pub fn aws_kms_keys(&self) -> Vec<(KekVersion, String)> {
        self.entries
            .iter()
            .filter_map(|(v, k)| match k {
                MasterKey::AwsKms(id) => Some((*v, id.clone())),
                MasterKey::Local(_) => None,
            })
            .collect()
    }

    /// The `KekSource` for these keys. With an AWS KMS entry this loads the AWS configuration
    /// from the standard environment and checks that the KMS keys answer.
    pub async fn into_source(self) -> Result<Arc<dyn KekSource>, VaultError> {
        let current = self.current_version();
        let kms_keys = self.aws_kms_keys();
        let local = LocalKeyring {
            keys: self
                .entries
                .into_iter()
                .filter_map(|(v, k)| match k {
                    MasterKey::Local(bytes) => Some((v, bytes)),
                    MasterKey::AwsKms(_) => None,
                })
                .collect(),
        };
        if kms_keys.is_empty() {
            return Ok(Arc::new(local));
        }
        let kms = AwsKms::connect(kms_keys, current).await?;
        Ok(Arc::new(Keyring { current, local, kms }))
    }
}

impl fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeys")
            .field("versions", &self.versions().collect::<Vec<_>>())
            .field("aws_kms", &self.aws_kms_keys())
            .field("keys", &"[REDACTED]")
            .finish()
    }
}

/// A KMS key id, ARN or alias: printable, no spaces, as KMS bounds it (2048 characters).
fn parse_kms_key_id(raw: &str) -> Option<String> {
    let id = raw.trim();
    (!id.is_empty() && id.len() <= 2048 && id.chars().all(|c| c.is_ascii_graphic())).then(|| id.to_owned())
}

/// Local master keys and AWS KMS keys side by side: each version goes to the one that holds it.
struct Keyring {
    current: KekVersion,
    local: LocalKeyring,
    kms: AwsKms,
}

#[async_trait]
impl KekSource for Keyring {
    fn current_version(&self) -> KekVersion {
        self.current
    }

    async fn wrap(&self, version: KekVersion, dek: &DataKey, ctx: &SealContext<'_>) -> Result<Vec<u8>, VaultError> {
        if self.kms.holds(version) {
            self.kms.wrap(version, dek, ctx).await
        } else {
            self.local.wrap(version, dek, ctx).await
        }
    }

    async fn unwrap(&self, version: KekVersion, wrapped: &[u8], ctx: &SealContext<'_>) -> Result<DataKey, VaultError> {
        if self.kms.holds(version) {
            self.kms.unwrap(version, wrapped, ctx).await
        } else {
            self.local.unwrap(version, wrapped, ctx).await
        }
    }
}

/// Master keys held in process memory, newest first. AES-256-GCM wraps data keys.
pub struct LocalKeyring {
    keys: Vec<(KekVersion, Zeroizing<[u8; 32]>)>,
}

impl LocalKeyring {
    /// Parses a master key list whose keys are all held here (see `MasterKeys::parse`).
    pub fn parse(spec: &SecretString) -> Result<Self, KeyringError> {
        let keys = MasterKeys::parse(spec)?;
        let mut local = Vec::with_capacity(keys.entries.len());
        for (version, key) in keys.entries {
            match key {
                MasterKey::Local(bytes) => local.push((version, bytes)),
                MasterKey::AwsKms(_) => return Err(KeyringError::NotLocal(version)),
            }
        }
        Ok(Self { keys: local })
    }

    /// A fresh random master key entry, `v<version>:<base64>`, for a key file or the env.
    pub fn generate_entry(version: KekVersion) -> SecretString {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        let b64 = base64::engine::general_purpose::STANDARD.encode(key.as_ref());
        SecretString::from(format!("v{version}:{b64}"))
    }

    pub fn versions(&self) -> impl Iterator<Item = KekVersion> + '_ {
        self.keys.iter().map(|(v, _)| *v)
    }

    fn key(&self, version: KekVersion) -> Result<&[u8; 32], VaultError> {
        self.keys.iter().find(|(v, _)| *v == version).map(|(_, k)| &**k).ok_or(VaultError::UnknownKekVersion(version))
    }
}

impl fmt::Debug for LocalKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKeyring")
            .field("versions", &self.versions().collect::<Vec<_>>())
            .field("keys", &"[REDACTED]")
            .finish()
    }
}

#[async_trait]
impl KekSource for LocalKeyring {
    fn current_version(&self) -> KekVersion {
        self.keys.first().map(|(v, _)| *v).unwrap_or_default()
    }

    async fn wrap(&self, version: KekVersion, dek: &DataKey, ctx: &SealContext<'_>) -> Result<Vec<u8>, VaultError> {
        let aad = &ctx.dek_aad(version);
        let cipher = Aes256Gcm::new(self.key(version)?.into());
        let mut nonce = [0u8; WRAP_NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: dek.as_ref(), aad })
            .map_err(|_| VaultError::Encrypt)?;
        let mut out = Vec::with_capacity(WRAP_NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    async fn unwrap(&self, version: KekVersion, wrapped: &[u8], ctx: &SealContext<'_>) -> Result<DataKey, VaultError> {
        let aad = &ctx.dek_aad(version);
        let cipher = Aes256Gcm::new(self.key(version)?.into());
        if wrapped.len() < WRAP_NONCE_LEN {
            return Err(VaultError::Decrypt);
        }
        let (nonce, body) = wrapped.split_at(WRAP_NONCE_LEN);
        let plain = Zeroizing::new(
            cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad }).map_err(|_| VaultError::Decrypt)?,
        );
        let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| VaultError::Decrypt)?;
        Ok(Zeroizing::new(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn parses_newest_first() {
        let a = LocalKeyring::generate_entry(2);
        let b = LocalKeyring::generate_entry(1);
        let ring =
            LocalKeyring::parse(&spec(&format!("{},{}", a.expose_secret(), b.expose_secret()))).expect("valid keyring");
        assert_eq!(ring.current_version(), 2);
        assert_eq!(ring.versions().collect::<Vec<_>>(), vec![2, 1]);
    }

    #[test]
    fn rejects_bad_specs() {
        let one = LocalKeyring::generate_entry(1);
        let two = LocalKeyring::generate_entry(2);
        assert_eq!(LocalKeyring::parse(&spec("")).err(), Some(KeyringError::Empty));
        assert_eq!(LocalKeyring::parse(&spec("nonsense")).err(), Some(KeyringError::Malformed(1)));
        assert_eq!(LocalKeyring::parse(&spec("v1:AAAA")).err(), Some(KeyringError::WrongLength(1)));
        assert_eq!(LocalKeyring::parse(&spec("v0:AAAA")).err(), Some(KeyringError::Malformed(1)));
        let dup = format!("{},{}", one.expose_secret(), one.expose_secret());
        assert_eq!(LocalKeyring::parse(&spec(&dup)).err(), Some(KeyringError::DuplicateVersion(1)));
        let order = format!("{},{}", one.expose_secret(), two.expose_secret());
        assert_eq!(LocalKeyring::parse(&spec(&order)).err(), Some(KeyringError::NotNewestFirst { newer: 2, older: 1 }));
    }

    #[test]
    fn kms_entries_take_their_place_among_local_ones() {
        let v1 = LocalKeyring::generate_entry(1);
        let keys = MasterKeys::parse(&spec(&format!(
            "v3:aws-kms:alias/relay\nv2:aws-kms: arn:aws:kms:eu-west-1:1:key/ab ,{}",
            v1.expose_secret()
        )))
        .expect("valid list");
        assert_eq!(keys.current_version(), 3);
        assert_eq!(keys.versions().collect::<Vec<_>>(), vec![3, 2, 1]);
        assert_eq!(
            keys.aws_kms_keys(),
            vec![(3, "alias/relay".to_owned()), (2, "arn:aws:kms:eu-west-1:1:key/ab".to_owned())]
        );
        assert_eq!(
            MasterKeys::aws_kms("alias/relay").expect("valid").aws_kms_keys(),
            vec![(1, "alias/relay".to_owned())]
        );
        // A list with a KMS key is not a local keyring, and bad KMS entries are refused.
        assert_eq!(LocalKeyring::parse(&spec("v1:aws-kms:alias/x")).err(), Some(KeyringError::NotLocal(1)));
        assert_eq!(
            MasterKeys::parse(&spec("v1:aws-kms:")).err().map(|e| e.to_string()),
            Some(KeyringError::Malformed(1).to_string())
        );
        assert_eq!(
            MasterKeys::parse(&spec("v1:aws-kms:has space")).err().map(|e| e.to_string()),
            Some(KeyringError::Malformed(1).to_string())
        );
        let order = format!("{},v2:aws-kms:alias/x", v1.expose_secret());
        assert!(matches!(MasterKeys::parse(&spec(&order)), Err(KeyringError::NotNewestFirst { newer: 2, older: 1 })));
        assert!(MasterKeys::aws_kms(" ").is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let e = LocalKeyring::generate_entry(1);
        let ring = LocalKeyring::parse(&e).expect("valid");
        let b64 = e.expose_secret().split_once(':').map(|(_, k)| k.to_owned()).unwrap_or_default();
        assert!(!format!("{ring:?}").contains(&b64));
        assert!(format!("{ring:?}").contains("REDACTED"));
    }
}
