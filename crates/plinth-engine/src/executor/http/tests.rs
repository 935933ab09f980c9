use super::*;
use std::collections::BTreeMap;

fn reply(status: u16, body: &[u8]) -> Reply {
    Reply { status, body: body.to_vec(), over: false, location: None, no_retry: false, retry_after: None, signature: None }
}

fn code(end: &AttemptEnd) -> Option<(&str, bool)> {
    match end {
        AttemptEnd::Failed(e) => Some((e.code.as_str(), e.retryable)),
        _ => None,
    }
}

#[test]
fn a_2xx_json_body_is_the_output() {
    assert_eq!(classify(reply(200, br#"{"ok":1}"#), 100), AttemptEnd::Succeeded(json!({"ok": 1})));
    assert_eq!(classify(reply(201, b"[1,2]"), 100), AttemptEnd::Succeeded(json!([1, 2])));
    assert_eq!(classify(reply(204, b""), 100), AttemptEnd::Succeeded(Value::Null));
    assert_eq!(classify(reply(200, b" \n"), 100), AttemptEnd::Succeeded(Value::Null));
}

#[test]
fn retryable_statuses_fail_retryably() {
    for status in [408, 429, 500, 502, 503, 599] {
        let end = classify(reply(status, b"busy"), 100);
        assert_eq!(code(&end), Some(("PLINTH_020", true)), "{status}: {end:?}");
    }
}

#[test]
fn other_client_errors_fail_at_once_with_status_and_excerpt() {
    for status in [400, 401, 404, 409, 422] {
        let end = classify(reply(status, b"{\"detail\": \"bad  input\"}"), 100);
        assert_eq!(code(&end), Some(("PLINTH_027", false)), "{status}");
        let AttemptEnd::Failed(e) = end else { unreachable!() };
        assert!(e.message.contains(&status.to_string()) && e.message.contains("bad input"), "{}", e.message);
    }
}

#[test]
fn non_json_redirects_and_oversized_bodies_fail() {
    assert_eq!(code(&classify(reply(200, b"<html>hi</html>"), 100)), Some(("PLINTH_029", false)));
    let redirect = Reply {
        status: 302,
        body: Vec::new(),
        over: false,
        location: Some("http://elsewhere/".into()),
        no_retry: false,
        retry_after: None,
        signature: None,
    };
    let end = classify(redirect, 100);
    assert_eq!(code(&end), Some(("PLINTH_029", false)));
    assert!(matches!(&end, AttemptEnd::Failed(e) if e.message.contains("http://elsewhere/")));
    let big = Reply {
        status: 200,
        body: vec![b'1'; 10],
        over: true,
        location: None,
        no_retry: false,
        retry_after: None,
        signature: None,
    };
    assert_eq!(code(&classify(big, 10)), Some(("PLINTH_026", false)));
}

#[test]
fn excerpts_are_short_single_lines() {
    assert_eq!(excerpt(b""), "(empty body)");
    assert_eq!(excerpt(b"a\n  b\tc"), "a b c");
    let long = vec![b'x'; 2000];
    let e = excerpt(&long);
    assert!(e.ends_with('…') && e.chars().count() == EXCERPT + 1, "{}", e.len());
    assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
}

fn spec(url: &str, headers: &[(&str, &str)]) -> HttpSpec {
    HttpSpec {
        url: url.into(),
        timeout: None,
        headers: headers.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect::<BTreeMap<_, _>>(),
    }
}

#[test]
fn targets_expand_header_variables() {
    let lookup = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
    let t = target(&spec("http://127.0.0.1:9/work", &[("Authorization", "Bearer ${TOKEN}")]), lookup).expect("target");
    assert_eq!(t.headers.get("authorization").map(|v| v.to_str().ok()), Some(Some("Bearer s3cret")));
    assert!(t.headers.get("authorization").is_some_and(HeaderValue::is_sensitive));
    assert!(!format!("{t:?}").contains("s3cret"), "secrets stay out of debug output");
}

#[test]
fn targets_refuse_unset_variables_and_bad_urls() {
    let none = |_: &str| None;
    let (field, reason) = target(&spec("http://h/", &[("X-Key", "${MISSING}")]), none).expect_err("unset");
    assert_eq!(field, "headers");
    assert!(reason.contains("MISSING"), "{reason}");
    assert_eq!(target(&spec("http://h/", &[("X-Key", "${OPEN")]), none).expect_err("unclosed").0, "headers");
    assert_eq!(target(&spec("http://[::1/", &[]), none).expect_err("bad url").0, "url");
}

#[test]
fn logged_urls_hide_credentials_and_queries() {
    let url = reqwest::Url::parse("https://user:pw@example.com:8443/hook?token=abc").expect("url");
    assert_eq!(redacted(&url), "https://example.com:8443/hook");
}
