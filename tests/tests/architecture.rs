//! The map, enforced: only the routes and the wiring itself may know the wiring (`startup`), and
//! only `providers/` names providers one by one. Reads `server/src` as text.

use std::path::{Path, PathBuf};

fn src_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src")
}

/// Every `.rs` file below `root`, as (path relative to `root` with `/`, text), sorted.
fn rust_files(root: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())).flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).expect("below root");
                let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                out.push((rel, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    assert!(out.iter().any(|(p, _)| p == "startup.rs") && out.len() > 20, "server/src found at {}", root.display());
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The text with comment lines blanked (line numbers kept): a mention in prose is not a use.
fn code_only(text: &str) -> String {
    text.lines().map(|l| if l.trim_start().starts_with("//") { "" } else { l }).collect::<Vec<_>>().join("\n")
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// Lines that reach `startup` from the crate root: `crate::startup`, `super::startup`, or a
/// `crate::{…}` / `super::{…}` group with a top-level `startup` item.
fn startup_mentions(text: &str) -> Vec<usize> {
    let code = code_only(text);
    let mut lines = Vec::new();
    for root in ["crate::", "super::"] {
        for (at, _) in code.match_indices(root) {
            if code[..at].chars().next_back().is_some_and(is_ident) {
                continue;
            }
            let rest = &code[at + root.len()..];
            let names_startup = if let Some(group) = rest.strip_prefix('{') {
                top_level_items(group).iter().any(|item| first_segment(item) == "startup")
            } else {
                first_segment(rest) == "startup"
            };
            if names_startup {
                lines.push(line_of(&code, at));
            }
        }
    }
    lines.sort_unstable();
    lines.dedup();
    lines
}

fn first_segment(path: &str) -> &str {
    let path = path.trim_start();
    &path[..path.find(|c: char| !is_ident(c)).unwrap_or(path.len())]
}

/// The items of a `{…}` group (text after the `{`), split at its own commas.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

/// Lines of non-test code that name a provider variant: `ProviderId::Google` (not an ALL-CAPS
/// constant such as `ProviderId::ALL`), or variants imported with `ProviderId::{…}` / `::*`.
/// Everything from a line with `#[cfg(test)]` on is test code.
fn provider_variant_mentions(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.contains("#[cfg(test)]") {
            break;
        }
        if line.trim_start().starts_with("//") {
            continue;
        }
        let names_variant = line.match_indices("ProviderId::").any(|(at, m)| {
            if line[..at].chars().next_back().is_some_and(is_ident) {
                return false;
            }
            let rest = &line[at + m.len()..];
            if rest.starts_with('{') || rest.starts_with('*') {
                return true;
            }
            let name = first_segment(rest);
            name.starts_with(|c: char| c.is_ascii_uppercase()) && name.chars().any(|c| c.is_ascii_lowercase())
        });
        if names_variant {
            out.push((i + 1, line.trim().to_owned()));
        }
    }
    out
}

fn may_know_startup(rel: &str) -> bool {
    rel.starts_with("routes/") || matches!(rel, "startup.rs" | "cli.rs" | "main.rs" | "lib.rs" | "openapi.rs")
}

#[test]
fn only_routes_and_the_wiring_import_startup() {
    let mut offenders = Vec::new();
    for (rel, text) in rust_files(&src_root()) {
        if may_know_startup(&rel) {
            continue;
        }
        for line in startup_mentions(&text) {
            let code = text.lines().nth(line - 1).unwrap_or_default().trim();
            offenders.push(format!("server/src/{rel}:{line}: {code}"));
        }
    }
    assert!(
        offenders.is_empty(),
        "modules below the routes import startup (take what they need as arguments instead):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn only_providers_name_provider_variants() {
    let files = rust_files(&src_root());
    let providers_mod = files.iter().find(|(p, _)| p == "providers/mod.rs").expect("providers/mod.rs");
    assert!(!provider_variant_mentions(&providers_mod.1).is_empty(), "the scan sees the variants where they live");
    let mut offenders = Vec::new();
    for (rel, text) in &files {
        if rel.starts_with("providers/") || rel.rsplit('/').next() == Some("tests.rs") {
            continue;
        }
        for (line, code) in provider_variant_mentions(text) {
            offenders.push(format!("server/src/{rel}:{line}: {code}"));
        }
    }
    assert!(
        offenders.is_empty(),
        "provider variants named outside server/src/providers/ (ask the provider instead):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_scans_see_what_they_look_for() {
    let uses = [
        "use crate::startup::AppState;",
        "fn f(s: &crate::startup::AppState) {}",
        "use crate::{auth, startup::AppState};",
        "use crate::{\n    auth::TenantAuth,\n    startup,\n};",
        "use super::startup::AppState;",
        "use crate::{providers::{ProviderId}, startup::{AppState}};",
    ];
    for text in uses {
        assert!(!startup_mentions(text).is_empty(), "{text:?}");
    }
    assert_eq!(startup_mentions("use crate::x;\n\nuse crate::{a,\n startup};"), vec![3]);
    let not_uses = [
        "use crate::startups::X;",
        "use crate::{providers::startup::X};",
        "// see crate::startup::AppState",
        "use mycrate::startup::X;",
        "use crate::{auth, telemetry};",
    ];
    for text in not_uses {
        assert!(startup_mentions(text).is_empty(), "{text:?}");
    }

    let named = [
        "if p == ProviderId::Google {",
        "ProviderId::OpenAiCompatible => x,",
        "use crate::providers::ProviderId::{Google, OpenAi};",
        "use ProviderId::*;",
        "matches!(p, crate::providers::ProviderId::Mistral)",
    ];
    for text in named {
        assert_eq!(provider_variant_mentions(text).len(), 1, "{text:?}");
    }
    let not_named = [
        "for p in ProviderId::ALL {",
        "ProviderId::STORABLE.map(ProviderId::as_str)",
        "let p: ProviderId = s.parse()?;",
        "// ProviderId::Google in prose",
        "MyProviderId::Google",
        "#[cfg(test)]\nmod tests { const P: ProviderId = ProviderId::Google; }",
    ];
    for text in not_named {
        assert!(provider_variant_mentions(text).is_empty(), "{text:?}");
    }
    assert_eq!(provider_variant_mentions("a\nb(ProviderId::Groq)\n"), vec![(2, "b(ProviderId::Groq)".to_owned())]);
}
