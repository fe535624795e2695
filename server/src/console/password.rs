//! Console passwords: Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane) as PHC
//! strings, the policy a new password must meet, and a dummy check for unknown accounts.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

/// The shortest password accepted (characters).
pub const MIN_CHARS: usize = 12;
/// The longest (bytes): Argon2 takes any length, but a megabyte "password" is a denial of service.
pub const MAX_BYTES: usize = 256;

fn argon2() -> Argon2<'static> {
    // OWASP Password Storage Cheat Sheet: m = 19 MiB, t = 2, p = 1.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a new password is refused (shown to the user as is).
pub fn policy_error(password: &SecretString) -> Option<&'static str> {
    let p = password.expose_secret();
    if p.chars().count() < MIN_CHARS {
        Some("The password must be at least 12 characters long.")
    } else if p.len() > MAX_BYTES {
        Some("The password must be at most 256 bytes long.")
    } else if p.chars().all(|c| c == p.chars().next().unwrap_or(' ')) {
        Some("The password must not repeat a single character.")
    } else {
        None
    }
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) of `password`, with a fresh salt.
/// Slow on purpose: call it off the async workers (`web::block`, `spawn_blocking`).
pub fn hash(password: &SecretString) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("could not hash a password: {e}"))
}

/// Whether `password` matches `phc`. The parameters are the stored ones, so hashes made with
/// older parameters still verify.
pub fn verify(password: &SecretString, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    if password.expose_secret().len() > MAX_BYTES {
        return false;
    }
    argon2().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok()
}

/// The same work as `verify` against an account that does not exist, so that an unknown email
/// takes as long to refuse as a wrong password.
pub fn dummy_verify(password: &SecretString) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash(&SecretString::from("relay-console-dummy-password")).unwrap_or_default());
    let _ = verify(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_with_owasp_parameters_and_verify() {
        let pw = SecretString::from("correct horse battery staple");
        let phc = hash(&pw).expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(&pw, &phc));
        assert!(!verify(&SecretString::from("correct horse battery stapl"), &phc));
        assert!(!verify(&pw, "not a phc string"));
        assert_ne!(phc, hash(&pw).expect("hash"), "a fresh salt each time");
        dummy_verify(&pw);
    }

    #[test]
    fn policy() {
        assert!(policy_error(&SecretString::from("short")).is_some());
        assert!(policy_error(&SecretString::from("aaaaaaaaaaaaaaaa")).is_some());
        assert!(policy_error(&SecretString::from("x".repeat(300))).is_some());
        assert!(policy_error(&SecretString::from("a fine long passphrase")).is_none());
    }
}
