//! Building `Auth` from the component file, route needs and query-string detection.

use super::*;
use crate::tests::fixtures;
use axum::http::Method;
use std::path::{Path, PathBuf};

const HEAD: &str = "component: {name: hello, version: '1'}\nfunctions:\n  - name: f\n    handler: {rust: noop}\n";
const KEY: &str = "0123456789abcdef-ops";
const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

fn build_in(dir: &Path, auth: &str, env: &[(&str, &str)]) -> Result<Option<Auth>, ConfigError> {
    let text = format!("{HEAD}auth:\n{auth}");
    let component = Component::parse(&text, "c.yaml", PathBuf::from("c.yaml"), dir.to_path_buf()).expect("valid file");
    Auth::from_component(&component, |name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_string()))
}

fn build(auth: &str, env: &[(&str, &str)]) -> Result<Option<Auth>, ConfigError> {
    build_in(&fixtures(), auth, env)
}

fn refused(auth: &str, env: &[(&str, &str)]) -> ConfigError {
    let e = build(auth, env).expect_err(auth);
    assert!(e.to_string().contains("PLINTH_001"), "{e}");
    e
}

#[test]
fn no_section_means_no_access_control() {
    let c = Component::parse(HEAD, "c.yaml", PathBuf::from("c.yaml"), PathBuf::from(".")).expect("valid");
    assert!(Auth::from_component(&c, |_| None).expect("no auth").is_none());
}

#[test]
fn keys_come_from_digests_env_and_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("secrets")).expect("mkdir");
    std::fs::write(dir.path().join("secrets/bot.key"), "  file-key-0123456789\n").expect("write");
    let auth = build_in(
        dir.path(),
        "  api_keys:\n    - {name: ci, sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae, scopes: [runs:write]}\n    - {name: ops, from_env: OPS_KEY, scopes: [admin]}\n    - {name: bot, from_file: secrets/bot.key, scopes: [runs:read]}\n",
        &[("OPS_KEY", KEY)],
    )
    .expect("resolves")
    .expect("configured");
    assert_eq!(auth.api_key_count(), 3);
    assert_eq!(auth.jwt_algorithm(), None);
    let named = |raw: &str| keys::find(&auth.keys, raw).map(|p| p.name);
    assert_eq!(named("foo").expect("digest of foo"), "ci");
    assert_eq!(named(KEY).expect("env key"), "ops");
    assert_eq!(named("file-key-0123456789").expect("file key, trimmed"), "bot");
    assert_eq!(named("nope").expect_err("unknown").reason, "unknown_key");
    let debug = format!("{auth:?}");
    assert!(debug.contains("ops") && !debug.contains(KEY), "{debug}");
}

#[test]
fn a_missing_variable_or_file_stops_start_up() {
    let e = refused("  api_keys: [{name: ops, from_env: OPS_KEY, scopes: [admin]}]\n", &[]);
    assert_eq!(e.field, "auth.api_keys[0].from_env");
    assert!(e.reason.contains("OPS_KEY") && e.reason.contains("not set"), "{e}");
    let e = refused("  api_keys: [{name: bot, from_file: missing.key, scopes: [admin]}]\n", &[]);
    assert_eq!(e.field, "auth.api_keys[0].from_file");
    assert!(e.reason.contains("missing.key"), "{e}");
    let e = refused("  jwt: {hs256_secret_file: nope.txt, issuer: i, audience: a}\n", &[]);
    assert_eq!(e.field, "auth.jwt.hs256_secret_file");
    let e = refused("  jwt: {hs256_secret_env: JWT_SECRET, issuer: i, audience: a}\n", &[]);
    assert_eq!(e.field, "auth.jwt.hs256_secret_env");
}

#[test]
fn weak_keys_and_secrets_are_refused_without_echoing_them() {
    let e = refused("  api_keys: [{name: ops, from_env: OPS_KEY, scopes: [admin]}]\n", &[("OPS_KEY", "hunter2")]);
    assert_eq!(e.field, "auth.api_keys[0].from_env");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = refused("  api_keys: [{name: ops, from_env: OPS_KEY, scopes: [admin]}]\n", &[("OPS_KEY", "has a space 0123456789")]);
    assert!(e.reason.contains("visible ASCII"), "{e}");
    let e = refused("  jwt: {hs256_secret_env: S, issuer: i, audience: a}\n", &[("S", "short-secret")]);
    assert_eq!(e.field, "auth.jwt.hs256_secret_env");
    assert!(e.reason.contains("32 bytes") && !e.reason.contains("short-secret"), "{e}");
}

#[test]
fn the_same_key_twice_is_refused() {
    let e = refused(
        "  api_keys:\n    - {name: a, from_env: K, scopes: [admin]}\n    - {name: b, from_env: L, scopes: [runs:read]}\n",
        &[("K", KEY), ("L", KEY)],
    );
    assert_eq!(e.field, "auth.api_keys[1]");
}

#[test]
fn rsa_public_keys_are_checked_at_start_up() {
    let ok = build("  jwt: {rs256_public_key_file: rsa_a_public.pem, issuer: i, audience: a}\n", &[])
        .expect("a 2048-bit public key")
        .expect("configured");
    assert_eq!(ok.jwt_algorithm(), Some("RS256"));
    let e = refused("  jwt: {rs256_public_key_file: rsa_a_private.pem, issuer: i, audience: a}\n", &[]);
    assert!(e.reason.contains("PUBLIC KEY"), "a private key is refused: {e}");
    let e = refused("  jwt: {rs256_public_key_file: rsa_1024_public.pem, issuer: i, audience: a}\n", &[]);
    assert!(e.reason.contains("2048"), "{e}");
    let e = refused("  jwt: {rs256_public_key_file: README.md, issuer: i, audience: a}\n", &[]);
    assert_eq!(e.field, "auth.jwt.rs256_public_key_file");
    let hs = build("  jwt: {hs256_secret_env: S, issuer: i, audience: a}\n", &[("S", SECRET)]).expect("ok").expect("some");
    assert_eq!(hs.jwt_algorithm(), Some("HS256"));
}

#[test]
fn routes_need_the_scope_of_what_they_do() {
    let auth = build("  api_keys: [{name: a, from_env: K, scopes: [admin]}]\n", &[("K", KEY)]).expect("ok").expect("some");
    assert_eq!(auth.need(&Method::POST, Some("/run"), "/run"), Need::Scope(Scope::RunsWrite));
    assert_eq!(auth.need(&Method::GET, Some("/runs/{id}/cancel"), "/runs/x/cancel"), Need::Scope(Scope::RunsWrite));
    for (t, p) in
        [("/runs", "/runs"), ("/runs/{id}", "/runs/x"), ("/runs/{id}/logs", "/runs/x/logs"), ("/functions", "/functions")]
    {
        assert_eq!(auth.need(&Method::GET, Some(t), p), Need::Scope(Scope::RunsRead), "{t}");
    }
    for (t, p) in [("/health", "/health"), ("/ready", "/ready"), ("/metrics", "/metrics"), ("/errors/{code}", "/errors/X")] {
        assert_eq!(auth.need(&Method::GET, Some(t), p), Need::Public, "{t}");
    }
    assert_eq!(auth.need(&Method::GET, None, "/nope"), Need::Authenticated, "unknown paths need a credential");
    assert_eq!(auth.need(&Method::POST, Some("/events"), "/events"), Need::Scope(Scope::EventsWrite), "sending events");
    assert_eq!(auth.need(&Method::GET, Some("/events"), "/events"), Need::Scope(Scope::RunsRead), "reading events");
    assert_eq!(auth.need(&Method::GET, Some("/events/{id}"), "/events/x"), Need::Scope(Scope::RunsRead));
    let closed =
        build("  api_keys: [{name: a, from_env: K, scopes: [admin]}]\n  public: ['/runs/{id}']\n", &[("K", KEY)]).expect("ok");
    let closed = closed.expect("some");
    assert_eq!(closed.need(&Method::GET, Some("/health"), "/health"), Need::Authenticated);
    assert_eq!(closed.need(&Method::GET, Some("/runs/{id}"), "/runs/x"), Need::Public, "a template may be listed");
    assert_eq!(closed.need(&Method::GET, Some("/errors"), "/errors"), Need::Public, "the catalog stays public");
}

#[test]
fn credentials_in_the_query_are_found_however_written() {
    assert_eq!(credential_in_query(Some("api_key=x")), Some("api_key"));
    assert_eq!(credential_in_query(Some("wait=1&ACCESS_TOKEN=x")), Some("access_token"));
    assert_eq!(credential_in_query(Some("api%5Fkey=x")), Some("api_key"));
    assert_eq!(credential_in_query(Some("token")), Some("token"));
    assert_eq!(credential_in_query(Some("key=&limit=2")), Some("key"));
    assert_eq!(credential_in_query(Some("wait=1&limit=2&idempotency_key=3")), None);
    assert_eq!(credential_in_query(Some("")), None);
    assert_eq!(credential_in_query(None), None);
}

#[test]
fn percent_decoding_keeps_what_it_cannot_decode() {
    assert_eq!(percent_decode("a%20b+c"), "a b c");
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%zz"), "%zz");
}
