//! The state of an optional dependency (the NATS bridge), as its owner last saw it; `/health`
//! reports it, and a failing one makes the component `degraded`, not unhealthy.

use std::sync::Mutex;

/// An optional dependency's last known state.
#[derive(Debug)]
pub struct DependencyHealth {
    name: &'static str,
    state: Mutex<Result<(), String>>,
}

impl DependencyHealth {
    /// A dependency called `name`, failing with "starting" until its owner says otherwise.
    #[must_use]
    pub fn new(name: &'static str) -> Self {
        Self { name, state: Mutex::new(Err("starting".into())) }
    }

    /// Its name, the key of its check in `/health`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// It works.
    pub fn ok(&self) {
        *self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Ok(());
    }

    /// It fails, and why.
    pub fn failing(&self, why: impl Into<String>) {
        *self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Err(why.into());
    }

    /// `Ok` when it works, else why not.
    ///
    /// # Errors
    /// Why it fails.
    pub fn state(&self) -> Result<(), String> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_failing_then_follows_its_owner() {
        let h = DependencyHealth::new("nats");
        assert_eq!(h.name(), "nats");
        assert_eq!(h.state(), Err("starting".into()));
        h.ok();
        assert_eq!(h.state(), Ok(()));
        h.failing("connection refused");
        assert_eq!(h.state(), Err("connection refused".into()));
    }
}
