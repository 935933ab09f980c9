//! The expected values were computed by the Inngest Python SDK 0.5.19 itself
//! (`inngest._internal.net.sign_request`, `sign_response`, `transforms.hash_signing_key`), so a
//! signature Plinth makes is one the SDK accepts.

use super::*;

const KEY: &str = "signkey-prod-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const BODY: &[u8] =
    "{\"z\": 1.0, \"a\": [1e21, 0.1, 10000000000000000001], \"m\": \"café \\u2028\", \"b\": {\"y\": null, \"x\": true}}"
        .as_bytes();

fn key() -> SigningKey {
    SigningKey::parse(KEY).expect("ok")
}

#[test]
fn canonical_form_matches_the_sdks() {
    let got = canonical(BODY).expect("ok");
    assert_eq!(
        String::from_utf8(got).expect("ok"),
        "{\"a\":[1e+21,0.1,10000000000000000000],\"b\":{\"x\":true,\"y\":null},\"m\":\"café \u{2028}\",\"z\":1}"
    );
    assert!(canonical(b"").expect("ok").is_empty());
}

#[test]
fn request_signatures_match_the_sdks() {
    let k = key();
    assert_eq!(
        k.sign_request(BODY, 1_700_000_000).expect("ok"),
        "t=1700000000&s=ed52451d3808ac9449a1af5d245c2773a15d750a5d9f8aec22d321a422766a91"
    );
    assert_eq!(
        k.sign_request(b"{}", 1_700_000_000).expect("ok"),
        "t=1700000000&s=055adaac74c0377a7a689a954f6e765013e179b4a805060adcfc37c0001ccfaf"
    );
    assert_eq!(
        k.sign_request(b"", 1_700_000_000).expect("ok"),
        "t=1700000000&s=a5b3848cf54a129e782a682980081eaa0fea9734d52e1e52f1eca244b671e009"
    );
    // The same key without its prefix signs the same.
    let bare = SigningKey::parse(KEY.trim_start_matches("signkey-prod-")).expect("ok");
    assert_eq!(bare.sign_request(b"{}", 1).expect("ok"), k.sign_request(b"{}", 1).expect("ok"));
}

#[test]
fn a_body_that_is_not_json_cannot_be_signed() {
    let e = key().sign_request(b"{not json", 1).expect_err("an error");
    assert!(e.contains("not JSON"), "{e}");
}

#[test]
fn an_answer_signed_by_the_sdk_verifies() {
    let header = "t=1700000001&s=037e13919b3736323af65ef0dcfc23f0d95cdce1509e8ff7c3995b14dde74076";
    key().verify_answer(b"{\"ok\": 1}", Some(header)).expect("ok");
    // Order of the pairs does not matter.
    let swapped = "s=037e13919b3736323af65ef0dcfc23f0d95cdce1509e8ff7c3995b14dde74076&t=1700000001";
    key().verify_answer(b"{\"ok\": 1}", Some(swapped)).expect("ok");
}

#[test]
fn answers_unsigned_tampered_or_signed_with_another_key_are_refused() {
    let header = "t=1700000001&s=037e13919b3736323af65ef0dcfc23f0d95cdce1509e8ff7c3995b14dde74076";
    let k = key();
    assert!(k.verify_answer(b"{\"ok\": 1}", None).expect_err("an error").contains("not signed"));
    assert!(k.verify_answer(b"{\"ok\": 2}", Some(header)).expect_err("an error").contains("does not verify"));
    let later = header.replace("1700000001", "1700000002");
    assert!(k.verify_answer(b"{\"ok\": 1}", Some(&later)).expect_err("an error").contains("does not verify"));
    let other = SigningKey::parse(&"ab".repeat(32)).expect("ok");
    assert!(other.verify_answer(b"{\"ok\": 1}", Some(header)).expect_err("an error").contains("does not verify"));
    for bad in ["", "t=1", "s=00", "t=x&s=00", "t=1&s=zz"] {
        assert!(k.verify_answer(b"{}", Some(bad)).expect_err("an error").contains("malformed"), "{bad}");
    }
}

#[test]
fn the_bearer_token_is_the_sdks_hash_of_the_key() {
    let k = key();
    let hashed = "4884fdaafea47c29fea7159d0daddd9c085d6200e1359e85bb81736af6b7c837";
    assert_eq!(k.bearer(), format!("Bearer {hashed}"));
    assert!(k.bearer_matches(&format!("Bearer {hashed}")));
    assert!(k.bearer_matches(&format!("Bearer signkey-prod-{hashed}")));
    assert!(k.bearer_matches(&format!("Bearer {}", hashed.to_uppercase())));
}

#[test]
fn other_bearer_tokens_do_not_match() {
    let k = key();
    assert!(!k.bearer_matches(""));
    assert!(!k.bearer_matches("Basic 4884fdaafea47c29fea7159d0daddd9c085d6200e1359e85bb81736af6b7c837"));
    assert!(!k.bearer_matches("Bearer 4884fdaafea47c29fea7159d0daddd9c085d6200e1359e85bb81736af6b7c836"));
    assert!(!k.bearer_matches("Bearer 4884"));
    // The key itself is not its token.
    assert!(!k.bearer_matches(&format!("Bearer {KEY}")));
}

#[test]
fn keys_that_are_not_hex_or_too_short_are_refused_without_showing_them() {
    for bad in ["", "signkey-prod-", "signkey-prod-abc", "0123", &"zz".repeat(20), &"a".repeat(33)] {
        let e = SigningKey::parse(bad).expect_err("an error");
        assert!(e.contains("hex digits"), "{bad}: {e}");
        assert!(bad.len() < 8 || !e.contains(bad), "{e}");
    }
    assert_eq!(format!("{:?}", key()), "SigningKey(****)");
}

#[test]
fn a_prefix_is_only_signkey_then_an_env_name() {
    assert_eq!(strip_prefix("signkey-test-abcd"), "abcd");
    assert_eq!(strip_prefix("signkey-branch_1-abcd"), "abcd");
    assert_eq!(strip_prefix("signkey--abcd"), "signkey--abcd");
    assert_eq!(strip_prefix("signkey-a.b-abcd"), "signkey-a.b-abcd");
    assert_eq!(strip_prefix("abcd"), "abcd");
}
