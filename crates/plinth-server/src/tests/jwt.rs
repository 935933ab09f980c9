//! Access control with JWT bearer tokens: HS256 and RS256, expiry, issuer, audience, signature,
//! algorithm, and scopes from `scope` or `scp`.

use super::auth::{WRITER, bearer, send_as, whoami};
use super::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";
const ISS: &str = "https://issuer.example";
const AUD: &str = "plinth-hello";
const ECHO: &str = r#"{"function":"echo"}"#;
/// `{"alg":"none","typ":"JWT"}`, base64url.
const NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

fn hs256() -> Harness {
    let auth = format!(
        "  jwt: {{hs256_secret_env: JWT_SECRET, issuer: '{ISS}', audience: {AUD}}}\n  api_keys: [{{name: writer, from_env: W, scopes: [runs:write]}}]\n"
    );
    harness_with_auth(&auth, &[("JWT_SECRET", SECRET), ("W", WRITER)])
}

fn rs256() -> Harness {
    harness_with_auth(&format!("  jwt: {{rs256_public_key_file: rsa_a_public.pem, issuer: '{ISS}', audience: {AUD}}}\n"), &[])
}

fn now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs())
        .expect("fits")
}

/// Claims valid for ten minutes, with `extra` merged in (a `null` removes a claim).
fn claims(extra: Value) -> Value {
    let mut c =
        json!({"sub": "svc-a", "iss": ISS, "aud": AUD, "exp": now() + 600, "iat": now(), "scope": "runs:write runs:read"});
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() {
            c.as_object_mut().expect("object").remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn signed(claims: &Value, alg: Algorithm, key: &EncodingKey) -> String {
    encode(&Header::new(alg), claims, key).expect("encode")
}

fn hs(claims: &Value) -> String {
    signed(claims, Algorithm::HS256, &EncodingKey::from_secret(SECRET.as_bytes()))
}

fn rsa_key(file: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(fixtures().join(file)).expect("fixture")).expect("an RSA private key")
}

async fn post_run(h: &Harness, token: &str) -> Reply {
    send_as(h, "POST", "/run", bearer(token), Some(ECHO)).await
}

async fn assert_refused(h: &Harness, token: &str, detail: &str) {
    let r = post_run(h, token).await;
    assert_problem(&r, 401, "PLINTH_030");
    assert_eq!(r.headers["www-authenticate"], r#"Bearer realm="plinth", error="invalid_token""#);
    let said = r.json["detail"].as_str().expect("detail");
    assert!(said.contains(detail), "expected `{detail}` in `{said}`");
}

#[tokio::test]
async fn hs256_tokens_with_the_scope_are_let_through() {
    let h = hs256();
    let token = hs(&claims(json!({})));
    let r = post_run(&h, &token).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let r = send_as(&h, "GET", "/runs", bearer(&token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let who = whoami(&h, bearer(&token)).await;
    assert_eq!(who.json, json!({"name": "svc-a", "scopes": ["runs:write", "runs:read"], "kind": "Jwt"}), "sub names the caller");
    assert_eq!(post_run(&h, WRITER).await.status, StatusCode::ACCEPTED, "API keys still work beside JWTs");
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_401() {
    let h = hs256();
    assert_refused(&h, &hs(&claims(json!({"exp": now() - 3600}))), "expired").await;
    assert_refused(&h, &hs(&claims(json!({"exp": null}))), "valid `exp`").await;
    assert_refused(&h, &hs(&claims(json!({"exp": "tomorrow"}))), "valid `exp`").await;
    assert_refused(&h, &hs(&claims(json!({"nbf": now() + 3600}))), "not valid yet").await;
    let r = post_run(&h, &hs(&claims(json!({"exp": now() - 5, "nbf": now() + 5})))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "within the 30s leeway: {}", r.json);
}

#[tokio::test]
async fn wrong_audience_or_issuer_is_401() {
    let h = hs256();
    assert_refused(&h, &hs(&claims(json!({"aud": "another-service"}))), "audience").await;
    assert_refused(&h, &hs(&claims(json!({"aud": null}))), "valid `aud`").await;
    assert_refused(&h, &hs(&claims(json!({"iss": "https://evil.example"}))), "issuer").await;
    assert_refused(&h, &hs(&claims(json!({"iss": null}))), "valid `iss`").await;
    assert_refused(&h, &hs(&claims(json!({"sub": null}))), "valid `sub`").await;
    let r = post_run(&h, &hs(&claims(json!({"aud": ["other", AUD]})))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "an audience list holding ours: {}", r.json);
}

#[tokio::test]
async fn wrong_signatures_are_401() {
    let h = hs256();
    let other = EncodingKey::from_secret(b"another-secret-that-is-32-bytes-long!!");
    assert_refused(&h, &signed(&claims(json!({})), Algorithm::HS256, &other), "signature").await;
    let good = hs(&claims(json!({"scope": "runs:read"})));
    let forged = hs(&claims(json!({"scope": "admin"})));
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = forged.split('.').nth(1).expect("payload");
    assert_refused(&h, &format!("{}.{forged_payload}.{}", parts[0], parts[2]), "signature").await;
}

#[tokio::test]
async fn malformed_tokens_and_other_algorithms_are_401() {
    let h = hs256();
    assert_refused(&h, "a.b.c", "well-formed").await;
    assert_refused(&h, "eyJhbGciOiJIUzI1NiJ9.%%%.sig", "signature").await;
    assert_refused(&h, "%%%.e30.sig", "well-formed").await;
    let payload = hs(&claims(json!({}))).split('.').nth(1).expect("payload").to_string();
    assert_refused(&h, &format!("{NONE_HEADER}.{payload}."), "well-formed").await;
    let hs512 = signed(&claims(json!({})), Algorithm::HS512, &EncodingKey::from_secret(SECRET.as_bytes()));
    assert_refused(&h, &hs512, "HS256").await;
    let r = post_run(&h, "x.y").await;
    assert_problem(&r, 401, "PLINTH_030");
    assert!(r.json["detail"].as_str().expect("detail").contains("API key"), "one dot is not a JWT: {}", r.json);
}

#[tokio::test]
async fn tokens_without_the_scope_are_403() {
    let h = hs256();
    let reader = hs(&claims(json!({"scope": "openid runs:read"})));
    let r = post_run(&h, &reader).await;
    assert_problem(&r, 403, "PLINTH_031");
    assert!(r.json["detail"].as_str().expect("detail").contains("runs:write"), "{}", r.json);
    assert_eq!(send_as(&h, "GET", "/runs", bearer(&reader), None).await.status, StatusCode::OK);
    let none = hs(&claims(json!({"scope": null})));
    assert_problem(&post_run(&h, &none).await, 403, "PLINTH_031");
    assert_problem(&send_as(&h, "GET", "/runs", bearer(&none), None).await, 403, "PLINTH_031");
    let unknown = hs(&claims(json!({"scope": "runs:writer RUNS:WRITE"})));
    assert_problem(&post_run(&h, &unknown).await, 403, "PLINTH_031");
}

#[tokio::test]
async fn scopes_come_from_scope_or_scp() {
    let h = hs256();
    let scp_list = hs(&claims(json!({"scope": null, "scp": ["runs:write"]})));
    assert_eq!(post_run(&h, &scp_list).await.status, StatusCode::ACCEPTED);
    let scp_text = hs(&claims(json!({"scope": null, "scp": "profile admin"})));
    assert_eq!(post_run(&h, &scp_text).await.status, StatusCode::ACCEPTED);
    assert_eq!(send_as(&h, "GET", "/functions", bearer(&scp_text), None).await.status, StatusCode::OK, "admin reads too");
    let bad_type = hs(&claims(json!({"scope": 7})));
    assert_refused(&h, &bad_type, "well-formed").await;
}

#[tokio::test]
async fn rs256_tokens_verify_against_the_configured_public_key() {
    let h = rs256();
    let good = signed(&claims(json!({})), Algorithm::RS256, &rsa_key("rsa_a_private.pem"));
    assert_eq!(post_run(&h, &good).await.status, StatusCode::ACCEPTED);
    assert_eq!(whoami(&h, bearer(&good)).await.json["name"], "svc-a");
    let other_key = signed(&claims(json!({})), Algorithm::RS256, &rsa_key("rsa_b_private.pem"));
    assert_refused(&h, &other_key, "signature").await;
    assert_refused(
        &h,
        &signed(&claims(json!({"exp": now() - 3600})), Algorithm::RS256, &rsa_key("rsa_a_private.pem")),
        "expired",
    )
    .await;
    assert_refused(&h, &hs(&claims(json!({}))), "RS256").await;
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    let h = rs256();
    // Why: the classic confusion attack signs HS256 with the RSA public key as the secret.
    let public = std::fs::read(fixtures().join("rsa_a_public.pem")).expect("fixture");
    let forged = signed(&claims(json!({"scope": "admin"})), Algorithm::HS256, &EncodingKey::from_secret(&public));
    assert_refused(&h, &forged, "RS256").await;
    assert_problem(&post_run(&h, WRITER).await, 401, "PLINTH_030");
}
