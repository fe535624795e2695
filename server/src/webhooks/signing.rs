//! The signing half of Standard Webhooks: secrets (`whsec_` + base64) and the `v1` signature,
//! HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed with the base64-decoded secret.
//!
//! Written here on `hmac` + `sha2` (already Relay's dependencies) because it is ten lines; the
//! Rust `svix` crate would bring a second HTTP client stack for them. Tests verify these
//! signatures with the `standardwebhooks` Python library.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

pub const SECRET_PREFIX: &str = "whsec_";

/// A new endpoint secret: `whsec_` + base64 of 24 random bytes.
pub fn new_secret() -> SecretString {
    let mut bytes = Zeroizing::new([0u8; 24]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    SecretString::from(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes.as_ref())))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the webhook secret is not whsec_ followed by base64")]
pub struct BadSecret;

/// The `webhook-signature` header value for one attempt.
pub fn sign(secret: &SecretString, msg_id: &str, timestamp: i64, body: &str) -> Result<String, BadSecret> {
    let raw = secret.expose_secret();
    let key = Zeroizing::new(STANDARD.decode(raw.strip_prefix(SECRET_PREFIX).unwrap_or(raw)).map_err(|_| BadSecret)?);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specifications_example() {
        // The example in the Standard Webhooks specification's test vectors.
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned());
        let sig = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, r#"{"test": 2432232314}"#);
        assert_eq!(sig.as_deref(), Ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
    }

    #[test]
    fn secrets_are_24_random_bytes_and_signatures_depend_on_every_part() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a.expose_secret(), b.expose_secret());
        let decoded = STANDARD.decode(a.expose_secret().strip_prefix(SECRET_PREFIX).expect("prefix")).expect("b64");
        assert_eq!(decoded.len(), 24);
        let base = sign(&a, "msg_1", 10, "{}").expect("sign");
        assert_ne!(sign(&b, "msg_1", 10, "{}").expect("sign"), base);
        assert_ne!(sign(&a, "msg_2", 10, "{}").expect("sign"), base);
        assert_ne!(sign(&a, "msg_1", 11, "{}").expect("sign"), base);
        assert_ne!(sign(&a, "msg_1", 10, "{ }").expect("sign"), base);
        assert_eq!(sign(&SecretString::from("whsec_***".to_owned()), "m", 1, ""), Err(BadSecret));
    }
}
