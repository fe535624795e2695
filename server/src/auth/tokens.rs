//! The secrets Relay hands out: developer API keys (`rly-`) and registration tokens (`rrt-`).
//! Both end in a CRC32 checksum (base62) so secret scanners can tell a real one from noise, and
//! both are reduced to a SHA-256 hash as soon as they are parsed; only the hash is stored.

use std::fmt;

use rand::distributions::{Alphanumeric, DistString};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CHECKSUM_LEN: usize = 6;

pub const API_KEY_PREFIX: &str = "rly-";
const API_KEY_ID_LEN: usize = 12;
/// 44 base62 characters: 261 bits.
const API_KEY_SECRET_LEN: usize = 44;

pub const REGISTRATION_TOKEN_PREFIX: &str = "rrt-";
/// 44 base62 characters: 261 bits.
const REGISTRATION_TOKEN_LEN: usize = 44;

pub type SecretHash = [u8; 32];

fn checksum(body: &str) -> String {
    let mut n = u64::from(crc32fast::hash(body.as_bytes()));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

fn sha256(s: &str) -> SecretHash {
    Sha256::digest(s.as_bytes()).into()
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Splits `prefix + body + checksum` and checks the checksum; `None` when it is not one of ours.
fn split_checked<'a>(raw: &'a str, prefix: &str, body_len: usize) -> Option<&'a str> {
    let rest = raw.strip_prefix(prefix)?;
    if rest.len() != body_len + CHECKSUM_LEN || !is_base62(rest) {
        return None;
    }
    let (body, sum) = rest.split_at(body_len);
    (checksum(&raw[..prefix.len() + body_len]) == sum).then_some(body)
}

/// `body` followed by its checksum: how every token is finished. Public for tests that forge
/// well-formed but unknown keys.
pub fn append_checksum(body: &str) -> String {
    format!("{body}{}", checksum(body))
}

/// A developer API key as the server sees it after parsing: the public id and the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedApiKey {
    pub public_id: String,
    pub hash: SecretHash,
    pub last4: String,
}

impl fmt::Debug for ParsedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParsedApiKey(rly-…{})", self.last4)
    }
}

impl ParsedApiKey {
    /// Parses `rly-<id><secret><checksum>`; the secret itself is not kept.
    pub fn parse(raw: &str) -> Option<Self> {
        let body = split_checked(raw, API_KEY_PREFIX, API_KEY_ID_LEN + API_KEY_SECRET_LEN)?;
        Some(Self {
            public_id: body[..API_KEY_ID_LEN].to_owned(),
            hash: sha256(raw),
            last4: raw[raw.len() - 4..].to_owned(),
        })
    }

    /// How the key is shown after creation: `rly-…WXYZ`.
    pub fn display(&self) -> String {
        format!("{API_KEY_PREFIX}…{}", self.last4)
    }
}

/// Makes a new developer API key: the full secret (shown once) and its parsed form (stored).
pub fn generate_api_key() -> (SecretString, ParsedApiKey) {
    let mut rng = rand::rngs::OsRng;
    let body = format!(
        "{API_KEY_PREFIX}{}{}",
        Alphanumeric.sample_string(&mut rng, API_KEY_ID_LEN),
        Alphanumeric.sample_string(&mut rng, API_KEY_SECRET_LEN)
    );
    let full = format!("{body}{}", checksum(&body));
    let parsed = ParsedApiKey::parse(&full);
    // A key we just built always parses; the fallback only keeps this free of panics.
    let parsed =
        parsed.unwrap_or_else(|| ParsedApiKey { public_id: String::new(), hash: sha256(&full), last4: String::new() });
    (SecretString::from(full), parsed)
}

/// A registration token reduced to its hash.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RegistrationTokenHash(pub SecretHash);

impl fmt::Debug for RegistrationTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RegistrationTokenHash([REDACTED])")
    }
}

impl RegistrationTokenHash {
    pub fn parse(raw: &str) -> Option<Self> {
        split_checked(raw, REGISTRATION_TOKEN_PREFIX, REGISTRATION_TOKEN_LEN)?;
        Some(Self(sha256(raw)))
    }
}

pub fn generate_registration_token() -> (SecretString, RegistrationTokenHash) {
    let body = format!(
        "{REGISTRATION_TOKEN_PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::rngs::OsRng, REGISTRATION_TOKEN_LEN)
    );
    let full = format!("{body}{}", checksum(&body));
    let hash = RegistrationTokenHash(sha256(&full));
    (SecretString::from(full), hash)
}

/// Constant-time comparison of two secret hashes.
pub fn hashes_equal(a: &SecretHash, b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    b.len() == a.len() && bool::from(a.ct_eq(b))
}

/// Exposes a generated secret for the one response that shows it.
pub fn reveal(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_round_trip_and_carry_enough_entropy() {
        let (full, parsed) = generate_api_key();
        let raw = full.expose_secret();
        assert!(raw.starts_with("rly-"));
        assert_eq!(raw.len(), 4 + 12 + 44 + 6);
        let again = ParsedApiKey::parse(raw).expect("parses");
        assert_eq!(again, parsed);
        assert_eq!(parsed.display(), format!("rly-…{}", &raw[raw.len() - 4..]));
        // 44 base62 characters carry at least 256 bits.
        assert!(44.0 * 62f64.log2() >= 256.0);
    }

    #[test]
    fn checksum_catches_typos() {
        let (full, _) = generate_api_key();
        let raw = full.expose_secret();
        let mut chars: Vec<char> = raw.chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert!(ParsedApiKey::parse(&typo).is_none());
        assert!(ParsedApiKey::parse(&raw[..raw.len() - 1]).is_none());
        assert!(ParsedApiKey::parse(&format!("{raw}x")).is_none());
        assert!(ParsedApiKey::parse("rly-").is_none());
        assert!(ParsedApiKey::parse("").is_none());
    }

    #[test]
    fn registration_tokens() {
        let (full, hash) = generate_registration_token();
        assert!(full.expose_secret().starts_with("rrt-"));
        assert_eq!(RegistrationTokenHash::parse(full.expose_secret()), Some(hash));
        // A developer key is not a registration token and the other way round.
        let (api, _) = generate_api_key();
        assert!(RegistrationTokenHash::parse(api.expose_secret()).is_none());
        assert!(ParsedApiKey::parse(full.expose_secret()).is_none());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let (full, parsed) = generate_api_key();
        let secret_part = &full.expose_secret()[16..60];
        assert!(!format!("{parsed:?}").contains(secret_part));
        assert!(!format!("{full:?}").contains(secret_part));
        let (tok, hash) = generate_registration_token();
        assert!(!format!("{hash:?} {tok:?}").contains(&tok.expose_secret()[4..]));
    }
}
