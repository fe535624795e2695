//! Master keys (KEKs): the `KekSource` trait that wraps and unwraps data keys, and the local
//! keyring that implements it from `RELAY_MASTER_KEYS` / a key file. A cloud KMS would be another
//! `KekSource`.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{DataKey, VaultError};

/// A KEK version as written in `v<N>:...` and stored next to every wrapped data key.
pub type KekVersion = u32;

const WRAP_NONCE_LEN: usize = 12;

/// Where master keys live. Wrapping always uses the newest version; unwrapping any known one.
#[async_trait]
pub trait KekSource: Send + Sync + 'static {
    /// The version new data keys are wrapped under.
    fn current_version(&self) -> KekVersion;

    /// Wraps `dek` under KEK `version`, binding `aad`.
    async fn wrap(&self, version: KekVersion, dek: &DataKey, aad: &[u8]) -> Result<Vec<u8>, VaultError>;

    /// Unwraps a data key wrapped by `wrap` with the same version and `aad`.
    async fn unwrap(&self, version: KekVersion, wrapped: &[u8], aad: &[u8]) -> Result<DataKey, VaultError>;
}

/// Master keys held in process memory, newest first. AES-256-GCM wraps data keys.
pub struct LocalKeyring {
    keys: Vec<(KekVersion, Zeroizing<[u8; 32]>)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    #[error("no master key is configured")]
    Empty,
    #[error("master key entry {0} is not of the form v<N>:<base64 of 32 bytes>")]
    Malformed(usize),
    #[error("master key entry {0} does not decode to exactly 32 bytes")]
    WrongLength(usize),
    #[error("master key version v{0} appears more than once")]
    DuplicateVersion(KekVersion),
    #[error("master keys must be listed newest first (v{newer} is listed after v{older})")]
    NotNewestFirst { newer: KekVersion, older: KekVersion },
}

impl LocalKeyring {
    /// Parses `v2:<base64>,v1:<base64>` (commas or newlines between entries), newest first.
    pub fn parse(spec: &SecretString) -> Result<Self, KeyringError> {
        let mut keys: Vec<(KekVersion, Zeroizing<[u8; 32]>)> = Vec::new();
        let entries =
            spec.expose_secret().split([',', '\n']).map(str::trim).filter(|e| !e.is_empty() && !e.starts_with('#'));
        for (i, entry) in entries.enumerate() {
            let n = i + 1;
            let (version, b64) = entry.split_once(':').ok_or(KeyringError::Malformed(n))?;
            let version: KekVersion = version
                .strip_prefix('v')
                .and_then(|v| v.parse().ok())
                .filter(|v| *v > 0)
                .ok_or(KeyringError::Malformed(n))?;
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| KeyringError::Malformed(n))?,
            );
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyringError::WrongLength(n))?;
            if keys.iter().any(|(v, _)| *v == version) {
                return Err(KeyringError::DuplicateVersion(version));
            }
            if let Some((prev, _)) = keys.last() {
                if *prev < version {
                    return Err(KeyringError::NotNewestFirst { newer: version, older: *prev });
                }
            }
            keys.push((version, Zeroizing::new(key)));
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Self { keys })
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

    async fn wrap(&self, version: KekVersion, dek: &DataKey, aad: &[u8]) -> Result<Vec<u8>, VaultError> {
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

    async fn unwrap(&self, version: KekVersion, wrapped: &[u8], aad: &[u8]) -> Result<DataKey, VaultError> {
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
    fn debug_is_redacted() {
        let e = LocalKeyring::generate_entry(1);
        let ring = LocalKeyring::parse(&e).expect("valid");
        let b64 = e.expose_secret().split_once(':').map(|(_, k)| k.to_owned()).unwrap_or_default();
        assert!(!format!("{ring:?}").contains(&b64));
        assert!(format!("{ring:?}").contains("REDACTED"));
    }
}
