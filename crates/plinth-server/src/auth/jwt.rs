//! JWT bearer tokens: HS256 or RS256 (only the configured one), with `exp`, `nbf`, `iss`, `aud`
//! and `sub` checked, and scopes from `scope` (space-separated) or `scp` (a list or a string).

use super::{CredentialKind, Principal, Refusal};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use plinth_core::ConfigError;
use plinth_core::component::auth::{JwtKeySource, JwtSpec, Scope};
use serde::Deserialize;
use std::path::Path;

/// The shortest HS256 secret accepted: as long as the hash (RFC 7518 §3.2).
pub(super) const MIN_SECRET_LEN: usize = 32;
/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// The longest `sub` accepted as a principal name.
const MAX_SUB_LEN: usize = 256;

/// Verifies tokens against one key and one algorithm.
pub(super) struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    algorithm: Algorithm,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    Text(String),
    List(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    // Why: a missing `sub` is reported as a missing claim by the validation, not as a parse error.
    #[serde(default)]
    sub: String,
    #[serde(default)]
    scope: Option<ScopeClaim>,
    #[serde(default)]
    scp: Option<ScopeClaim>,
}

fn read_file(path: &Path, field: &str, src: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::new(src, field, format!("cannot read `{}`: {e}", path.display())))
}

fn hs256_secret(secret: &str, field: &str, src: &str, what: &str) -> Result<DecodingKey, ConfigError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(ConfigError::new(
            src,
            field,
            format!("{what}: an HS256 secret must be at least {MIN_SECRET_LEN} bytes (it is {})", secret.len()),
        ));
    }
    Ok(DecodingKey::from_secret(secret.as_bytes()))
}

fn rs256_key(pem: &str, field: &str, path: &Path, src: &str) -> Result<DecodingKey, ConfigError> {
    let bad = |reason: String| ConfigError::new(src, field, format!("`{}`: {reason}", path.display()));
    if !pem.contains("-----BEGIN PUBLIC KEY-----") && !pem.contains("-----BEGIN RSA PUBLIC KEY-----") {
        return Err(bad("must hold a PEM `PUBLIC KEY` (an RSA public key, never the private key)".into()));
    }
    let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| bad(format!("not an RSA public key: {e}")))?;
    let der = key.try_get_as_bytes().map_err(|e| bad(format!("not an RSA public key: {e}")))?;
    let components = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.key_utils.rsa_pub_components_from_public_key;
    let (modulus, _) = components(der).map_err(|e| bad(format!("not an RSA public key: {e}")))?;
    let first = modulus.iter().position(|b| *b != 0).unwrap_or(modulus.len());
    let bits = (modulus.len() - first) * 8;
    if bits < MIN_RSA_BITS {
        return Err(bad(format!("the RSA key has about {bits} bits; {MIN_RSA_BITS} at least are required")));
    }
    Ok(key)
}

impl JwtVerifier {
    /// Reads the key the spec names and prepares the checks.
    pub(super) fn new(
        spec: &JwtSpec,
        base_dir: &Path,
        src: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let (key, algorithm) = match spec.key_source() {
            Some(JwtKeySource::Hs256Env(name)) => {
                let field = "auth.jwt.hs256_secret_env";
                let secret = env(name)
                    .ok_or_else(|| ConfigError::new(src, field, format!("the environment variable `{name}` is not set")))?;
                (hs256_secret(&secret, field, src, &format!("`{name}`"))?, Algorithm::HS256)
            }
            Some(JwtKeySource::Hs256File(file)) => {
                let field = "auth.jwt.hs256_secret_file";
                let path = base_dir.join(file);
                let secret = read_file(&path, field, src)?;
                (hs256_secret(secret.trim(), field, src, &format!("`{}`", path.display()))?, Algorithm::HS256)
            }
            Some(JwtKeySource::Rs256File(file)) => {
                let field = "auth.jwt.rs256_public_key_file";
                let path = base_dir.join(file);
                (rs256_key(&read_file(&path, field, src)?, field, &path, src)?, Algorithm::RS256)
            }
            None => return Err(ConfigError::new(src, "auth.jwt", "give exactly one key source")),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = spec.leeway.get().as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[spec.issuer.as_str()]);
        validation.set_audience(&[spec.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self { key, validation, algorithm })
    }

    /// `HS256` or `RS256`.
    pub(super) fn algorithm(&self) -> &'static str {
        match self.algorithm {
            Algorithm::RS256 => "RS256",
            _ => "HS256",
        }
    }

    /// The principal a valid token names, or why it is refused.
    pub(super) fn verify(&self, token: &str) -> Result<Principal, Refusal> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| self.refusal(e.kind()))?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.sub.len() > MAX_SUB_LEN || claims.sub.chars().any(char::is_control) {
            return Err(Refusal::invalid("malformed", "the token's `sub` claim must be 1 to 256 printable characters"));
        }
        let mut scopes: Vec<Scope> = Vec::new();
        for claim in [claims.scope, claims.scp].into_iter().flatten() {
            let names: Vec<String> = match claim {
                ScopeClaim::Text(text) => text.split_whitespace().map(str::to_string).collect(),
                ScopeClaim::List(list) => list,
            };
            // Why: issuers grant scopes of other services too; only Plinth's own count here.
            for scope in names.iter().filter_map(|n| Scope::parse(n)) {
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
        }
        Ok(Principal { name: claims.sub, scopes, kind: CredentialKind::Jwt })
    }

    fn refusal(&self, kind: &ErrorKind) -> Refusal {
        match kind {
            ErrorKind::ExpiredSignature => Refusal::invalid("expired", "the token has expired"),
            ErrorKind::ImmatureSignature => Refusal::invalid("not_yet_valid", "the token is not valid yet (`nbf`)"),
            ErrorKind::InvalidIssuer => Refusal::invalid("wrong_issuer", "the token was issued by another issuer"),
            ErrorKind::InvalidAudience => Refusal::invalid("wrong_audience", "the token is meant for another audience"),
            ErrorKind::InvalidSignature => Refusal::invalid("bad_signature", "the token's signature does not verify"),
            ErrorKind::InvalidAlgorithm => Refusal::invalid(
                "wrong_algorithm",
                if self.algorithm == Algorithm::RS256 {
                    "the token must be signed with RS256"
                } else {
                    "the token must be signed with HS256"
                },
            ),
            ErrorKind::MissingRequiredClaim(claim) => Refusal::invalid(
                "missing_claim",
                match claim.as_str() {
                    "exp" => "the token lacks a valid `exp` claim",
                    "iss" => "the token lacks a valid `iss` claim",
                    "aud" => "the token lacks a valid `aud` claim",
                    "sub" => "the token lacks a valid `sub` claim",
                    _ => "the token lacks a required claim",
                },
            ),
            ErrorKind::InvalidClaimFormat(_) => Refusal::invalid("malformed", "a claim of the token has the wrong type"),
            _ => Refusal::invalid("malformed", "the bearer token is not a well-formed JWT"),
        }
    }
}
