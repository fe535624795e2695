//! Values parsed once at the edge: an end-user label, rates and limits (`limits`), dollar amounts
//! and budget periods (`money`), a stored key's status (`key_health`). A value of these types is
//! valid by construction, so nothing past the route layer checks it again.

pub mod key_health;
pub mod limits;
pub mod money;

use std::fmt;

use crate::error::ApiError;

/// How a developer names one of its end users: 1–128 printable characters, unique in a tenant.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EndUserLabel(String);

pub const MAX_LABEL_CHARS: usize = 128;

impl EndUserLabel {
    pub fn parse(raw: &str) -> Result<Self, LabelError> {
        let count = raw.chars().count();
        if count == 0 {
            return Err(LabelError::Empty);
        }
        if count > MAX_LABEL_CHARS {
            return Err(LabelError::TooLong);
        }
        if raw.chars().any(|c| c.is_control() || is_invisible_format(c)) {
            return Err(LabelError::NotPrintable);
        }
        if raw.trim() != raw {
            return Err(LabelError::SurroundingWhitespace);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Bidi overrides and zero-width characters make two labels that look the same differ.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

impl fmt::Debug for EndUserLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Labels may be e-mail addresses: keep them out of logs built from Debug output.
        f.write_str("EndUserLabel(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 128 characters")]
    TooLong,
    #[error("must contain only printable characters")]
    NotPrintable,
    #[error("must not start or end with whitespace")]
    SurroundingWhitespace,
}

impl LabelError {
    pub fn into_api(self, param: &'static str) -> ApiError {
        ApiError::invalid_request("invalid_end_user_label", format!("The end-user label {self}.")).param(param)
    }
}

/// An exact web origin a tenant allows to call the browser-facing routes: `scheme://host[:port]`,
/// http or https, no path, query, fragment or credentials. Stored in the form browsers send in
/// `Origin`: scheme and host lower-case, the scheme's default port left out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllowedOrigin(String);

impl AllowedOrigin {
    pub fn parse(raw: &str) -> Result<Self, OriginError> {
        let raw = raw.trim();
        let url = url::Url::parse(raw).map_err(|_| OriginError::NotAUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OriginError::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OriginError::Credentials);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(OriginError::NoHost);
        }
        let authority = raw.split_once("://").map_or("", |(_, rest)| rest);
        if authority.contains(['/', '?', '#', '\\']) {
            return Err(OriginError::HasPath);
        }
        Ok(Self(url.origin().ascii_serialization()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginError {
    #[error("is not a URL like https://app.example.com")]
    NotAUrl,
    #[error("must use http or https")]
    Scheme,
    #[error("must not contain a user name or password")]
    Credentials,
    #[error("must name a host")]
    NoHost,
    #[error("must be scheme://host[:port] only, without a path, query or fragment")]
    HasPath,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(EndUserLabel::parse("user_123").is_ok());
        assert!(EndUserLabel::parse("ana@example.com").is_ok());
        assert!(EndUserLabel::parse("사용자 7").is_ok());
        assert!(EndUserLabel::parse(&"x".repeat(128)).is_ok());
        assert_eq!(EndUserLabel::parse(""), Err(LabelError::Empty));
        assert_eq!(EndUserLabel::parse(&"x".repeat(129)), Err(LabelError::TooLong));
        assert_eq!(EndUserLabel::parse("a\nb"), Err(LabelError::NotPrintable));
        assert_eq!(EndUserLabel::parse("a\u{0}b"), Err(LabelError::NotPrintable));
        assert_eq!(EndUserLabel::parse("a\u{202E}b"), Err(LabelError::NotPrintable));
        assert_eq!(EndUserLabel::parse(" a"), Err(LabelError::SurroundingWhitespace));
    }

    #[test]
    fn origins() {
        let ok = |s: &str| AllowedOrigin::parse(s).map(|o| o.as_str().to_owned());
        assert_eq!(ok("https://app.example.com"), Ok("https://app.example.com".into()));
        assert_eq!(ok("HTTPS://App.Example.COM"), Ok("https://app.example.com".into()));
        assert_eq!(ok("https://app.example.com:443"), Ok("https://app.example.com".into()));
        assert_eq!(ok("http://localhost:5173"), Ok("http://localhost:5173".into()));
        assert_eq!(ok("http://127.0.0.1:8080"), Ok("http://127.0.0.1:8080".into()));
        assert_eq!(ok("https://app.example.com/"), Err(OriginError::HasPath));
        assert_eq!(ok("https://app.example.com/path"), Err(OriginError::HasPath));
        assert_eq!(ok("https://app.example.com?x=1"), Err(OriginError::HasPath));
        assert_eq!(ok("https://app.example.com#x"), Err(OriginError::HasPath));
        assert_eq!(ok("ftp://app.example.com"), Err(OriginError::Scheme));
        assert_eq!(ok("https://user:pw@app.example.com"), Err(OriginError::Credentials));
        assert_eq!(ok("app.example.com"), Err(OriginError::NotAUrl));
        assert_eq!(ok("null"), Err(OriginError::NotAUrl));
        assert_eq!(ok("*"), Err(OriginError::NotAUrl));
    }

    #[test]
    fn debug_hides_the_label() {
        let l = EndUserLabel::parse("ana@example.com").expect("valid");
        assert!(!format!("{l:?}").contains("ana"));
    }
}
