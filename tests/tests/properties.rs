//! Property tests for what parses hostile input: the SSE parser under any chunk split, every
//! provider's translators and error readers on any JSON (or bytes) an upstream may send, and the
//! end-user label parser. Each runs a few hundred generated cases on stable Rust (proptest).

use bytes::Bytes;
use proptest::prelude::*;
use relay::domain::EndUserLabel;
use relay::providers::unified::{ChatContext, SseEvent, StreamItem};
use relay::providers::ProviderId;
use relay::sse::SseParser;
use serde_json::Value;

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
    fn labels_are_printable_and_bounded(raw in "\\PC{0,140}|.{0,3}[\u{0}-\u{1f}\u{200b}\u{202e}].{0,3}") {
        if let Ok(label) = EndUserLabel::parse(&raw) {
            let n = label.as_str().chars().count();
            prop_assert!((1..=128).contains(&n));
            prop_assert!(!label.as_str().chars().any(char::is_control));
            prop_assert_eq!(label.as_str().trim(), label.as_str());
        }
    }
}
