//! Who is calling the console's API: the `relay_console` session cookie (`ConsoleAuth`), and the
//! CSRF defences every state-changing console call passes (`check_same_origin`, the token header).
//!
//! The console's routes skip the `rly-` key check (`is_console_path`); every `/console/api/…`
//! handler except sign-in and accepting an invite takes `ConsoleAuth`, so they are denied by
//! default too. The session token never leaves the cookie; the CSRF token is derived from it
//! and given to the page in JSON, so only the page can send it back in `x-relay-csrf`.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::{HeaderValue, HOST, ORIGIN};
use actix_web::http::Method;
use actix_web::{web, FromRequest, HttpRequest};
use secrecy::{ExposeSecret, SecretString};

use crate::console::{csrf_token, session_missing, Console, ConsoleUser, COOKIE, CSRF_HEADER};
use crate::error::ApiError;

/// The console's pages and API authenticate with the session cookie, not a `rly-` key.
pub fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// A request with a live console session (and, if it changes anything, a valid CSRF token).
pub struct ConsoleAuth {
    pub user: ConsoleUser,
    token: SecretString,
}

impl ConsoleAuth {
    /// The session token from the cookie (for signing out).
    pub fn token(&self) -> &str {
        self.token.expose_secret()
    }

    /// The CSRF token the page sends back in `x-relay-csrf`.
    pub fn csrf(&self) -> String {
        csrf_token(self.token.expose_secret())
    }
}

impl std::fmt::Debug for ConsoleAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleAuth").field("user", &self.user).finish_non_exhaustive()
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn cross_site() -> ApiError {
    ApiError::forbidden("console_cross_site", "The console refuses requests sent from another site.")
}

/// Refuses a request a browser sent from another site: `Sec-Fetch-Site` must be `same-origin`
/// (or `none`: typed by the user) when sent, and `Origin`, when sent, must be the console's own
/// (`RELAY_PUBLIC_URL`'s origin, else the scheme-less `Host` the request was sent to).
/// Clients that send neither header (scripts, curl) are no browser a site can drive.
pub fn check_same_origin(req: &HttpRequest, console: &Console) -> Result<(), ApiError> {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return Err(cross_site());
        }
    }
    let Some(origin) = headers.get(ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().map_err(|_| cross_site())?;
    let same = match console.public_origin() {
        Some(public) => origin == public,
        None => {
            let host = headers.get(HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
            origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")).is_some_and(|o| o == host)
        }
    };
    if same {
        Ok(())
    } else {
        Err(cross_site())
    }
}

fn csrf_ok(sent: Option<&HeaderValue>, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    sent.and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() == expected.len() && bool::from(v.as_bytes().ct_eq(expected.as_bytes())))
}

/// The `relay_console` cookie's value, if the request carries one.
pub fn session_cookie(req: &HttpRequest) -> Option<SecretString> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| SecretString::from(value.trim_matches('"').to_owned()))
}

/// The `Set-Cookie` value that stores `token` (or, with `None`, removes the cookie).
pub fn set_cookie(console: &Console, token: Option<&str>) -> String {
    let secure = if console.secure_cookie() { "; Secure" } else { "" };
    match token {
        Some(t) => format!("{COOKIE}={t}; Path=/console; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

impl FromRequest for ConsoleAuth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let console = req
                .app_data::<web::Data<Console>>()
                .cloned()
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the console service is not registered")))?;
            let unsafe_method = !is_safe(req.method());
            if unsafe_method {
                check_same_origin(&req, &console)?;
            }
            let token = session_cookie(&req).ok_or_else(session_missing)?;
            let user = console.authenticate(token.expose_secret()).await?.ok_or_else(session_missing)?;
            if unsafe_method && !csrf_ok(req.headers().get(CSRF_HEADER), &csrf_token(token.expose_secret())) {
                return Err(ApiError::forbidden(
                    "console_csrf_invalid",
                    "The request lacks the console's CSRF token (x-relay-csrf); reload the page.",
                ));
            }
            Ok(Self { user, token })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_console_path;

    #[test]
    fn console_paths() {
        assert!(is_console_path("/console"));
        assert!(is_console_path("/console/api/me"));
        assert!(!is_console_path("/consoles"));
        assert!(!is_console_path("/v1/console"));
    }
}
