//! Session tokens: short-lived HS256 JWTs that let a browser act for one end user of one tenant
//! (optionally only for some providers), the service that issues and verifies them, and the
//! `BrowserSession` extractor that browser-facing routes authenticate with (`x-relay-token`).
//!
//! The signing key is one random 256-bit secret shared by every node: it lives in the store,
//! sealed by the vault (so a KMS `KekSource` covers it and `relay kek rotate` re-wraps it), and
//! is created by whichever node starts first. Revocation needs no token list: a token carries its
//! end user's `token_generation`, and bumping that (or erasing the user) kills every older token.

use std::fmt;
use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest};
use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use futures::future::LocalBoxFuture;
use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::signature::{Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::browser::BrowserAccess;
use crate::error::ApiError;
use crate::providers::ProviderId;
use crate::store::{DynStore, EndUser, SessionSigningKey};
use crate::vault::{SealContext, Vault};

/// The header a browser sends its session token in.
pub const SESSION_HEADER: &str = "x-relay-token";
/// `iss` of every token Relay issues.
pub const ISSUER: &str = "relay";
/// The one signing key row's name.
pub const SIGNING_KEY_NAME: &str = "primary";
/// The vault context's provider field for signing keys (tenant and end user are nil).
pub const SIGNING_KEY_PROVIDER: &str = "relay-session-signing";
/// Clock skew tolerated between nodes when checking `exp` (and `iat`).
pub const LEEWAY_SECS: u64 = 5;

/// The vault context a signing key row is sealed under.
pub fn signing_key_context(record_id: Uuid) -> SealContext<'static> {
    SealContext { tenant_id: Uuid::nil(), end_user_id: Uuid::nil(), provider: SIGNING_KEY_PROVIDER, record_id }
}

/// What a session token says. Not secret (a JWT's payload is readable), so `Debug` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    pub iss: String,
    /// Tenant id.
    pub tid: Uuid,
    /// End user id.
    pub sub: Uuid,
    /// The end user's `token_generation` when the token was issued.
    pub gen: i64,
    /// Providers the token may act for; absent means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prv: Option<Vec<String>>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

impl SessionClaims {
    /// Whether the token may act for this provider.
    pub fn allows(&self, provider: ProviderId) -> bool {
        self.prv.as_ref().is_none_or(|list| list.iter().any(|p| p == provider.as_str()))
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or_default()
    }
}

/// A token just issued: the only place it exists in Relay.
pub struct IssuedSession {
    pub token: SecretString,
    pub claims: SessionClaims,
}

impl fmt::Debug for IssuedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedSession").field("token", &"[REDACTED]").field("claims", &self.claims).finish()
    }
}

struct SigningKey {
    id: Uuid,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Issues and verifies session tokens. Cheap to clone.
#[derive(Clone)]
pub struct SessionService {
    store: DynStore,
    key: Arc<SigningKey>,
}

impl fmt::Debug for SessionService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService").field("key_id", &self.key.id).field("key", &"[REDACTED]").finish()
    }
}

impl SessionService {
    /// Loads the shared signing key, creating it if no node has yet. Two nodes starting at once
    /// both try to insert; the unique name lets one win, and both then use the row that is there.
    pub async fn load(store: DynStore, vault: &Vault) -> anyhow::Result<Self> {
        install_hs256_provider();
        let row = match store.get_session_signing_key(SIGNING_KEY_NAME).await? {
            Some(row) => row,
            None => {
                let candidate = new_signing_key(vault).await?;
                if store.insert_session_signing_key(&candidate).await? {
                    tracing::info!(key_id = %candidate.id, "created the session-token signing key");
                }
                store
                    .get_session_signing_key(SIGNING_KEY_NAME)
                    .await?
                    .context("the session signing key vanished right after it was stored")?
            }
        };
        let secret = vault.open(&signing_key_context(row.id), &row.sealed).await.with_context(|| {
            format!(
                "The session-token signing key (master key v{}) does not open with the configured master keys",
                row.sealed.kek_version
            )
        })?;
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD.decode(secret.expose_secret()).context("the stored session signing key is not base64")?,
        );
        anyhow::ensure!(bytes.len() >= 32, "the stored session signing key is too short");
        let key = SigningKey {
            id: row.id,
            encoding: EncodingKey::from_secret(&bytes),
            decoding: DecodingKey::from_secret(&bytes),
        };
        Ok(Self { store, key: Arc::new(key) })
    }

    /// Issues a token for `end_user`, valid for `ttl`, limited to `providers` when given.
    pub fn issue(
        &self,
        end_user: &EndUser,
        providers: Option<&[ProviderId]>,
        ttl: chrono::Duration,
    ) -> Result<IssuedSession, ApiError> {
        let now = Utc::now().timestamp();
        let claims = SessionClaims {
            iss: ISSUER.to_owned(),
            tid: end_user.tenant_id,
            sub: end_user.id,
            gen: end_user.token_generation,
            prv: providers.map(|list| list.iter().map(|p| p.as_str().to_owned()).collect()),
            iat: now,
            exp: now + ttl.num_seconds(),
            jti: Uuid::new_v4().simple().to_string(),
        };
        let token = self.sign(&claims)?;
        Ok(IssuedSession { token, claims })
    }

    /// Signs arbitrary claims with the real key. `issue` is the way to make a token; this is
    /// public for tests that need a correctly signed token with unusual claims (e.g. expired).
    pub fn sign(&self, claims: &SessionClaims) -> Result<SecretString, ApiError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.key.id.simple().to_string());
        jsonwebtoken::encode(&header, claims, &self.key.encoding)
            .map(SecretString::from)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("could not sign a session token: {e}")))
    }

    /// Checks signature (HS256 only), issuer and expiry, without asking the store.
    pub fn decode(&self, token: &str) -> Result<SessionClaims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let data =
            jsonwebtoken::decode::<SessionClaims>(token, &self.key.decoding, &validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => token_expired(),
                    _ => token_invalid(),
                }
            })?;
        let claims = data.claims;
        let skew = i64::try_from(LEEWAY_SECS).unwrap_or(5);
        if claims.iat > Utc::now().timestamp() + skew || claims.exp < claims.iat {
            return Err(token_invalid());
        }
        Ok(claims)
    }

    /// Checks the token and that its end user still exists in its tenant at the same
    /// generation: a revoked or erased user's tokens stop working at once, on every node.
    pub async fn verify(&self, token: &str) -> Result<(SessionClaims, EndUser), ApiError> {
        let claims = self.decode(token)?;
        let user = self.store.get_end_user_by_id(claims.tid, claims.sub).await?.ok_or_else(|| {
            ApiError::unauthenticated(
                "session_token_revoked",
                "This session token has been revoked: its end user no longer exists.",
            )
        })?;
        if user.token_generation != claims.gen {
            return Err(ApiError::unauthenticated(
                "session_token_revoked",
                "This session token has been revoked. Ask the app for a new one.",
            ));
        }
        Ok((claims, user))
    }
}

async fn new_signing_key(vault: &Vault) -> anyhow::Result<SessionSigningKey> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    let secret = SecretString::from(URL_SAFE_NO_PAD.encode(bytes.as_ref()));
    let id = Uuid::new_v4();
    let sealed = vault.seal(&signing_key_context(id), &secret).await.context("could not seal the signing key")?;
    Ok(SessionSigningKey { id, name: SIGNING_KEY_NAME.to_owned(), sealed, created_at: Utc::now() })
}

fn token_missing() -> ApiError {
    ApiError::unauthenticated(
        "session_token_missing",
        "No session token provided. Send it in the x-relay-token header.",
    )
}

fn token_invalid() -> ApiError {
    ApiError::unauthenticated("session_token_invalid", "The session token is not valid.")
}

fn token_expired() -> ApiError {
    ApiError::unauthenticated("session_token_expired", "The session token has expired. Ask the app for a new one.")
}

/// A browser request authenticated with a session token in `x-relay-token`, whose `Origin` (if
/// any) the token's tenant allows.
#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub claims: SessionClaims,
    pub end_user: EndUser,
}

impl FromRequest for BrowserSession {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let sessions = super::data::<SessionService>(&req)?;
            let browser = super::data::<BrowserAccess>(&req)?;
            let (claims, end_user) = authenticate_session(&sessions, &browser, &req).await?;
            Ok(Self { claims, end_user })
        })
    }
}

/// Verifies the request's `x-relay-token` and, when the request carries an `Origin`, that the
/// token's tenant allows that origin (403 `origin_not_allowed` otherwise).
pub async fn authenticate_session(
    sessions: &SessionService,
    browser: &BrowserAccess,
    req: &HttpRequest,
) -> Result<(SessionClaims, EndUser), ApiError> {
    let raw = req.headers().get(SESSION_HEADER).ok_or_else(token_missing)?;
    let raw = raw.to_str().map_err(|_| token_invalid())?.trim();
    if raw.is_empty() {
        return Err(token_missing());
    }
    let (claims, user) = sessions.verify(raw).await?;
    tracing::Span::current().record("tenant_id", tracing::field::display(claims.tid));
    browser.check_origin(claims.tid, req).await?;
    Ok((claims, user))
}

// ---------------------------------------------------------------------------------------------
// jsonwebtoken's crypto: HS256 only, on RustCrypto's hmac + sha2 (already in the tree). Any other
// algorithm is refused here as well as by `Validation`, so a token can never pick its own.

type HmacSha256 = Hmac<Sha256>;

struct Hs256(HmacSha256);

impl Hs256 {
    fn new(secret: &[u8]) -> jsonwebtoken::errors::Result<Self> {
        HmacSha256::new_from_slice(secret).map(Self).map_err(|_| ErrorKind::InvalidKeyFormat.into())
    }
}

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, jsonwebtoken::signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), jsonwebtoken::signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        // Constant-time comparison.
        mac.verify_slice(signature).map_err(jsonwebtoken::signature::Error::from_source)
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

fn hs256_signer(alg: &Algorithm, key: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    match alg {
        Algorithm::HS256 => Ok(Box::new(Hs256::new(key.try_get_hmac_secret()?)?)),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn hs256_verifier(alg: &Algorithm, key: &DecodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    match alg {
        Algorithm::HS256 => Ok(Box::new(Hs256::new(key.try_get_hmac_secret()?)?)),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

static HS256_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: hs256_signer,
    verifier_factory: hs256_verifier,
    jwk_utils: JwkUtils::new_unimplemented(),
};

/// Makes HS256_ONLY jsonwebtoken's process-wide provider (a no-op once any provider is set).
fn install_hs256_provider() {
    let _ = HS256_ONLY.install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hs256_matches_a_published_vector() {
        install_hs256_provider();
        // RFC 7515 appendix A.1 (HS256), with its key and signing input.
        let key = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .expect("key");
        let input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(&key), Algorithm::HS256)
            .expect("sign");
        assert_eq!(sig, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert!(jsonwebtoken::crypto::verify(
            &sig,
            input.as_bytes(),
            &DecodingKey::from_secret(&key),
            Algorithm::HS256
        )
        .expect("verify"));
        assert!(
            jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(&key), Algorithm::HS512).is_err()
        );
    }

    #[test]
    fn claims_scope() {
        let mut c = SessionClaims {
            iss: ISSUER.into(),
            tid: Uuid::nil(),
            sub: Uuid::nil(),
            gen: 0,
            prv: None,
            iat: 0,
            exp: 0,
            jti: String::new(),
        };
        assert!(c.allows(ProviderId::OpenAi));
        c.prv = Some(vec!["anthropic".into()]);
        assert!(!c.allows(ProviderId::OpenAi));
        assert!(c.allows(ProviderId::Anthropic));
        assert!(!serde_json::to_string(&SessionClaims { prv: None, ..c }).expect("json").contains("prv"));
    }
}
