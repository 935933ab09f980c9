use super::*;
use crate::component::Component;
use crate::error::ConfigError;

const HEAD: &str = "component: {name: hello, version: '1'}\nfunctions:\n  - name: f\n    handler: {rust: noop}\n";
const DIGEST: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

fn parse(auth: &str) -> Result<Component, ConfigError> {
    Component::parse(&format!("{HEAD}auth:\n{auth}"), "c.yaml", PathBuf::from("c.yaml"), PathBuf::from("."))
}

fn field_of(auth: &str) -> String {
    let e = parse(auth).expect_err(auth);
    assert!(e.to_string().contains("PLINTH_001"), "{e}");
    e.field
}

const FULL: &str = r"
  api_keys:
    - {name: ci, sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae, scopes: [runs:write, runs:read]}
    - {name: ops, from_env: OPS_KEY, scopes: [admin]}
    - {name: bot, from_file: secrets/bot.key, scopes: [runs:read]}
  jwt:
    hs256_secret_env: JWT_SECRET
    issuer: https://issuer.example
    audience: plinth-hello
";

#[test]
fn parses_a_full_auth_section_with_defaults() {
    let c = parse(FULL).expect("valid");
    let a = c.file.auth.expect("auth");
    assert_eq!(a.api_keys.len(), 3);
    assert_eq!(a.api_keys[0].source(), Some(KeySource::Sha256(DIGEST)));
    assert_eq!(a.api_keys[0].scopes, vec![Scope::RunsWrite, Scope::RunsRead]);
    assert_eq!(a.api_keys[1].source(), Some(KeySource::Env("OPS_KEY")));
    assert_eq!(a.api_keys[2].source(), Some(KeySource::File(Path::new("secrets/bot.key"))));
    let jwt = a.jwt.expect("jwt");
    assert_eq!(jwt.key_source(), Some(JwtKeySource::Hs256Env("JWT_SECRET")));
    assert_eq!(jwt.leeway.get(), DEFAULT_LEEWAY);
    assert_eq!(a.public, DEFAULT_PUBLIC.to_vec());
}

#[test]
fn public_can_be_emptied_and_jwt_alone_is_enough() {
    let c = parse("  public: []\n  jwt: {rs256_public_key_file: k.pem, issuer: i, audience: a, leeway: 5s}\n").expect("valid");
    let a = c.file.auth.expect("auth");
    assert!(a.public.is_empty() && a.api_keys.is_empty());
    let jwt = a.jwt.expect("jwt");
    assert_eq!(jwt.key_source(), Some(JwtKeySource::Rs256File(Path::new("k.pem"))));
    assert_eq!(jwt.leeway.get(), Duration::from_secs(5));
    let none = Component::parse(HEAD, "c.yaml", PathBuf::from("c.yaml"), PathBuf::from(".")).expect("valid");
    assert!(none.file.auth.is_none(), "no section, no access control");
}

#[test]
fn unknown_keys_name_the_field() {
    assert_eq!(field_of("  api_keys: [{name: a, from_env: K, scopes: [admin]}]\n  realm: x\n"), "auth.realm");
    assert_eq!(field_of("  api_keys: [{name: a, from_env: K, scopes: [admin], salt: x}]\n"), "auth.api_keys[0].salt");
    assert_eq!(field_of("  jwt: {hs256_secret_env: S, issuer: i, audience: a, algorithm: HS512}\n"), "auth.jwt.algorithm");
}

#[test]
fn refuses_unknown_scopes() {
    let e = parse("  api_keys: [{name: a, from_env: K, scopes: [runs:read, runs:exec]}]\n").expect_err("bad scope");
    assert_eq!(e.field, "auth.api_keys[0].scopes[1]", "{e}");
    assert!(e.reason.contains("runs:exec") && e.reason.contains("runs:write"), "{e}");
    assert_eq!(field_of("  api_keys: [{name: a, from_env: K, scopes: []}]\n"), "auth.api_keys[0].scopes");
    assert_eq!(field_of("  api_keys: [{name: a, from_env: K, scopes: [Admin]}]\n"), "auth.api_keys[0].scopes[0]");
}

#[test]
fn refuses_bad_digests_and_sources() {
    let short = "  api_keys: [{name: a, sha256: abc123, scopes: [admin]}]\n";
    assert_eq!(field_of(short), "auth.api_keys[0].sha256");
    let not_hex = format!("  api_keys: [{{name: a, sha256: {}, scopes: [admin]}}]\n", "z".repeat(64));
    assert_eq!(field_of(&not_hex), "auth.api_keys[0].sha256");
    let two = format!("  api_keys: [{{name: a, sha256: {DIGEST}, from_env: K, scopes: [admin]}}]\n");
    assert_eq!(field_of(&two), "auth.api_keys[0]");
    assert_eq!(field_of("  api_keys: [{name: a, scopes: [admin]}]\n"), "auth.api_keys[0]");
    assert_eq!(field_of("  api_keys: [{name: a, from_env: 'BAD NAME', scopes: [admin]}]\n"), "auth.api_keys[0].from_env");
    assert_eq!(field_of("  api_keys: [{name: a, from_file: '', scopes: [admin]}]\n"), "auth.api_keys[0].from_file");
}

#[test]
fn refuses_bad_and_duplicate_names() {
    let dup = "  api_keys:\n    - {name: a, from_env: K, scopes: [admin]}\n    - {name: a, from_env: L, scopes: [admin]}\n";
    assert_eq!(field_of(dup), "auth.api_keys[1].name");
    assert_eq!(field_of("  api_keys: [{name: 'has space', from_env: K, scopes: [admin]}]\n"), "auth.api_keys[0].name");
    assert_eq!(field_of("  api_keys: [{name: '', from_env: K, scopes: [admin]}]\n"), "auth.api_keys[0].name");
}

#[test]
fn refuses_two_or_no_jwt_secrets() {
    let two = "  jwt: {hs256_secret_env: S, rs256_public_key_file: k.pem, issuer: i, audience: a}\n";
    let e = parse(two).expect_err("two secrets");
    assert_eq!(e.field, "auth.jwt");
    assert!(e.reason.contains("exactly one"), "{e}");
    assert_eq!(field_of("  jwt: {issuer: i, audience: a}\n"), "auth.jwt");
    assert_eq!(field_of("  jwt: {hs256_secret_env: S, hs256_secret_file: s, issuer: i, audience: a}\n"), "auth.jwt");
}

#[test]
fn refuses_incomplete_jwt_settings() {
    let e = parse("  jwt: {hs256_secret_env: S, audience: a}\n").expect_err("no issuer");
    assert!(e.reason.contains("issuer"), "{e}");
    assert_eq!(field_of("  jwt: {hs256_secret_env: S, issuer: '  ', audience: a}\n"), "auth.jwt.issuer");
    assert_eq!(field_of("  jwt: {hs256_secret_env: S, issuer: i, audience: ''}\n"), "auth.jwt.audience");
    assert_eq!(field_of("  jwt: {hs256_secret_env: S, issuer: i, audience: a, leeway: 1h}\n"), "auth.jwt.leeway");
    assert_eq!(field_of("  jwt: {hs256_secret_env: '1X', issuer: i, audience: a}\n"), "auth.jwt.hs256_secret_env");
}

#[test]
fn refuses_an_empty_section_and_bad_public_paths() {
    assert_eq!(field_of("  public: [/health]\n"), "auth");
    let key = "  api_keys: [{name: a, from_env: K, scopes: [admin]}]\n";
    assert_eq!(field_of(&format!("{key}  public: [health]\n")), "auth.public[0]");
    assert_eq!(field_of(&format!("{key}  public: [/health, '/runs?x=1']\n")), "auth.public[1]");
}

#[test]
fn scopes_round_trip_their_names() {
    for s in Scope::ALL {
        assert_eq!(Scope::parse(s.as_str()), Some(s));
    }
    assert_eq!(Scope::parse("root"), None);
}
