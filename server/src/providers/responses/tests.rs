//! Unit tests of the Responses translation's edges; the scenarios themselves are data in
//! tests/fixtures/responses (tests/tests/responses_translation.rs).

use serde_json::json;

use super::*;
use crate::providers::unified::TranslateError;

#[test]
fn state_kept_by_the_provider_is_refused_by_name() {
    for (key, value) in
        [("previous_response_id", json!("resp_1")), ("store", json!(true)), ("conversation", json!("c"))]
    {
        let mut req = json!({"model": "claude-sonnet-4-5", "input": "hi"});
        req[key] = value;
        let e = chat_request(&req, ProviderId::Anthropic).expect_err(key);
        assert_eq!(e.param.as_deref(), Some(key));
    }
    let ok = json!({"model": "claude-sonnet-4-5", "input": "hi", "store": false});
    assert!(chat_request(&ok, ProviderId::Anthropic).is_ok());
}

#[test]
fn hosted_tools_and_unknown_fields_are_named() {
    let req = json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]});
    assert_eq!(chat_request(&req, ProviderId::Google).expect_err("tool").param.as_deref(), Some("tools[0].type"));
    let req = json!({"model": "m", "input": "hi", "top_logprobs": 2});
    assert_eq!(chat_request(&req, ProviderId::Google).expect_err("field").param.as_deref(), Some("top_logprobs"));
}

#[test]
fn function_calls_join_one_assistant_message_and_outputs_become_tool_messages() {
    let req = json!({"model": "m", "instructions": "Be brief.", "input": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{\"city\":\"Rome\"}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": "rain"},
    ]});
    let chat = chat_request(&req, ProviderId::Mistral).expect("translated");
    let m = chat["messages"].as_array().expect("messages");
    assert_eq!(m.len(), 5);
    assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(m[2]["tool_calls"].as_array().map(Vec::len), Some(2));
    assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}));
}

#[test]
fn refused_chat_parameters_are_named_as_the_client_sent_them() {
    let rename = |p: &str| rename_param(TranslateError::new("x", Some(p))).param.unwrap_or_default();
    assert_eq!(rename("max_completion_tokens"), "max_output_tokens");
    assert_eq!(rename("reasoning_effort"), "reasoning.effort");
    assert_eq!(rename("response_format.json_schema.schema"), "text.format.schema");
    assert_eq!(rename("tools[1].function.parameters"), "tools[1].parameters");
}
