//! `concurrency`: at most `limit` attempts at once across all nodes, per key when one is given.

use super::KeyExpr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `concurrency`: at most `limit` attempts of the function execute at once across all nodes,
/// per value of `key` when one is given. Written `concurrency: 4` or
/// `concurrency: {limit: 4, key: input.tenant}`.
#[derive(Clone, Debug, PartialEq, utoipa::ToSchema)]
pub struct Concurrency {
    /// The most attempts at once (per key). Kept as written so that validation can name a bad one.
    pub limit: i64,
    /// The key; none: one limit for the whole function.
    pub key: Option<KeyExpr>,
}

impl Concurrency {
    /// The limit, once validated.
    #[must_use]
    pub fn limit(&self) -> u32 {
        u32::try_from(self.limit.max(1)).unwrap_or(u32::MAX)
    }

    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=1_000_000).contains(&self.limit) {
            return Err(("concurrency.limit".into(), format!("must be between 1 and 1000000, got {}", self.limit)));
        }
        Ok(())
    }
}

impl Serialize for Concurrency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Keyed<'a> {
            limit: i64,
            key: &'a KeyExpr,
        }
        match &self.key {
            None => s.serialize_i64(self.limit),
            Some(key) => Keyed { limit: self.limit, key }.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Concurrency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Keyed {
            limit: i64,
            key: Option<KeyExpr>,
        }
        // Why: through an untagged enum, serde's error for a bad key would be "did not match any
        // variant"; deserializing the map on its own keeps CEL's message.
        let value = serde_json::Value::deserialize(d)?;
        if value.is_object() {
            let k = Keyed::deserialize(value).map_err(serde::de::Error::custom)?;
            return Ok(Self { limit: k.limit, key: k.key });
        }
        value
            .as_i64()
            .map(|limit| Self { limit, key: None })
            .ok_or_else(|| serde::de::Error::custom("write a whole number or {limit: N, key: EXPR}"))
    }
}
