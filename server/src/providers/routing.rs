//! Which provider serves a model: an explicit `provider/model` prefix always wins, otherwise the
//! model family decides (API.md, Unified API).

use super::ProviderId;

/// A model resolved to its provider and the name that provider knows it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub provider: ProviderId,
    pub upstream_model: String,
}

/// The model names Relay routes, for error messages: every provider's own patterns, then the
/// explicit form.
pub fn accepted_forms() -> &'static str {
    static FORMS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FORMS.get_or_init(|| {
        let mut parts: Vec<String> = ProviderId::ALL
            .iter()
            .filter(|p| !p.def().models.is_empty())
            .map(|p| format!("{} ({p})", p.def().models.join(", ")))
            .collect();
        parts.push(
            "or an explicit provider/model such as groq/llama-3.3-70b-versatile or openrouter/anthropic/claude-sonnet-4"
                .into(),
        );
        parts.join("; ")
    })
}

pub fn resolve(model: &str) -> Option<Route> {
    if let Some((prefix, rest)) = model.split_once('/') {
        if let Ok(provider) = prefix.parse::<ProviderId>() {
            return (!rest.is_empty()).then(|| Route { provider, upstream_model: rest.to_owned() });
        }
    }
    let provider = family(model)?;
    Some(Route { provider, upstream_model: model.to_owned() })
}

/// The provider whose model patterns name `model`: an exact name first, else the longest prefix.
fn family(model: &str) -> Option<ProviderId> {
    let mut best: Option<(usize, ProviderId)> = None;
    for provider in ProviderId::ALL {
        for pattern in provider.def().models {
            match pattern.strip_suffix('*') {
                None if *pattern == model => return Some(provider),
                Some(prefix) if model.starts_with(prefix) && best.is_none_or(|(len, _)| prefix.len() > len) => {
                    best = Some((prefix.len(), provider));
                }
                _ => {}
            }
        }
    }
    best.map(|(_, p)| p)
}

/// How `/v1/models` names a provider's model so that it routes back to that provider.
pub fn public_model_id(provider: ProviderId, upstream_id: &str) -> String {
    match resolve(upstream_id) {
        Some(r) if r.provider == provider && r.upstream_model == upstream_id => upstream_id.to_owned(),
        _ => format!("{provider}/{upstream_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(model: &str) -> Option<(ProviderId, String)> {
        resolve(model).map(|r| (r.provider, r.upstream_model))
    }

    #[test]
    fn families_and_prefixes() {
        use ProviderId::*;
        let cases = [
            ("gpt-4o-mini", Some((OpenAi, "gpt-4o-mini"))),
            ("o1", Some((OpenAi, "o1"))),
            ("o3-mini", Some((OpenAi, "o3-mini"))),
            ("o4-mini", Some((OpenAi, "o4-mini"))),
            ("chatgpt-4o-latest", Some((OpenAi, "chatgpt-4o-latest"))),
            ("text-embedding-3-small", Some((OpenAi, "text-embedding-3-small"))),
            ("text-embedding-004", Some((Google, "text-embedding-004"))),
            ("claude-sonnet-4-5", Some((Anthropic, "claude-sonnet-4-5"))),
            ("gemini-2.5-flash", Some((Google, "gemini-2.5-flash"))),
            ("gemini-embedding-001", Some((Google, "gemini-embedding-001"))),
            ("mistral-large-latest", Some((Mistral, "mistral-large-latest"))),
            ("codestral-latest", Some((Mistral, "codestral-latest"))),
            ("magistral-medium-latest", Some((Mistral, "magistral-medium-latest"))),
            ("groq/llama-3.3-70b-versatile", Some((Groq, "llama-3.3-70b-versatile"))),
            ("openrouter/anthropic/claude-sonnet-4", Some((OpenRouter, "anthropic/claude-sonnet-4"))),
            ("anthropic/claude-haiku-4-5", Some((Anthropic, "claude-haiku-4-5"))),
            ("openai/gpt-4o", Some((OpenAi, "gpt-4o"))),
            ("groq/", None),
            ("llama-3.3-70b", None),
            ("", None),
            ("unknown/gpt-4o", None),
        ];
        for (model, want) in cases {
            assert_eq!(p(model), want.map(|(prov, m)| (prov, m.to_owned())), "{model}");
        }
    }

    #[test]
    fn listed_ids_route_back() {
        use ProviderId::*;
        assert_eq!(public_model_id(OpenAi, "gpt-4o"), "gpt-4o");
        assert_eq!(public_model_id(Groq, "llama-3.3-70b-versatile"), "groq/llama-3.3-70b-versatile");
        assert_eq!(public_model_id(Mistral, "open-mistral-nemo"), "mistral/open-mistral-nemo");
        assert_eq!(public_model_id(OpenRouter, "openai/gpt-4o"), "openrouter/openai/gpt-4o");
        for (prov, id) in [(Groq, "llama3-8b"), (Mistral, "pixtral-12b"), (Google, "gemini-2.5-pro")] {
            let public = public_model_id(prov, id);
            assert_eq!(resolve(&public).map(|r| (r.provider, r.upstream_model)), Some((prov, id.to_owned())));
        }
    }
}
