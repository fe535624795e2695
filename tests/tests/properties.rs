//! Property tests for what parses hostile input: the SSE parser under any chunk split, every
//! provider's translators and error readers on any JSON (or bytes) an upstream may send, the SSRF
//! classifier against the resolver it guards, and the end-user label parser. Each runs a few
//! hundred generated cases on stable Rust (proptest).

use bytes::Bytes;
use proptest::prelude::*;
use relay::domain::EndUserLabel;
use relay::providers::unified::{ChatContext, SseEvent, StreamItem};
use relay::providers::ProviderId;
use relay::sse::SseParser;
use relay::ssrf::{check_base_url, forbidden_reason, Lookup, PolicyResolver, UpstreamPolicy};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Any JSON value, a few levels deep, with the keys translators look for among random ones.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("choices".to_owned()),
        Just("content".to_owned()),
        Just("candidates".to_owned()),
        Just("usage".to_owned()),
        Just("usageMetadata".to_owned()),
        Just("type".to_owned()),
        Just("delta".to_owned()),
        Just("error".to_owned()),
        Just("message".to_owned()),
        Just("parts".to_owned()),
        Just("text".to_owned()),
        Just("index".to_owned()),
        Just("tool_calls".to_owned()),
        Just("input_tokens".to_owned()),
        Just("finishReason".to_owned()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![Just("message_start"), Just("content_block_delta"), Just("tool_use"), Just("text"), Just("STOP")]
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A resolver whose every name has one address.
struct Resolves(IpAddr);

#[async_trait::async_trait]
impl Lookup for Resolves {
    async fn lookup(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0, port)])
    }
}

/// Addresses from everywhere, the special ranges (private, loopback, link-local, mapped,
/// documentation, multicast) weighted in.
fn address() -> impl Strategy<Value = IpAddr> {
    let v4 = |prefix: u32, bits: u32| {
        (0..(1u32 << (32 - bits))).prop_map(move |low| IpAddr::V4(Ipv4Addr::from(prefix | low)))
    };
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
        v4(0x0a00_0000, 8),
        v4(0x7f00_0000, 8),
        v4(0xa9fe_0000, 16),
        v4(0xac10_0000, 12),
        v4(0xc0a8_0000, 16),
        v4(0x6440_0000, 10),
        v4(0xe000_0000, 4),
        any::<u32>().prop_map(|n| IpAddr::V6(Ipv4Addr::from(n).to_ipv6_mapped())),
        any::<u32>()
            .prop_map(|n| IpAddr::V6(Ipv6Addr::from(0x0064_ff9b_0000_0000_0000_0000_0000_0000u128 | u128::from(n)))),
        any::<u64>()
            .prop_map(|n| IpAddr::V6(Ipv6Addr::from(0xfe80_0000_0000_0000_0000_0000_0000_0000u128 | u128::from(n)))),
        any::<u128>()
            .prop_map(|n| IpAddr::V6(Ipv6Addr::from(0xfc00_0000_0000_0000_0000_0000_0000_0000u128 | (n >> 7)))),
    ]
}

fn ctx() -> ChatContext {
    ChatContext { id: "chatcmpl-x".into(), model: "m".into(), created: 1, include_usage: true }
}

/// What a translated stream may send: OpenAI chunks, passed-on events, errors, `[DONE]`.
fn well_formed(item: &StreamItem) -> bool {
    match item {
        StreamItem::Chunk(v) => v["object"] == "chat.completion.chunk" && v["choices"].is_array(),
        StreamItem::Error(v) => v["error"]["message"].is_string(),
        StreamItem::Raw(_) | StreamItem::Done => true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sse_events_are_the_same_however_the_bytes_are_split(
        events in proptest::collection::vec((proptest::option::of("[a-z_]{1,10}"), proptest::collection::vec("[^\r\n]{0,20}", 1..3)), 0..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        crlf in any::<bool>(),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut text = String::new();
        for (name, lines) in &events {
            if let Some(name) = name {
                text.push_str(&format!("event: {name}{nl}"));
            }
            for line in lines {
                text.push_str(&format!("data: {line}{nl}"));
            }
            text.push_str(nl);
        }
        let bytes = text.as_bytes();
        let mut whole = SseParser::new();
        let mut expected = whole.push(bytes);
        expected.extend(whole.finish());
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut parser = SseParser::new();
        let (mut got, mut at) = (Vec::new(), 0);
        for p in points {
            got.extend(parser.push(&bytes[at..p]));
            at = p;
        }
        got.extend(parser.push(&bytes[at..]));
        got.extend(parser.finish());
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(got.len(), events.len());
    }

    #[test]
    fn translators_never_panic_and_answer_in_openai_shape(body in json(), status in 400u16..600) {
        let text = body.to_string();
        for provider in ProviderId::STORABLE {
            let dialect = provider.def().dialect;
            if let Ok((answer, _)) = dialect.chat_response(Bytes::from(text.clone()), &ctx()) {
                prop_assert!(serde_json::from_slice::<Value>(&answer).is_ok(), "{provider}: not JSON");
            }
            let _ = dialect.embeddings_response(Bytes::from(text.clone()), &serde_json::json!({"model": "m", "input": "x"}));
            let mut stream = dialect.chat_stream(ctx());
            let event = SseEvent { event: body.get("type").and_then(Value::as_str).map(str::to_owned), data: text.clone() };
            for item in stream.on_event(&event).iter().chain(stream.finish().iter()) {
                prop_assert!(well_formed(item), "{provider}: {item:?}");
            }
            let err = dialect.upstream_error(status, text.as_bytes());
            prop_assert!(!err.message.is_empty(), "{provider}: an empty error message");
            let verdict = dialect.key_verdict(status, text.as_bytes());
            if status == 401 || status == 403 {
                prop_assert_eq!(verdict, Some(relay::domain::key_health::KeyStatus::Invalid));
            }
        }
    }

    #[test]
    fn error_readers_take_any_bytes(body in proptest::collection::vec(any::<u8>(), 0..200), status in 400u16..600) {
        for provider in ProviderId::STORABLE {
            let err = provider.def().dialect.upstream_error(status, &body);
            prop_assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn the_url_check_and_the_resolver_agree_on_every_address(ip in address()) {
        let policy = Arc::new(UpstreamPolicy::new(Vec::new(), false));
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let by_url = check_base_url(&policy, &format!("https://{host}/v1")).is_ok();
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let literal = PolicyResolver::new(policy.clone(), Arc::new(Resolves(ip)));
        let by_literal = runtime.block_on(literal.resolve_host(&ip.to_string(), 443)).is_ok();
        let by_dns = runtime.block_on(literal.resolve_host("api.example.com", 443)).is_ok();
        let global = forbidden_reason(ip).is_none();
        prop_assert_eq!((by_url, by_literal, by_dns), (global, global, global), "{}", ip);
    }

    #[test]
    fn labels_are_printable_and_bounded(raw in "\\PC{0,140}|.{0,3}[\u{0}-\u{1f}\u{200b}\u{202e}].{0,3}") {
        if let Ok(label) = EndUserLabel::parse(&raw) {
            let n = label.as_str().chars().count();
            prop_assert!((1..=128).contains(&n));
            prop_assert!(!label.as_str().chars().any(char::is_control));
            prop_assert_eq!(label.as_str().trim(), label.as_str());
        }
    }
}
