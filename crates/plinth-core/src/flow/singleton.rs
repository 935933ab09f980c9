//! `singleton`: at most one unfinished run per key. `skip` refuses a new run while the key has
//! one; `cancel` cancels the old one and stores the new one.

use super::KeyExpr;
use serde::{Deserialize, Serialize};

/// What a second run of a key does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SingletonMode {
    /// The new run is refused (`POST /run` 409; an event starts no run and says why).
    #[default]
    Skip,
    /// The old run is cancelled and the new one stored.
    Cancel,
}

/// `singleton: {key, mode}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Singleton {
    /// The key; none: one unfinished run for the whole function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyExpr>,
    /// `skip` (the default) or `cancel`.
    #[serde(default)]
    pub mode: SingletonMode,
}

/// What a new run of a singleton function carries to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingletonCheck {
    /// The key's value (`""`: the function's one run).
    pub key: String,
    /// The mode.
    pub mode: SingletonMode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_singleton_parses_with_skip_by_default() {
        let s: Singleton = serde_yaml_ng::from_str("{key: input.order}").expect("parses");
        assert_eq!(s.mode, SingletonMode::Skip);
        let s: Singleton = serde_yaml_ng::from_str("{mode: cancel}").expect("no key: one for the function");
        assert_eq!((s.mode, s.key.is_none()), (SingletonMode::Cancel, true));
        let bad = serde_yaml_ng::from_str::<Singleton>("{mode: replace}").expect_err("unknown mode");
        assert!(bad.to_string().contains("unknown variant"), "{bad}");
        assert!(serde_yaml_ng::from_str::<Singleton>("{key: 'input.'}").is_err());
        assert!(serde_yaml_ng::from_str::<Singleton>("{keys: input.a}").is_err());
    }
}
