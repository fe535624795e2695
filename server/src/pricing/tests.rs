use super::*;

fn usage(prompt: u64, completion: u64) -> Usage {
    Usage { prompt_tokens: prompt, completion_tokens: completion, ..Usage::default() }
}

fn price(input: u64, output: u64) -> ModelPrice {
    ModelPrice {
        provider: "openai".into(),
        model: "m".into(),
        aliases: vec![],
        rates: Rates { input, output, cached_input: None, cache_write: None, reasoning: None },
        long_context: None,
        date: "2026-12-03".into(),
        source: "https://example.com".into(),
    }
}

#[test]
fn the_formula_prices_each_kind_of_token() {
    // $3 input, $15 output, $0.30 cache read, $3.75 cache write, $20 reasoning (per million).
    let mut p = price(3_000_000, 15_000_000);
    p.rates.cached_input = Some(300_000);
    p.rates.cache_write = Some(3_750_000);
    p.rates.reasoning = Some(20_000_000);
    let u = Usage {
        prompt_tokens: 2139,
        completion_tokens: 124,
        cached_tokens: 1930,
        cache_write_tokens: 188,
        reasoning_tokens: 100,
        cost_nanos: None,
    };
    // 21 × 3 + 1930 × 0.30 + 188 × 3.75 + 24 × 15 + 100 × 20 = 3707 µUSD.
    assert_eq!(p.cost_nanos(&u), 3_707_000);
    // Without cache or reasoning prices those tokens cost input and output.
    let plain = price(3_000_000, 15_000_000);
    assert_eq!(plain.cost_nanos(&u), (2139 * 3 + 124 * 15) * 1000);
}

#[test]
fn costs_round_once_to_the_nano_usd() {
    // 75 pico-USD per token ($0.000075 per million): 0.075 nano-USD a token.
    let p = price(75, 0);
    assert_eq!(p.cost_nanos(&usage(1, 0)), 0);
    assert_eq!(p.cost_nanos(&usage(7, 0)), 1); // 0.525
    assert_eq!(p.cost_nanos(&usage(1_000_000, 0)), 75_000);
    // $0.075 per million: 75 nano-USD a token.
    assert_eq!(price(75_000, 0).cost_nanos(&usage(3, 0)), 225);
    // Huge counts saturate instead of wrapping.
    let p = price(100_000_000_000, 100_000_000_000);
    assert_eq!(p.cost_nanos(&usage(u64::MAX, u64::MAX)), i64::MAX);
}

#[test]
fn inconsistent_counts_are_clamped() {
    let mut p = price(1_000_000, 2_000_000);
    p.rates.cached_input = Some(0);
    // More cached than prompt: all of the prompt is cached; more reasoning than completion.
    let u =
        Usage { prompt_tokens: 10, cached_tokens: 50, completion_tokens: 5, reasoning_tokens: 9, ..Usage::default() };
    assert_eq!(p.cost_nanos(&u), 10_000);
}

#[test]
fn long_context_prices_apply_above_the_threshold() {
    let mut p = price(1_250_000, 10_000_000);
    p.long_context = Some((
        200_000,
        Rates { input: 2_500_000, output: 15_000_000, cached_input: None, cache_write: None, reasoning: None },
    ));
    assert_eq!(p.cost_nanos(&usage(200_000, 0)), 250_000_000);
    assert_eq!(p.cost_nanos(&usage(200_001, 1000)), 200_001 * 2_500 + 15_000_000);
}

#[test]
fn snapshots_find_their_base_model() {
    let prices = Prices::builtin();
    let model = |provider: &str, model: &str| prices.find(provider, model).map(|p| p.model.as_str());
    assert_eq!(model("openai", "gpt-4o-2024-08-06"), Some("gpt-4o"));
    assert_eq!(model("openai", "gpt-4o-mini-2024-07-18"), Some("gpt-4o-mini"));
    assert_eq!(model("openai", "gpt-4o-mini"), Some("gpt-4o-mini"));
    assert_eq!(model("anthropic", "claude-sonnet-4-5-20250929"), Some("claude-sonnet-4-5"));
    assert_eq!(model("anthropic", "claude-sonnet-4-20250514"), Some("claude-sonnet-4"));
    assert_eq!(model("anthropic", "claude-sonnet-4-0"), Some("claude-sonnet-4"));
    assert_eq!(model("anthropic", "claude-3-haiku-20240307"), Some("claude-3-haiku"));
    assert_eq!(model("anthropic", "anthropic/claude-haiku-4-5"), Some("claude-haiku-4-5"));
    assert_eq!(model("groq", "groq/llama-3.3-70b-versatile"), Some("llama-3.3-70b-versatile"));
    assert_eq!(model("groq", "groq/openai/gpt-oss-120b"), Some("openai/gpt-oss-120b"));
    // OpenRouter falls back to the vendor's own price.
    assert_eq!(model("openrouter", "openrouter/anthropic/claude-sonnet-4-5"), Some("claude-sonnet-4-5"));
    // Only dates are stripped: neither a sibling model nor an unknown one matches.
    assert_eq!(model("openai", "gpt-4o-audio"), None);
    assert_eq!(model("openai", "gpt-4o-2024"), None);
    assert_eq!(model("openai", "gpt-9"), None);
    // A model is priced only at its own provider.
    assert_eq!(model("groq", "gpt-4o"), None);
    assert_eq!(model("google", "gemini-2.5-flash-preview-09-2025"), None);
}

#[test]
fn snapshot_suffixes() {
    assert_eq!(without_snapshot("gpt-4o-2024-08-06"), Some("gpt-4o"));
    assert_eq!(without_snapshot("claude-opus-4-1-20250805"), Some("claude-opus-4-1"));
    assert_eq!(without_snapshot("o3-2025-04-16"), Some("o3"));
    assert_eq!(without_snapshot("gpt-4o"), None);
    assert_eq!(without_snapshot("claude-opus-4-1"), None);
    assert_eq!(without_snapshot("mistral-large-2411"), None);
    assert_eq!(without_snapshot("-2024-08-06"), None);
    assert_eq!(without_snapshot("text-embedding-004"), None);
}

#[test]
fn a_reported_cost_wins_and_no_usage_is_no_cost() {
    let prices = Prices::builtin();
    let u = Usage { prompt_tokens: 1000, cost_nanos: Some(4_200), ..Usage::default() };
    assert_eq!(prices.cost_nanos("openrouter", "openai/gpt-4o", Some(&u)), Some(4_200));
    assert_eq!(prices.cost_nanos("openai", "gpt-4o", None), None);
    assert_eq!(prices.cost_nanos("openai", "gpt-unknown", Some(&usage(10, 10))), None);
    // gpt-4o: $2.50 in, $10 out.
    assert_eq!(prices.cost_nanos("openai", "gpt-4o", Some(&usage(1000, 100))), Some(3_500_000));
}

#[test]
fn the_builtin_table_is_complete_and_dated() {
    let prices = Prices::load(None).expect("the built-in table parses");
    assert!(prices.len() > 40, "{} entries", prices.len());
    for e in prices.entries() {
        assert!(e.source.starts_with("https://"), "{}/{}", e.provider, e.model);
        assert!(e.rates.input > 0, "{}/{} has an input price", e.provider, e.model);
        // Every model in the table routes to the provider it is listed under.
        if e.provider != "openrouter" {
            let route = crate::providers::routing::resolve(&format!("{}/{}", e.provider, e.model));
            assert_eq!(route.map(|r| r.provider.as_str().to_owned()), Some(e.provider.clone()), "{}", e.model);
        }
    }
    for (provider, model) in [
        ("openai", "gpt-4o"),
        ("openai", "text-embedding-3-small"),
        ("anthropic", "claude-sonnet-4-5"),
        ("google", "gemini-2.5-flash"),
        ("google", "gemini-2.5-pro"),
        ("groq", "llama-3.3-70b-versatile"),
        ("mistral", "mistral-large-latest"),
    ] {
        assert!(prices.find(provider, model).is_some(), "{provider}/{model}");
    }
}

/// A file that is removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write(text: &str) -> TempFile {
    let path = std::env::temp_dir().join(format!("relay-prices-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).expect("write");
    TempFile(path)
}

const ENTRY: &str = r#"{"provider": "openai", "model": "gpt-4o", "input": 1, "output": 2, "date": "2026-12-01", "source": "https://example.com/p"}"#;

#[test]
fn a_pricing_file_extends_or_replaces() {
    let custom = format!(
        r#"{{"models": [{ENTRY}, {{"provider": "openai-compatible", "model": "llama3", "input": 0.5, "output": 0.5, "date": "2026-12-01", "source": "https://example.com/p"}}]}}"#
    );
    let f = write(&custom);
    let prices = Prices::load(Some(f.path())).expect("loads");
    assert_eq!(prices.len(), Prices::builtin().len() + 1);
    assert_eq!(prices.find("openai", "gpt-4o").map(|p| p.rates.input), Some(1_000_000));
    assert_eq!(prices.find("openai", "gpt-4o").and_then(|p| p.rates.cached_input), None);
    assert!(prices.find("openai-compatible", "llama3").is_some());
    assert!(prices.find("anthropic", "claude-sonnet-4-5").is_some());

    let f = write(&format!(r#"{{"replace": true, "models": [{ENTRY}]}}"#));
    let prices = Prices::load(Some(f.path())).expect("loads");
    assert_eq!(prices.len(), 1);
    assert!(prices.find("anthropic", "claude-sonnet-4-5").is_none());
}

#[test]
fn a_bad_pricing_file_names_the_entry() {
    let cases = [
        (
            r#"{"models": [ENTRY, {"provider": "openai", "model": "gpt-x", "input": -1, "output": 2, "date": "2026-12-01", "source": "https://e.com"}]}"#,
            "models[1] (openai/gpt-x): input must be a non-negative",
        ),
        (
            r#"{"models": [{"provider": "openai", "model": "gpt-x", "input": 1, "output": 2, "date": "yesterday", "source": "https://e.com"}]}"#,
            "models[0] (openai/gpt-x): date must be YYYY-MM-DD",
        ),
        (
            r#"{"models": [{"provider": "acme", "model": "m", "input": 1, "output": 2, "date": "2026-12-01", "source": "https://e.com"}]}"#,
            "models[0] (acme/m): unknown provider",
        ),
        (
            r#"{"models": [{"provider": "openai", "model": "m", "inptu": 1, "output": 2, "date": "2026-12-01", "source": "https://e.com"}]}"#,
            "models[0] (openai/m): unknown field `inptu`",
        ),
        (r#"{"models": [ENTRY, ENTRY]}"#, "models[1] (openai/gpt-4o): openai/gpt-4o is already priced by models[0]"),
        (r#"{"prices": []}"#, "is not valid"),
        ("not json", "is not valid"),
    ];
    for (text, want) in cases {
        let f = write(&text.replace("ENTRY", ENTRY));
        let err = Prices::load(Some(f.path())).expect_err(text).to_string();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
        assert!(err.contains(&f.path().display().to_string()), "{err:?} names the file");
    }
    let err = Prices::load(Some(std::path::Path::new("/nonexistent/prices.json"))).expect_err("missing");
    assert!(err.to_string().contains("/nonexistent/prices.json"));
}
