//! OpenAI tool call ids for Gemini function calls: generated when Gemini gives none, and carrying
//! the call's thought signature so that a client echoing its history gives it back.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::distributions::{Alphanumeric, DistString};

/// Between a tool call id and the base64url of the Gemini thought signature it carries.
pub const THOUGHT_SEPARATOR: &str = "__thought__";

/// A fresh tool call id when Gemini gives none: `call_` + 24 random letters and digits.
pub fn new_call_id() -> String {
    format!("call_{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 24))
}

/// The OpenAI tool call id for a Gemini function call: the call's own id, and when the part
/// carried a `thoughtSignature`, [`THOUGHT_SEPARATOR`] + base64url (no padding) of the signature's
/// exact text. Every character is `[A-Za-z0-9_-]`, so the id is URL-safe and also valid where
/// other providers restrict ids (Anthropic's `tool_use` ids).
pub fn encode_call_id(base: &str, signature: Option<&str>) -> String {
    match signature {
        Some(sig) if !sig.is_empty() => format!("{base}{THOUGHT_SEPARATOR}{}", URL_SAFE_NO_PAD.encode(sig)),
        _ => base.to_owned(),
    }
}

/// The inverse of [`encode_call_id`]: the base id and the signature, if the id carries one. Splits
/// at the first separator (ours are alphanumeric, and Gemini's ids have not been seen to hold it);
/// a suffix that does not decode leaves the whole id as the base.
pub fn decode_call_id(id: &str) -> (&str, Option<String>) {
    if let Some((base, encoded)) = id.split_once(THOUGHT_SEPARATOR) {
        if let Some(sig) = URL_SAFE_NO_PAD.decode(encoded).ok().and_then(|b| String::from_utf8(b).ok()) {
            if !sig.is_empty() {
                return (base, Some(sig));
            }
        }
    }
    (id, None)
}
