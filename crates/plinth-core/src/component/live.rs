//! The component a node serves, which may change while it runs: an app built with an Inngest
//! SDK registers its functions after start-up, and again whenever it is deployed. Readers take
//! the current version (an `Arc`, cheap to clone) and keep it for one request or one loop turn.

use super::Component;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// The component now, and how many times it changed.
#[derive(Debug)]
pub struct Live {
    current: RwLock<Arc<Component>>,
    version: AtomicU64,
}

impl Live {
    /// Serves `component`, version 0.
    #[must_use]
    pub fn new(component: Component) -> Self {
        Self { current: RwLock::new(Arc::new(component)), version: AtomicU64::new(0) }
    }

    /// The component now.
    #[must_use]
    pub fn get(&self) -> Arc<Component> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many times it changed: a loop that derives state from the component compares it.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Serves `component` from now on.
    pub fn set(&self, component: Component) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(component);
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(name: &str) -> Component {
        let yaml = format!("component: {{name: {name}, version: '1'}}\nfunctions:\n  - name: f\n    handler: {{rust: f}}\n");
        Component::parse(&yaml, "test", "c.yaml".into(), ".".into()).expect("valid")
    }

    #[test]
    fn readers_keep_their_version_and_see_the_next() {
        let live = Live::new(component("a"));
        let before = live.get();
        assert_eq!(live.version(), 0);
        live.set(component("b"));
        assert_eq!((before.file.component.name.as_str(), live.get().file.component.name.as_str()), ("a", "b"));
        assert_eq!(live.version(), 1);
    }
}
