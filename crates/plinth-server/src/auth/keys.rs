//! API keys: read once at start-up, kept only as SHA-256 digests, compared in constant time.

use super::{CredentialKind, Principal, Refusal};
use plinth_core::ConfigError;
use plinth_core::component::auth::{ApiKeySpec, KeySource, Scope};
use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::ConstantTimeEq;

/// The shortest raw key accepted from the environment or a file.
pub(super) const MIN_KEY_LEN: usize = 16;
/// The longest credential looked at.
pub(super) const MAX_KEY_LEN: usize = 4096;

/// One configured key: its holder, its digest and its scopes.
pub(super) struct ApiKey {
    pub(super) name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

fn digest(raw: &str) -> [u8; 32] {
    Sha256::digest(raw.as_bytes()).into()
}

fn from_hex(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// A raw key as read: trimmed, visible ASCII, long enough to resist guessing.
fn check_raw(raw: &str) -> Result<&str, String> {
    let key = raw.trim();
    if key.len() < MIN_KEY_LEN || key.len() > MAX_KEY_LEN {
        return Err(format!("the key must be {MIN_KEY_LEN} to {MAX_KEY_LEN} characters long (it is {})", key.len()));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the key must be visible ASCII characters without spaces".into());
    }
    Ok(key)
}

/// Resolves every key of the section, reading environment variables and files.
pub(super) fn resolve(
    specs: &[ApiKeySpec],
    base_dir: &Path,
    src: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<ApiKey>, ConfigError> {
    let mut keys: Vec<ApiKey> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let at = |field: &str| format!("auth.api_keys[{i}].{field}");
        let digest = match spec.source() {
            Some(KeySource::Sha256(hex)) => {
                from_hex(hex).ok_or_else(|| ConfigError::new(src, at("sha256"), "must be 64 hex characters"))?
            }
            Some(KeySource::Env(name)) => {
                let raw = env(name).ok_or_else(|| {
                    ConfigError::new(src, at("from_env"), format!("the environment variable `{name}` is not set"))
                })?;
                digest(check_raw(&raw).map_err(|r| ConfigError::new(src, at("from_env"), format!("`{name}`: {r}")))?)
            }
            Some(KeySource::File(file)) => {
                let path = base_dir.join(file);
                let raw = std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError::new(src, at("from_file"), format!("cannot read `{}`: {e}", path.display())))?;
                digest(check_raw(&raw).map_err(|r| ConfigError::new(src, at("from_file"), format!("`{}`: {r}", path.display())))?)
            }
            None => return Err(ConfigError::new(src, format!("auth.api_keys[{i}]"), "give exactly one key source")),
        };
        if let Some(other) = keys.iter().find(|k| bool::from(k.digest.ct_eq(&digest))) {
            return Err(ConfigError::new(src, format!("auth.api_keys[{i}]"), format!("is the same key as `{}`", other.name)));
        }
        keys.push(ApiKey { name: spec.name.clone(), digest, scopes: spec.scopes.clone() });
    }
    Ok(keys)
}

/// The holder of `raw`, comparing its digest with every configured one in constant time.
pub(super) fn find(keys: &[ApiKey], raw: &str) -> Result<Principal, Refusal> {
    if raw.is_empty() || raw.len() > MAX_KEY_LEN {
        return Err(Refusal::invalid("malformed", "the API key is empty or too long"));
    }
    let presented = digest(raw);
    let mut found = None;
    // Why: every key is compared, whatever matched, so timing does not tell how many bytes did.
    for key in keys {
        let equal = bool::from(key.digest.ct_eq(&presented));
        if equal && found.is_none() {
            found = Some(key);
        }
    }
    let key = found.ok_or_else(|| Refusal::invalid("unknown_key", "the API key is not known"))?;
    Ok(Principal { name: key.name.clone(), scopes: key.scopes.clone(), kind: CredentialKind::ApiKey })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digests_parse_in_either_case() {
        let lower = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
        assert_eq!(from_hex(lower), Some(digest("foo")));
        assert_eq!(from_hex(&lower.to_ascii_uppercase()), Some(digest("foo")));
        assert_eq!(from_hex("2c26"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn raw_keys_are_trimmed_and_checked() {
        assert_eq!(check_raw("  0123456789abcdef\n"), Ok("0123456789abcdef"));
        assert!(check_raw("short").is_err());
        assert!(check_raw("0123456789 abcdef").is_err());
        assert!(check_raw(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
    }
}
