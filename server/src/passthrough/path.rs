//! The passthrough's path and query as the provider will see them: decoded, normalised and
//! checked once, re-encoded for the upstream URL; keys never travel in a query.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("the path is not valid percent-encoded UTF-8")]
    Encoding,
    #[error("the path may not contain '.' or '..' segments, empty segments, backslashes or control characters")]
    Traversal,
    #[error("the path may not contain an encoded slash")]
    EncodedSlash,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes and normalises the path as the provider would see it, refusing anything that could
/// mean something else after another round of decoding or normalising.
pub fn normalise_path(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (h, l) = (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex));
            let (Some(h), Some(l)) = (h, l) else { return Err(PathError::Encoding) };
            let b = h * 16 + l;
            if b == b'/' {
                return Err(PathError::EncodedSlash);
            }
            // A second layer of encoding would let `%252e%252e` become `..` upstream.
            if b == b'%' {
                return Err(PathError::Encoding);
            }
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).map_err(|_| PathError::Encoding)?;
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        return Err(PathError::Traversal);
    }
    let path = decoded.strip_prefix('/').unwrap_or(&decoded);
    for segment in path.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(PathError::Traversal);
        }
    }
    Ok(format!("/{path}"))
}

/// Re-encodes a normalised path for the upstream URL: only characters that cannot stand in a
/// path are escaped.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"/-._~:@!$&'()*+,;=".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Query parameters are passed on, except a Google `key`: keys never travel in URLs.
pub fn filtered_query(query: &str) -> String {
    query.split('&').filter(|p| !p.is_empty() && !p.starts_with("key=")).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_encoding_tricks_are_refused() {
        for bad in [
            "/v1/../admin",
            "/v1/./chat/completions",
            "/v1/%2e%2e/admin",
            "/v1/%2E%2E/admin",
            "/v1/.%2e/admin",
            "/v1/%252e%252e/admin",
            "/v1%2fchat/completions",
            "/v1//chat/completions",
            "/v1/chat\\completions",
            "/v1/chat/completions%00",
            "/v1/chat/%0d%0acompletions",
            "/v1/%zz",
            "/v1/%c3%28",
        ] {
            assert!(normalise_path(bad).is_err(), "{bad}");
        }
        assert_eq!(normalise_path("/v1/chat/completions").as_deref(), Ok("/v1/chat/completions"));
        assert_eq!(
            normalise_path("/v1beta/models/gemini-2.5-flash:streamGenerateContent").as_deref(),
            Ok("/v1beta/models/gemini-2.5-flash:streamGenerateContent")
        );
        assert_eq!(normalise_path("/v1/%63hat/completions").as_deref(), Ok("/v1/chat/completions"));
    }

    #[test]
    fn google_keys_never_travel_in_the_query() {
        assert_eq!(filtered_query("alt=sse&key=AIzaXYZ"), "alt=sse");
        assert_eq!(filtered_query("key=x"), "");
        assert_eq!(filtered_query("pageSize=5"), "pageSize=5");
    }
}
