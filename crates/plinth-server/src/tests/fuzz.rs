//! Property tests of request parsing: whatever a client sends, the answer is a 2xx or a 4xx
//! problem, never a panic and never a 5xx.

use super::harness;
use crate::body::{deeper_than, json_body};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Request, header};
use axum::response::IntoResponse;
use proptest::prelude::*;
use serde_json::Value;

fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h
}

/// Arbitrary JSON, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("function"),
            Just("input"),
            Just("echo"),
            Just("idempotency_key"),
            Just("priority"),
            Just("delay_seconds")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("function".to_string()),
                    Just("input".to_string()),
                    Just("idempotency_key".to_string()),
                    Just("priority".to_string()),
                    Just("delay_seconds".to_string()),
                    "[a-z_]{1,12}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_read_or_refused_with_a_4xx(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = json_body(&json_headers(), Ok(Bytes::from(bytes)), 4096) {
            let status = e.into_response().status();
            prop_assert!(status.is_client_error(), "{status}");
        }
    }

    #[test]
    fn arbitrary_json_is_parsed_or_refused_with_a_4xx(value in any_json()) {
        if let Err(e) = crate::routes::request::parse(value) {
            let status = e.into_response().status();
            prop_assert!(status.is_client_error(), "{status}");
        }
    }

    #[test]
    fn the_depth_scan_agrees_with_the_parser(value in any_json()) {
        fn depth(v: &Value) -> usize {
            match v {
                Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        let text = value.to_string();
        let d = depth(&value);
        prop_assert!(!deeper_than(text.as_bytes(), d));
        prop_assert_eq!(deeper_than(text.as_bytes(), d.saturating_sub(1)), d > 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn post_run_never_answers_5xx(value in any_json(), raw in prop::option::of(prop::collection::vec(any::<u8>(), 0..256))) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let status = rt.block_on(async {
            let h = harness();
            let body = raw.unwrap_or_else(|| value.to_string().into_bytes());
            let req = Request::post("/run").header("content-type", "application/json").body(Body::from(body)).expect("request");
            h.send(req).await.status
        });
        prop_assert!(status.is_success() || status.is_client_error(), "{status}");
    }
}
