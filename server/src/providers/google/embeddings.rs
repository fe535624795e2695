//! OpenAI embeddings request -> Gemini `batchEmbedContents`, and its answer -> an OpenAI embeddings
//! list (floats, or base64 of little-endian f32s).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::request::{bad, check_model};
use crate::providers::unified::{Prepared, TranslateError};

/// An OpenAI embeddings request -> `batchEmbedContents` (one request per input string).
pub fn embeddings_request(req: &Value, upstream_model: &str) -> Result<Prepared, TranslateError> {
    check_model(upstream_model)?;
    let obj = req.as_object().ok_or_else(|| TranslateError::new("the request body must be a JSON object", None))?;
    for (key, value) in obj {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "input" | "dimensions" | "user" => {}
            "encoding_format" if matches!(value.as_str(), Some("float" | "base64")) => {}
            "encoding_format" => return Err(bad("`encoding_format` must be float or base64", "encoding_format")),
            _ => return Err(bad(format!("`{key}` is not supported for Gemini embeddings"), key)),
        }
    }
    let token_arrays =
        || bad("Gemini embeds text only: `input` must be a string or an array of strings, not tokens", "input");
    let inputs: Vec<&str> = match obj.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if a.is_empty() => return Err(bad("`input` must not be empty", "input")),
        Some(Value::Array(a)) => a.iter().map(|x| x.as_str().ok_or_else(token_arrays)).collect::<Result<_, _>>()?,
        _ => return Err(bad("`input` must be a string or an array of strings", "input")),
    };
    let dimensions = match obj.get("dimensions").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|d| *d > 0)
                .ok_or_else(|| bad("`dimensions` must be a positive integer", "dimensions"))?,
        ),
    };
    let model = format!("models/{upstream_model}");
    let requests: Vec<Value> = inputs
        .into_iter()
        .map(|text| {
            let mut r = json!({ "model": model, "content": { "parts": [{ "text": text }] } });
            if let Some(d) = dimensions {
                r["outputDimensionality"] = d.into();
            }
            r
        })
        .collect();
    Ok(Prepared {
        path: format!("/v1beta/models/{upstream_model}:batchEmbedContents"),
        body: json!({ "requests": requests }),
    })
}

/// A `batchEmbedContents` answer -> an OpenAI embeddings list (floats, or base64 of little-endian
/// f32s when the request asked for `encoding_format: base64`).
pub fn embeddings_response(body: &Value, req: &Value) -> Result<Value, TranslateError> {
    let embeddings = body
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::new("Gemini's embeddings answer has no `embeddings`", None))?;
    let expected = match req.get("input") {
        Some(Value::Array(a)) => a.len(),
        _ => 1,
    };
    if embeddings.len() != expected {
        return Err(TranslateError::new(
            format!("Gemini returned {} embeddings for {expected} inputs", embeddings.len()),
            None,
        ));
    }
    let base64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut data = Vec::with_capacity(embeddings.len());
    for (i, e) in embeddings.iter().enumerate() {
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| TranslateError::new(format!("Gemini's embedding {i} has no `values`"), None))?;
        let floats: Vec<f64> = values
            .iter()
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| TranslateError::new(format!("Gemini's embedding {i} holds a non-number"), None))
            })
            .collect::<Result<_, _>>()?;
        let embedding = if base64 {
            let bytes: Vec<u8> = floats.iter().flat_map(|f| (*f as f32).to_le_bytes()).collect();
            Value::String(STANDARD.encode(bytes))
        } else {
            Value::Array(values.clone())
        };
        data.push(json!({ "object": "embedding", "index": i, "embedding": embedding }));
    }
    let prompt = body.pointer("/usageMetadata/promptTokenCount").and_then(Value::as_u64).unwrap_or(0);
    Ok(json!({
        "object": "list",
        "data": data,
        "model": req.get("model").cloned().unwrap_or(Value::Null),
        "usage": { "prompt_tokens": prompt, "total_tokens": prompt },
    }))
}
