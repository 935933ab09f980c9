//! Per-run tokens: the credential a command handler gets (`PLINTH_RUN_TOKEN`, also as
//! `PLINTH_API_KEY` for the CLI) to send events back to its own node while its attempt runs.
//! A token grants `events:write` only, lives in this process's memory alone (never stored,
//! never logged), and is revoked when the attempt ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The prefix every run token starts with, so it is told from an API key at a glance.
pub const PREFIX: &str = "plinth-run-";

/// The tokens of the attempts running on this node.
#[derive(Debug, Default)]
pub struct RunTokens {
    live: Mutex<HashMap<String, String>>,
}

/// A live token; revoked when dropped.
#[derive(Debug)]
pub struct RunToken {
    tokens: Arc<RunTokens>,
    token: String,
}

impl RunToken {
    /// The secret, for the handler's environment.
    #[must_use]
    pub fn secret(&self) -> &str {
        &self.token
    }
}

impl Drop for RunToken {
    fn drop(&mut self) {
        self.tokens.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.token);
    }
}

impl RunTokens {
    /// A new token for `run_id`, valid until the returned guard is dropped. 160 random bits
    /// (two ULIDs' random parts, from the operating system's seeded generator).
    #[must_use]
    pub fn issue(self: &Arc<Self>, run_id: &str) -> RunToken {
        let random = |u: ulid::Ulid| format!("{:020x}", u.random());
        let token = format!("{PREFIX}{}{}", random(ulid::Ulid::generate()), random(ulid::Ulid::generate()));
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(token.clone(), run_id.to_string());
        RunToken { tokens: self.clone(), token }
    }

    /// The run a live token belongs to.
    #[must_use]
    pub fn run_of(&self, token: &str) -> Option<String> {
        if !token.starts_with(PREFIX) {
            return None;
        }
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(token).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_valid_until_its_guard_drops() {
        let tokens = Arc::new(RunTokens::default());
        let guard = tokens.issue("run-1");
        let secret = guard.secret().to_string();
        assert!(secret.starts_with(PREFIX) && secret.len() == PREFIX.len() + 40, "{secret}");
        assert_eq!(tokens.run_of(&secret).as_deref(), Some("run-1"));
        drop(guard);
        assert_eq!(tokens.run_of(&secret), None, "revoked when the attempt ends");
    }

    #[test]
    fn unknown_and_foreign_tokens_name_no_run() {
        let tokens = Arc::new(RunTokens::default());
        let a = tokens.issue("a");
        let b = tokens.issue("a");
        assert_ne!(a.secret(), b.secret(), "each attempt its own token");
        assert_eq!(tokens.run_of("plinth-run-0000"), None);
        assert_eq!(tokens.run_of("an-api-key"), None);
        assert_eq!(tokens.run_of(""), None);
    }
}
