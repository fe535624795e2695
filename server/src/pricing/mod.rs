//! What a provider call cost: the price table (`pricing/prices.json` at the repository root,
//! embedded, extended or replaced by `RELAY_PRICING_FILE`) and the cost of one usage record.
//!
//! Money is an integer: nano-USD (1e-9 USD) per call, `i64`. Prices are read as USD per million
//! tokens and kept as pico-USD per token (USD/M × 1e6), so a price with up to six decimals is
//! exact and the sum is rounded once, to the nano-USD.
//!
//! **The cost** of a call, everything in OpenAI's terms (`Usage`):
//! `uncached = prompt - cached - cache_write`;
//! `cost = uncached × input + cached × cached_input + cache_write × cache_write_price
//!        + (completion - reasoning) × output + reasoning × reasoning_price`.
//! An absent `cachedInput` or `cacheWrite` price means the provider has none: those tokens cost
//! the input price. An absent `reasoning` price is the output price. When the prompt (all of
//! it, cached or not) is above a model's `longContext.above`, the long-context prices apply to
//! the whole call (Gemini 2.5 Pro above 200k tokens, Claude Haiku 5.5 above 100k).
//! A cost the provider reports itself (OpenRouter's `usage.cost`) wins over the table.
//!
//! **Finding a model's price**, for the provider that served the call and the model as the
//! client named it:
//! 1. a leading `<provider>/` naming that same provider is dropped (`groq/llama-3.3-70b-versatile`);
//! 2. the model itself, or an entry's `aliases` (`claude-sonnet-4-0` for `claude-sonnet-4`);
//! 3. else the model without a dated snapshot suffix, `-YYYY-MM-DD` (`gpt-4o-2024-08-06` →
//!    `gpt-4o`) or `-YYYYMMDD` (`claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`); nothing else
//!    is stripped, so `gpt-4o-mini` never falls back to `gpt-4o`;
//! 4. OpenRouter only (when it reported no cost): `<vendor>/<model>` is looked up as the vendor's
//!    own model (`openrouter/anthropic/claude-sonnet-4` → anthropic `claude-sonnet-4`), after any
//!    `openrouter` entry of the table.
//!
//! No match: no price, and the call counts as unpriced.

mod table;

use std::collections::HashMap;

use crate::providers::unified::Usage;

pub use table::{PricingError, BUILTIN_JSON};

/// Prices of one model, in pico-USD per token (USD per million tokens × 1e6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub input: u64,
    pub output: u64,
    /// `None`: no cache discount, cached tokens cost `input`.
    pub cached_input: Option<u64>,
    /// `None`: no cache-write surcharge, written tokens cost `input`.
    pub cache_write: Option<u64>,
    /// `None`: reasoning tokens cost `output`.
    pub reasoning: Option<u64>,
}

/// A model's prices, and the prices above a prompt length where they differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    pub provider: String,
    pub model: String,
    /// Other names of the same model (`claude-sonnet-4-0`, `mistral-large-latest`).
    pub aliases: Vec<String>,
    pub rates: Rates,
    /// `(above, rates)`: a prompt of more than `above` tokens is priced at `rates`.
    pub long_context: Option<(u64, Rates)>,
    /// When the price was read (`YYYY-MM-DD`) and where (the provider's pricing page).
    pub date: String,
    pub source: String,
}

impl ModelPrice {
    /// The cost of `usage` at these prices, in nano-USD.
    pub fn cost_nanos(&self, u: &Usage) -> i64 {
        let rates = match self.long_context {
            Some((above, long)) if u.prompt_tokens > above => long,
            _ => self.rates,
        };
        // Counts the provider reports inconsistently are clamped, never negative.
        let cached = u.cached_tokens.min(u.prompt_tokens);
        let cache_write = u.cache_write_tokens.min(u.prompt_tokens - cached);
        let uncached = u.prompt_tokens - cached - cache_write;
        let reasoning = u.reasoning_tokens.min(u.completion_tokens);
        let visible = u.completion_tokens - reasoning;
        let part = |tokens: u64, price: u64| u128::from(tokens) * u128::from(price);
        let picos = part(uncached, rates.input)
            + part(cached, rates.cached_input.unwrap_or(rates.input))
            + part(cache_write, rates.cache_write.unwrap_or(rates.input))
            + part(visible, rates.output)
            + part(reasoning, rates.reasoning.unwrap_or(rates.output));
        i64::try_from((picos + 500) / 1000).unwrap_or(i64::MAX)
    }
}

/// The price table: the built-in one, as `RELAY_PRICING_FILE` extended or replaced it.
#[derive(Debug, Clone, Default)]
pub struct Prices {
    /// By (provider, model or alias).
    by_model: HashMap<(String, String), usize>,
    entries: Vec<ModelPrice>,
}

impl Prices {
    /// The table in the repository (`pricing/prices.json`), checked by a test.
    pub fn builtin() -> Self {
        match table::parse(BUILTIN_JSON, "the built-in price table") {
            Ok(file) => Self::from_entries(file.entries),
            Err(e) => {
                tracing::error!(error = %e, "the built-in price table is unreadable; every call is unpriced");
                Self::default()
            }
        }
    }

    /// The built-in table, extended or replaced by the operator's file (`RELAY_PRICING_FILE`).
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, PricingError> {
        let builtin = table::parse(BUILTIN_JSON, "the built-in price table")?;
        let Some(path) = file else { return Ok(Self::from_entries(builtin.entries)) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| PricingError::Unreadable { path: path.display().to_string(), reason: e.to_string() })?;
        let custom = table::parse(&text, &path.display().to_string())?;
        if custom.replace {
            return Ok(Self::from_entries(custom.entries));
        }
        let mut entries = builtin.entries;
        for e in custom.entries {
            match entries.iter_mut().find(|b| b.provider == e.provider && b.model == e.model) {
                Some(slot) => *slot = e,
                None => entries.push(e),
            }
        }
        Ok(Self::from_entries(entries))
    }

    /// A table of exactly these entries (a later entry for the same name wins).
    pub fn from_entries(entries: Vec<ModelPrice>) -> Self {
        let mut by_model = HashMap::new();
        // Aliases first, so that a model's own entry wins over another entry's alias.
        for (i, e) in entries.iter().enumerate() {
            for alias in &e.aliases {
                by_model.insert((e.provider.clone(), alias.clone()), i);
            }
        }
        for (i, e) in entries.iter().enumerate() {
            by_model.insert((e.provider.clone(), e.model.clone()), i);
        }
        Self { by_model, entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in table order.
    pub fn entries(&self) -> &[ModelPrice] {
        &self.entries
    }

    /// The price of `model` (as the client named it) at `provider`, by the rules above.
    pub fn find(&self, provider: &str, model: &str) -> Option<&ModelPrice> {
        let model = model.strip_prefix(provider).and_then(|m| m.strip_prefix('/')).unwrap_or(model);
        let get = |p: &str, m: &str| self.by_model.get(&(p.to_owned(), m.to_owned())).map(|&i| &self.entries[i]);
        let exact_or_snapshot = |p: &str, m: &str| get(p, m).or_else(|| without_snapshot(m).and_then(|b| get(p, b)));
        exact_or_snapshot(provider, model).or_else(|| {
            let (vendor, rest) = model.split_once('/').filter(|_| provider == "openrouter")?;
            exact_or_snapshot(vendor, rest)
        })
    }

    /// What a call cost in nano-USD: the provider's own figure if it reported one, else the
    /// table's price of its usage; `None` without usage or without a price.
    pub fn cost_nanos(&self, provider: &str, model: &str, usage: Option<&Usage>) -> Option<i64> {
        let usage = usage?;
        usage.cost_nanos.or_else(|| self.find(provider, model).map(|p| p.cost_nanos(usage)))
    }
}

/// `model` without a trailing `-YYYY-MM-DD` or `-YYYYMMDD` snapshot date, if it has one.
fn without_snapshot(model: &str) -> Option<&str> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (base, last) = model.rsplit_once('-')?;
    if last.len() == 8 && digits(last) && last.starts_with("20") {
        return Some(base);
    }
    // -YYYY-MM-DD: three dash-separated number groups of 4, 2 and 2 digits.
    let (rest, day) = (base, last);
    let (rest, month) = rest.rsplit_once('-')?;
    let (base, year) = rest.rsplit_once('-')?;
    let dated = year.len() == 4 && year.starts_with("20") && month.len() == 2 && day.len() == 2;
    (dated && digits(year) && digits(month) && digits(day) && !base.is_empty()).then_some(base)
}

#[cfg(test)]
mod tests;
