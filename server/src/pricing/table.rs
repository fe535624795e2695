//! The price table's file format (`pricing/prices.json`, `RELAY_PRICING_FILE`), read and checked
//! entry by entry: an error names the file, the entry and what is wrong with it.
//!
//! ```json
//! {"replace": false,
//!  "models": [{"provider": "openai", "model": "gpt-4o", "aliases": [], "input": 2.5, "output": 10,
//!              "cachedInput": 1.25, "cacheWrite": null, "reasoning": null,
//!              "longContext": {"above": 200000, "input": 5, "output": 15},
//!              "date": "2026-12-03", "source": "https://…/pricing"}]}
//! ```
//! Prices are USD per million tokens. `replace: true` (the operator's file only) drops the
//! built-in table; otherwise an entry replaces the built-in one of the same provider and model.

use serde::Deserialize;
use serde_json::Value;

use super::{ModelPrice, Rates};
use crate::providers::ProviderId;

/// The table in the repository, compiled in.
pub const BUILTIN_JSON: &str = include_str!("../../../pricing/prices.json");

/// The highest price accepted, in USD per million tokens: a guard against a misplaced decimal
/// point that would otherwise overflow nothing but mislead everyone.
const MAX_USD_PER_MILLION: f64 = 100_000.0;

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("Could not read the price table {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("The price table {origin} is not valid: {reason}")]
    Invalid { origin: String, reason: String },
    #[error("The price table {origin} has a bad entry, {entry}: {reason}")]
    BadEntry { origin: String, entry: String, reason: String },
}

/// A parsed table file.
pub(super) struct TableFile {
    pub replace: bool,
    pub entries: Vec<ModelPrice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFile {
    /// Free text for whoever reads the file.
    #[serde(default)]
    #[allow(dead_code)]
    about: Option<String>,
    #[serde(default)]
    replace: bool,
    models: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEntry {
    provider: String,
    model: String,
    #[serde(default)]
    aliases: Vec<String>,
    input: f64,
    output: f64,
    cached_input: Option<f64>,
    cache_write: Option<f64>,
    reasoning: Option<f64>,
    long_context: Option<RawLongContext>,
    date: String,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLongContext {
    /// Prompts of more than this many tokens get these prices.
    above: u64,
    input: f64,
    output: f64,
    cached_input: Option<f64>,
    cache_write: Option<f64>,
    reasoning: Option<f64>,
}

/// USD per million tokens -> pico-USD per token.
fn picos(usd_per_million: f64, field: &str) -> Result<u64, String> {
    if !usd_per_million.is_finite() || usd_per_million < 0.0 {
        return Err(format!("{field} must be a non-negative number of USD per million tokens"));
    }
    if usd_per_million > MAX_USD_PER_MILLION {
        return Err(format!("{field} is {usd_per_million} USD per million tokens, more than {MAX_USD_PER_MILLION}"));
    }
    // At most 1e11 here: exact in an f64, and in a u64.
    Ok((usd_per_million * 1e6).round() as u64)
}

fn rates(
    input: f64,
    output: f64,
    cached: Option<f64>,
    write: Option<f64>,
    reasoning: Option<f64>,
    at: &str,
) -> Result<Rates, String> {
    let opt = |v: Option<f64>, f: &str| v.map(|v| picos(v, &format!("{at}{f}"))).transpose();
    Ok(Rates {
        input: picos(input, &format!("{at}input"))?,
        output: picos(output, &format!("{at}output"))?,
        cached_input: opt(cached, "cachedInput")?,
        cache_write: opt(write, "cacheWrite")?,
        reasoning: opt(reasoning, "reasoning")?,
    })
}

fn entry(raw: RawEntry) -> Result<ModelPrice, String> {
    let name_ok = |n: &str| !n.is_empty() && !n.chars().any(char::is_whitespace);
    if raw.provider != "openai-compatible" && raw.provider.parse::<ProviderId>().is_err() {
        return Err(format!("unknown provider {:?}", raw.provider));
    }
    if let Some(bad) = std::iter::once(&raw.model).chain(&raw.aliases).find(|n| !name_ok(n)) {
        return Err(format!("model names must be non-empty and without spaces, not {bad:?}"));
    }
    if chrono::NaiveDate::parse_from_str(&raw.date, "%Y-%m-%d").is_err() {
        return Err(format!("date must be YYYY-MM-DD, not {:?}", raw.date));
    }
    if !(raw.source.starts_with("https://") || raw.source.starts_with("http://")) {
        return Err(format!("source must be the URL the price was read from, not {:?}", raw.source));
    }
    let base = rates(raw.input, raw.output, raw.cached_input, raw.cache_write, raw.reasoning, "")?;
    let long_context = raw
        .long_context
        .map(|l| {
            rates(l.input, l.output, l.cached_input, l.cache_write, l.reasoning, "longContext.").map(|r| (l.above, r))
        })
        .transpose()?;
    Ok(ModelPrice {
        provider: raw.provider,
        model: raw.model,
        aliases: raw.aliases,
        rates: base,
        long_context,
        date: raw.date,
        source: raw.source,
    })
}

/// How an entry is named in errors: its index and, when readable, provider/model.
fn entry_name(i: usize, v: &Value) -> String {
    match (v.get("provider").and_then(Value::as_str), v.get("model").and_then(Value::as_str)) {
        (Some(p), Some(m)) => format!("models[{i}] ({p}/{m})"),
        _ => format!("models[{i}]"),
    }
}

/// Parses and checks a table file; `origin` names it in errors.
pub(super) fn parse(text: &str, origin: &str) -> Result<TableFile, PricingError> {
    let invalid = |reason: String| PricingError::Invalid { origin: origin.to_owned(), reason };
    let raw: RawFile = serde_json::from_str(text)
        .map_err(|e| invalid(format!("{e} (expected {{\"replace\"?: bool, \"models\": [ … ]}})")))?;
    let mut entries: Vec<ModelPrice> = Vec::with_capacity(raw.models.len());
    let mut seen: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
    for (i, v) in raw.models.iter().enumerate() {
        let bad =
            |reason: String| PricingError::BadEntry { origin: origin.to_owned(), entry: entry_name(i, v), reason };
        let parsed = serde_json::from_value::<RawEntry>(v.clone()).map_err(|e| bad(e.to_string()))?;
        let e = entry(parsed).map_err(bad)?;
        for name in std::iter::once(&e.model).chain(&e.aliases) {
            if let Some(first) = seen.insert((e.provider.clone(), name.clone()), i) {
                return Err(bad(format!("{}/{name} is already priced by models[{first}]", e.provider)));
            }
        }
        entries.push(e);
    }
    Ok(TableFile { replace: raw.replace, entries })
}
