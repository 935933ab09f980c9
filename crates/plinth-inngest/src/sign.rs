//! Request signing, as the SDK protocol describes it, when a signing key is set.
//!
//! - **Plinth → app** (the call of a function, the sync `PUT`): `X-Inngest-Signature:
//!   t=<unix seconds>&s=<hex HMAC-SHA256>`, the MAC keyed by the signing key without its
//!   `signkey-<env>-` prefix (the text's UTF-8 bytes) over the body in canonical JSON (RFC 8785)
//!   followed by `t`. The SDK parses the body and canonicalizes it again before it checks, so
//!   Plinth sends its usual bytes (big integers keep their digits) and signs their canonical form.
//! - **App → Plinth** (its answer to a call): the same header, the MAC over the raw answer body
//!   followed by `t`. With a key set, an answer without it, or with one that does not verify, is
//!   refused.
//! - **App → Plinth** (`POST /fn/register`): `Authorization: Bearer <hex SHA-256 of the key's
//!   bytes>` (the key's hex decoded), with or without the `signkey-<env>-` prefix.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// A signing key (`INNGEST_SIGNING_KEY`'s value), checked once.
#[derive(Clone)]
pub struct SigningKey {
    /// The key without its prefix: the MAC's key, as text.
    secret: String,
    /// The hex SHA-256 of the key's bytes: what an app sends as its Bearer token.
    hashed: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(****)")
    }
}

/// The `signkey-<env>-` prefix of a key or hashed key (`<env>` is letters, digits or `_`), if any.
fn strip_prefix(key: &str) -> &str {
    let Some(rest) = key.strip_prefix("signkey-") else { return key };
    match rest.find('-') {
        Some(end) if end > 0 && rest[..end].chars().all(|c| c.is_alphanumeric() || c == '_') => &rest[end + 1..],
        _ => key,
    }
}

impl SigningKey {
    /// Checks a key: an optional `signkey-<env>-` prefix, then hex digits (an even number of
    /// them, at least 32, i.e. 16 bytes), as Inngest's keys are.
    ///
    /// # Errors
    /// Why the key cannot be one (without the key itself).
    pub fn parse(key: &str) -> Result<Self, String> {
        let secret = strip_prefix(key.trim());
        if secret.len() < 32 || !secret.len().is_multiple_of(2) || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "a signing key is hex digits (an even number, at least 32), optionally after `signkey-<env>-`; this one \
                 has {} characters after its prefix{}",
                secret.len(),
                if secret.bytes().all(|b| b.is_ascii_hexdigit()) { "" } else { ", not all hex" }
            ));
        }
        let bytes = hex::decode(secret).map_err(|e| format!("the signing key is not hex: {e}"))?;
        Ok(Self { secret: secret.to_string(), hashed: hex::encode(Sha256::digest(&bytes)) })
    }

    fn mac(&self) -> HmacSha256 {
        // Why: HMAC takes a key of any length; new_from_slice cannot fail for it.
        HmacSha256::new_from_slice(self.secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    /// The `X-Inngest-Signature` value for a request `body` sent at `t` (unix seconds).
    ///
    /// # Errors
    /// The body is not JSON (and not empty), so it has no canonical form to sign.
    pub fn sign_request(&self, body: &[u8], t: i64) -> Result<String, String> {
        let canonical = canonical(body)?;
        let mut mac = self.mac();
        mac.update(&canonical);
        mac.update(t.to_string().as_bytes());
        Ok(format!("t={t}&s={}", hex::encode(mac.finalize().into_bytes())))
    }

    /// Checks an app's answer: its `X-Inngest-Signature` header (`None` when it sent none) over
    /// the raw `body`.
    ///
    /// # Errors
    /// Why the answer is not taken as the app's.
    pub fn verify_answer(&self, body: &[u8], header: Option<&str>) -> Result<(), String> {
        let header = header.ok_or("the answer is not signed (no X-Inngest-Signature), though a signing key is set")?;
        let (mut t, mut s) = (None, None);
        for pair in header.split('&') {
            match pair.split_once('=') {
                Some(("t", v)) => t = Some(v),
                Some(("s", v)) => s = Some(v),
                _ => {}
            }
        }
        let (Some(t), Some(s)) = (t.filter(|t| t.parse::<i64>().is_ok()), s) else {
            return Err("the answer's X-Inngest-Signature is malformed (wants t=<unix seconds>&s=<hex>)".into());
        };
        let sent = hex::decode(s).map_err(|_| "the answer's X-Inngest-Signature is malformed (s is not hex)".to_string())?;
        let mut mac = self.mac();
        mac.update(body);
        mac.update(t.as_bytes());
        mac.verify_slice(&sent).map_err(|_| {
            "the answer's signature does not verify with this signing key: is inngest.signing_key_env the app's \
             INNGEST_SIGNING_KEY?"
                .to_string()
        })
    }

    /// Whether an `Authorization` header value is this key's Bearer token.
    #[must_use]
    pub fn bearer_matches(&self, authorization: &str) -> bool {
        let Some(token) = authorization.strip_prefix("Bearer ").or_else(|| authorization.strip_prefix("bearer ")) else {
            return false;
        };
        let token = strip_prefix(token.trim()).to_ascii_lowercase();
        subtle::ConstantTimeEq::ct_eq(token.as_bytes(), self.hashed.as_bytes()).into()
    }

    /// The Bearer token an app holding this key sends (for tests and tools).
    #[must_use]
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.hashed)
    }
}

/// A JSON body in canonical form (RFC 8785): keys sorted, no spaces, numbers as ECMAScript
/// prints them. An empty body stays empty.
///
/// # Errors
/// The body is not JSON.
pub fn canonical(body: &[u8]) -> Result<Vec<u8>, String> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("the body to sign is not JSON: {e}"))?;
    serde_json_canonicalizer::to_vec(&value).map_err(|e| format!("the body to sign has no canonical form: {e}"))
}

#[cfg(test)]
mod tests;
