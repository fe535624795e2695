//! The console's accounts and sessions: sign-in (throttled, no account enumeration), server-side
//! sessions with idle and absolute expiry, invites, password changes, and what a role may do.

pub mod password;

use std::net::IpAddr;
use std::time::Duration as StdDuration;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::ratelimit::{Rate, RateLimiter, Scope};
use crate::store::console::{Account, ConsoleSession, NewInvite, Role};
use crate::store::{DynStore, RedeemError};

/// The session cookie's name.
pub const COOKIE: &str = "relay_console";
/// The request header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-relay-csrf";
/// A session ends after this long without a request…
pub const IDLE: Duration = Duration::minutes(30);
/// …and after this long in any case.
pub const ABSOLUTE: Duration = Duration::hours(12);
/// How long an invite can be accepted.
pub const INVITE_TTL: Duration = Duration::days(7);

const SESSION_PREFIX: &str = "rcs_";
const INVITE_PREFIX: &str = "rci_";

/// Sign-in attempts per email address, known or not: a burst of 10, then one every 90 s.
fn account_rate() -> Rate {
    Rate::new(std::num::NonZeroU32::MIN.saturating_add(9), StdDuration::from_secs(900))
}

/// Sign-in attempts per client address.
fn address_rate() -> Rate {
    Rate::per_minute(std::num::NonZeroU32::MIN.saturating_add(29))
}

/// An email address as the console keys accounts by: trimmed, lower-cased, plausible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let e = raw.trim().to_lowercase();
        let bad = || ApiError::invalid_request("email_invalid", "This is not an email address.").param("email");
        let (local, domain) = e.split_once('@').ok_or_else(bad)?;
        if e.len() > 254
            || local.is_empty()
            || domain.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || e.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad());
        }
        Ok(Self(e))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A random secret token with a prefix, and its SHA-256 (what is stored).
fn new_token(prefix: &str) -> (SecretString, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = token_hash(&token);
    (SecretString::from(token), hash)
}

/// The stored form of a session or invite token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The CSRF token of a session: derived from the cookie's token (which the page cannot read),
/// handed to the page in JSON (which another site cannot read), so a request that carries both
/// comes from the page. Not the stored hash: the database alone does not give it away.
pub fn csrf_token(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"relay-console-csrf\0");
    h.update(session_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
}

/// A signed-in console member, as one request sees them.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub account_id: Uuid,
    pub email: String,
    pub operator: bool,
    pub session_id: Uuid,
    /// The tenant the session acts in, with the member's role there.
    pub tenant: Option<(Uuid, Role)>,
    pub session_expires_at: DateTime<Utc>,
}

impl ConsoleUser {
    /// The tenant to act in, if the member's role there is at least `least`; 403 otherwise.
    pub fn tenant_with(&self, least: Role) -> Result<Uuid, ApiError> {
        let Some((tenant_id, role)) = self.tenant else {
            return Err(ApiError::forbidden("console_no_tenant", "This account is not a member of any tenant."));
        };
        if role < least {
            return Err(ApiError::forbidden(
                "console_role_forbidden",
                format!("Your role ({role}) cannot do this; it needs {least} or above."),
            ));
        }
        Ok(tenant_id)
    }

    /// How the audit log names this member.
    pub fn actor(&self) -> String {
        format!("account:{}", self.account_id)
    }
}

/// A new session: the token for the cookie (shown to this client only) and who it is for.
pub struct SignedIn {
    pub token: SecretString,
    pub user: ConsoleUser,
}

/// An invite as just created: the only time its token exists outside the invitee's hands.
pub struct CreatedInvite {
    pub token: SecretString,
    pub email: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

/// The console's service: accounts, sessions and invites on the store.
pub struct Console {
    store: DynStore,
    secure_cookie: bool,
    public_origin: Option<String>,
}

fn bad_credentials() -> ApiError {
    ApiError::unauthenticated("console_sign_in_failed", "The email or password is not correct.")
}

pub fn session_missing() -> ApiError {
    ApiError::unauthenticated("console_session_missing", "Sign in to the console first (the session may have ended).")
}

impl Console {
    pub fn new(store: DynStore, public_url: Option<&str>) -> Self {
        let url = public_url.and_then(|u| url::Url::parse(u).ok());
        // Browsers treat http://localhost as secure, but a cookie marked Secure on a plain-http
        // public URL elsewhere would never come back.
        let plain_local = url
            .as_ref()
            .is_some_and(|u| u.scheme() == "http" && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")));
        let public_origin = url.map(|u| u.origin().ascii_serialization()).filter(|o| o != "null");
        Self { store, secure_cookie: !plain_local, public_origin }
    }

    pub fn secure_cookie(&self) -> bool {
        self.secure_cookie
    }

    /// `RELAY_PUBLIC_URL`'s origin, when it is set.
    pub fn public_origin(&self) -> Option<&str> {
        self.public_origin.as_deref()
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// Checks the email and password and opens a session in the account's first tenant.
    /// Unknown emails get the same answer, after the same Argon2 work, as wrong passwords.
    pub async fn sign_in(
        &self,
        limiter: &RateLimiter,
        email: &str,
        password: SecretString,
        address: Option<IpAddr>,
    ) -> Result<SignedIn, ApiError> {
        let email = Email::parse(email).map_err(|_| bad_credentials())?;
        if let Some(ip) = address {
            let identity = crate::browser::BrowserAccess::limiter_identity(ip);
            let decision = limiter.check(Scope::ConsoleAddress, &identity, address_rate()).await;
            if !decision.allowed {
                return Err(decision.error());
            }
        }
        let decision = limiter.check(Scope::ConsoleAccount, email.as_str().as_bytes(), account_rate()).await;
        if !decision.allowed {
            return Err(decision.error());
        }
        let account = self.store.console().find_account_by_email(email.as_str()).await?;
        let phc = account.as_ref().map(|a| a.password_hash.clone());
        let ok = blocking(move || match phc {
            Some(phc) => password::verify(&password, &phc),
            None => {
                password::dummy_verify(&password);
                false
            }
        })
        .await?;
        let Some(account) = account.filter(|_| ok) else {
            crate::audit::record_from(
                &*self.store,
                None,
                "console",
                "console.sign_in_failed",
                None,
                address.map(|a| a.to_string()),
            )
            .await;
            return Err(bad_credentials());
        };
        let memberships = self.store.console().memberships(account.id).await?;
        let tenant = memberships.first().map(|m| (m.tenant_id, m.role));
        let (token, token_hash) = new_token(SESSION_PREFIX);
        let now = Utc::now();
        let session = ConsoleSession {
            id: Uuid::new_v4(),
            token_hash,
            account_id: account.id,
            tenant_id: tenant.map(|(t, _)| t),
            created_at: now,
            last_seen_at: now,
            expires_at: now + ABSOLUTE,
        };
        self.store.console().insert_session(&session).await?;
        let user = ConsoleUser {
            account_id: account.id,
            email: account.email,
            operator: account.operator,
            session_id: session.id,
            tenant,
            session_expires_at: session.expires_at,
        };
        let target = Some(format!("session:{}", session.id));
        let addr = address.map(|a| a.to_string());
        crate::audit::record_from(&*self.store, tenant.map(|t| t.0), &user.actor(), "console.sign_in", target, addr)
            .await;
        Ok(SignedIn { token, user })
    }

    /// The member a session token belongs to, if the session is live (and then kept alive).
    pub async fn authenticate(&self, token: &str) -> Result<Option<ConsoleUser>, ApiError> {
        if !token.starts_with(SESSION_PREFIX) || token.len() > 100 {
            return Ok(None);
        }
        let now = Utc::now();
        let console = self.store.console();
        let Some(session) = console.touch_session(&token_hash(token), now, now - IDLE).await? else {
            return Ok(None);
        };
        let Some(account) = console.get_account(session.account_id).await? else { return Ok(None) };
        let tenant = match session.tenant_id {
            Some(t) => match console.role_in(account.id, t).await? {
                Some(role) => Some((t, role)),
                // No longer a member: removing a member ends their sessions; this is the race.
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some(ConsoleUser {
            account_id: account.id,
            email: account.email,
            operator: account.operator,
            session_id: session.id,
            tenant,
            session_expires_at: session.expires_at,
        }))
    }

    pub async fn sign_out(&self, token: &str, user: &ConsoleUser, address: Option<String>) -> Result<(), ApiError> {
        self.store.console().delete_session(&token_hash(token)).await?;
        let target = Some(format!("session:{}", user.session_id));
        crate::audit::record_from(
            &*self.store,
            user.tenant.map(|t| t.0),
            &user.actor(),
            "console.sign_out",
            target,
            address,
        )
        .await;
        Ok(())
    }

    /// Changes the password after checking the current one; every session of the account ends.
    pub async fn change_password(
        &self,
        user: &ConsoleUser,
        current: SecretString,
        new: SecretString,
        address: Option<String>,
    ) -> Result<(), ApiError> {
        if let Some(why) = password::policy_error(&new) {
            return Err(ApiError::invalid_request("password_too_weak", why).param("newPassword"));
        }
        let account = self.store.console().get_account(user.account_id).await?.ok_or_else(session_missing)?;
        let phc = account.password_hash.clone();
        let (ok, hash) = blocking(move || {
            let ok = password::verify(&current, &phc);
            (ok, if ok { password::hash(&new).ok() } else { None })
        })
        .await?;
        if !ok {
            return Err(ApiError::forbidden("console_password_wrong", "The current password is not correct.")
                .param("currentPassword"));
        }
        let hash = hash.ok_or_else(|| ApiError::internal(anyhow::anyhow!("password hashing failed")))?;
        self.store.console().set_password(account.id, &hash, Utc::now()).await?;
        crate::audit::record_from(
            &*self.store,
            user.tenant.map(|t| t.0),
            &user.actor(),
            "console.password_change",
            Some(format!("account:{}", account.id)),
            address,
        )
        .await;
        Ok(())
    }

    /// A one-time invite to the tenant for `email` with `role`, valid for `INVITE_TTL`.
    pub async fn invite(
        &self,
        tenant_id: Uuid,
        email: &Email,
        role: Role,
        actor: &str,
        address: Option<String>,
    ) -> Result<CreatedInvite, ApiError> {
        let (token, token_hash) = new_token(INVITE_PREFIX);
        let now = Utc::now();
        let invite = NewInvite {
            id: Uuid::new_v4(),
            tenant_id,
            email: email.as_str().to_owned(),
            role,
            token_hash,
            created_at: now,
            expires_at: now + INVITE_TTL,
        };
        self.store.console().insert_invite(&invite).await?;
        let target = Some(format!("invite:{} role:{role}", invite.id));
        crate::audit::record_from(&*self.store, Some(tenant_id), actor, "console.invite", target, address).await;
        Ok(CreatedInvite { token, email: invite.email, role, expires_at: invite.expires_at })
    }

    /// Accepts an invite. A new account is created with `password`; an existing account must
    /// give its own password (an invite never changes one). Returns the email and tenant name.
    pub async fn accept_invite(
        &self,
        limiter: &RateLimiter,
        token: &str,
        password: SecretString,
        address: Option<String>,
    ) -> Result<(String, String), ApiError> {
        let gone = || ApiError::not_found("invite_not_found", "This invite link is not valid.");
        if !token.starts_with(INVITE_PREFIX) || token.len() > 100 {
            return Err(gone());
        }
        let hash = token_hash(token);
        let console = self.store.console();
        let info = console.find_invite(&hash).await?.ok_or_else(gone)?;
        if info.used_at.is_some() {
            return Err(ApiError::gone("invite_used", "This invite has been used already."));
        }
        if info.expires_at <= Utc::now() {
            return Err(ApiError::gone("invite_expired", "This invite has expired; ask for a new one."));
        }
        let existing = console.find_account_by_email(&info.email).await?;
        let new_account = match existing {
            Some(account) => {
                // A password check like sign-in's, under the same per-account limit.
                let decision = limiter.check(Scope::ConsoleAccount, account.email.as_bytes(), account_rate()).await;
                if !decision.allowed {
                    return Err(decision.error());
                }
                let phc = account.password_hash.clone();
                if !blocking(move || password::verify(&password, &phc)).await? {
                    return Err(ApiError::forbidden(
                        "console_password_wrong",
                        "An account with this email exists: enter its current password to accept.",
                    )
                    .param("password"));
                }
                None
            }
            None => {
                if let Some(why) = password::policy_error(&password) {
                    return Err(ApiError::invalid_request("password_too_weak", why).param("password"));
                }
                let hash = blocking(move || password::hash(&password)).await?.map_err(ApiError::internal)?;
                let now = Utc::now();
                Some(Account {
                    id: Uuid::new_v4(),
                    email: info.email.clone(),
                    password_hash: hash,
                    operator: false,
                    created_at: now,
                    password_changed_at: now,
                })
            }
        };
        let account_id = match console.accept_invite(&hash, Utc::now(), new_account.as_ref()).await? {
            Ok(id) => id,
            Err(RedeemError::Used) => return Err(ApiError::gone("invite_used", "This invite has been used already.")),
            Err(RedeemError::Expired) => return Err(ApiError::gone("invite_expired", "This invite has expired.")),
            Err(RedeemError::NotFound) => return Err(gone()),
        };
        let target = Some(format!("invite:{} role:{}", info.id, info.role));
        let actor = format!("account:{account_id}");
        crate::audit::record_from(&*self.store, Some(info.tenant_id), &actor, "console.invite_accept", target, address)
            .await;
        Ok((info.email, info.tenant_name))
    }
}

/// Runs Argon2 work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)
}

/// Creates an account from the operator's CLI (`relay admin create`). Fails if the email is
/// taken. Optionally gives it a role in a tenant.
pub async fn create_account(
    store: &DynStore,
    email: &Email,
    password: SecretString,
    operator: bool,
    membership: Option<(Uuid, Role)>,
) -> anyhow::Result<Account> {
    if let Some(why) = password::policy_error(&password) {
        anyhow::bail!("{why}");
    }
    let hash = tokio::task::spawn_blocking(move || password::hash(&password)).await??;
    let now = Utc::now();
    let account = Account {
        id: Uuid::new_v4(),
        email: email.as_str().to_owned(),
        password_hash: hash,
        operator,
        created_at: now,
        password_changed_at: now,
    };
    if let Some((tenant_id, _)) = membership {
        anyhow::ensure!(store.get_tenant(tenant_id).await?.is_some(), "No tenant with that id");
    }
    anyhow::ensure!(store.console().create_account(&account).await?, "An account with this email exists already");
    if let Some((tenant_id, role)) = membership {
        store.console().put_membership(account.id, tenant_id, role, now).await?;
    }
    let target = Some(format!("account:{}", account.id));
    crate::audit::record(&**store, membership.map(|m| m.0), "operator", "console.account_create", target).await;
    Ok(account)
}

/// The invite URL for a token: `<origin>/console/invite/<token>`.
pub fn invite_url(origin: &str, token: &SecretString) -> String {
    format!("{}/console/invite/{}", origin.trim_end_matches('/'), token.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(Email::parse("  Ada@Example.COM ").map(|e| e.0).ok(), Some("ada@example.com".into()));
        for bad in ["", "ada", "@example.com", "ada@", "ada@localhost", "a b@example.com", "a@b@example.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_and_csrf() {
        let (t, h) = new_token(SESSION_PREFIX);
        let t = t.expose_secret();
        assert!(t.starts_with("rcs_") && t.len() == 4 + 43);
        assert_eq!(token_hash(t), h);
        let csrf = csrf_token(t);
        assert_ne!(csrf.as_bytes(), &h[..]);
        assert_eq!(csrf, csrf_token(t));
        assert_ne!(csrf, csrf_token(&format!("{t}x")));
    }

    #[test]
    fn roles_order() {
        assert!(Role::Viewer < Role::Admin && Role::Admin < Role::Owner);
    }
}
