//! Masks provider keys in text a provider sent (error messages, error bodies): the exact key of
//! the call first, by its fingerprint, then anything else shaped like a key, by its public prefix.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::providers;

/// What one call must never hand back: its key. Holds the opened key (wiped when dropped) for as
/// long as the call's answer is being relayed.
pub struct Masker {
    key: SecretString,
    /// What the key is replaced with: its fingerprint, which `GET /v1/users` shows anyway.
    shown: String,
}

impl Masker {
    pub fn new(key: SecretString, fingerprint: String) -> Self {
        // A fingerprint of a very short key is the key itself.
        let shown = if fingerprint.contains(key.expose_secret()) { "…".into() } else { fingerprint };
        Self { key, shown }
    }

    /// `text` with the key, and anything else shaped like a key, masked.
    pub fn text(&self, text: &str) -> String {
        let key = self.key.expose_secret();
        if key.is_empty() {
            return redact_key_like(text);
        }
        let mut out = text.replace(key, &self.shown);
        // The key as it reads inside a JSON string, when that differs (`"` or `\` in it).
        if let Ok(quoted) = serde_json::to_string(key).map(zeroize::Zeroizing::new) {
            let escaped = &quoted[1..quoted.len() - 1];
            if escaped != key && out.contains(escaped) {
                out = out.replace(escaped, &self.shown);
            }
        }
        redact_key_like(&out)
    }

    /// A body of unknown type: masked as text when it is UTF-8, else the key's bytes only.
    pub fn bytes(&self, body: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(body) {
            Ok(text) => self.text(text).into_bytes(),
            Err(_) => {
                let key = self.key.expose_secret().as_bytes();
                let mut out = Vec::with_capacity(body.len());
                let mut i = 0;
                while i < body.len() {
                    if !key.is_empty() && body[i..].starts_with(key) {
                        out.extend_from_slice(self.shown.as_bytes());
                        i += key.len();
                    } else {
                        out.push(body[i]);
                        i += 1;
                    }
                }
                out
            }
        }
    }

    /// Every string in an `{"error": {…}}` value (message, type, code, param), and in the
    /// Responses API's error events: `error` (its fields at the top) and `response.failed`.
    pub fn error_value(&self, v: &mut Value) {
        if v["type"] == "error" && v.get("error").is_none() {
            if let Value::Object(e) = v {
                for field in e.values_mut() {
                    if let Value::String(s) = field {
                        *s = self.text(s);
                    }
                }
            }
            return;
        }
        if v["type"] == "response.failed" {
            if let Some(e) = v.pointer_mut("/response") {
                self.error_value(e);
            }
            return;
        }
        if let Some(Value::Object(e)) = v.get_mut("error") {
            for field in e.values_mut() {
                if let Value::String(s) = field {
                    *s = self.text(s);
                }
            }
        } else if let Some(Value::String(s)) = v.get_mut("error") {
            *s = self.text(s);
        }
    }
}

/// Masks anything shaped like a provider or Relay key in text that came from a provider,
/// keeping only its public prefix: `sk-proj-…`. For keys with no prefix (Mistral's,
/// self-hosted servers'), only the exact key of the call is known: `Masker::text`.
pub fn redact_key_like(text: &str) -> String {
    static PREFIXES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let prefixes = PREFIXES.get_or_init(|| {
        let mut all = providers::key_prefixes();
        all.push("rly-");
        all
    });
    let is_token = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| is_token(c)) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find(|c: char| !is_token(c)).unwrap_or(tail.len());
        let token = &tail[..end];
        match prefixes.iter().find(|p| token.starts_with(**p)) {
            Some(prefix) if token.len() >= 20 => {
                out.push_str(prefix);
                out.push('…');
            }
            _ => out.push_str(token),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_like_tokens_are_masked() {
        let key = format!("sk-proj-{}", "A1b2".repeat(10));
        let msg = format!("Incorrect API key provided: {key}. You can find your key at https://example.com/keys.");
        let masked = redact_key_like(&msg);
        assert!(!masked.contains(&key));
        assert_eq!(masked, "Incorrect API key provided: sk-proj-…. You can find your key at https://example.com/keys.");
        let g = format!("key=AIza{}&x", "x".repeat(35));
        assert_eq!(redact_key_like(&g), "key=AIza…&x");
        assert_eq!(redact_key_like("task-runner sk-short 한글 ok"), "task-runner sk-short 한글 ok");
    }

    #[test]
    fn the_exact_key_is_masked_whatever_its_shape() {
        let mistral = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6";
        let m = Masker::new(SecretString::from(mistral.to_owned()), "…o5P6".into());
        assert_eq!(m.text(&format!("bad key {mistral}!")), "bad key …o5P6!");
        let odd = r#"tok"en\with-quotes"#;
        let m = Masker::new(SecretString::from(odd.to_owned()), "…otes".into());
        let body = serde_json::json!({"error": {"message": format!("key {odd}"), "code": odd}}).to_string();
        let masked = String::from_utf8(m.bytes(body.as_bytes())).expect("utf-8");
        assert!(!masked.contains("en\\\\with"), "{masked}");
        let mut v: Value = serde_json::from_str(&body).expect("json");
        m.error_value(&mut v);
        assert_eq!(v["error"]["code"], "…otes");
        assert_eq!(v["error"]["message"], "key …otes");
        let short = Masker::new(SecretString::from("abc".to_owned()), "…abc".into());
        assert_eq!(short.text("x abc y"), "x … y");
        let binary = [0xff, b'a', b'b', b'c', 0xfe];
        assert_eq!(short.bytes(&binary), vec![0xff, 0xe2, 0x80, 0xa6, 0xfe]);
    }
}
