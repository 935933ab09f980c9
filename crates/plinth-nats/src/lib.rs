//! The NATS JetStream bridge: a durable pull consumer turns messages into events (fanned out
//! to runs like `POST /events`, acknowledged only once committed), and each run's end is
//! published to `<prefix>.<component>.run.<status>`. NATS is optional: while it is down the
//! component is `degraded`, HTTP events still work, and the client reconnects by itself.

mod consume;
pub mod decode;
mod publish;

use plinth_core::component::{Live, NatsSection};
use plinth_core::health::DependencyHealth;
use plinth_core::metrics::Metrics;
use plinth_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What the bridge works with.
pub struct BridgeContext {
    /// The store events are ingested into.
    pub store: Arc<dyn Store>,
    /// The component (its triggers decide the fan-out).
    pub component: Arc<Live>,
    /// Metrics (bad messages count as `NatsBadMessage` errors).
    pub metrics: Arc<Metrics>,
    /// Wakes the dispatcher after runs were stored queued.
    pub wake: Arc<Notify>,
    /// This node's engine, which starts the events' runs as they are stored while it has free
    /// slots (decision 0035); `None` queues them all.
    pub starter: Option<Arc<dyn plinth_store::Starter>>,
    /// The largest message body taken, in bytes (the HTTP body limit).
    pub max_bytes: usize,
    /// How long an event id deduplicates.
    pub dedup_window: Duration,
    /// Stops the bridge.
    pub stop: CancellationToken,
}

/// The bridge's URL: `PLINTH_NATS_URL` when set, else the file's `url` with `${NAME}` read from
/// the environment.
///
/// # Errors
/// A `${NAME}` that is not set, or a URL that is not `nats://`, `tls://` or `host:port`.
pub fn resolve_url(section: &NatsSection, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let url = match lookup("PLINTH_NATS_URL").filter(|u| !u.trim().is_empty()) {
        Some(u) => u,
        None => plinth_core::component::expand_env(&section.url, &lookup)?,
    };
    if url.contains(char::is_whitespace) || url.trim().is_empty() {
        return Err(format!("`{url}` is not a NATS URL"));
    }
    Ok(url)
}

/// A running bridge.
pub struct Bridge {
    health: Arc<DependencyHealth>,
    tasks: JoinSet<()>,
}

impl Bridge {
    /// Connects (in the background: a server that is down now is retried until it answers) and
    /// starts consuming and publishing as `section` says.
    #[must_use]
    pub fn start(section: &NatsSection, url: String, ctx: BridgeContext) -> Self {
        let health = Arc::new(DependencyHealth::new("nats"));
        let ctx = Arc::new(ctx);
        let mut tasks = JoinSet::new();
        let options = async_nats::ConnectOptions::new()
            .name(format!("plinth-{}", ctx.component.get().file.component.name))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(None);
        let consumer = Arc::new(consume::ConsumerState::default());
        let (h, c, s) = (health.clone(), consumer.clone(), section.clone());
        let started = ctx.clone();
        // Why: the ends are subscribed to before anything can end, so none is missed.
        let ends = ctx.store.notifier().ended();
        tasks.spawn(async move {
            let client = match options.connect(url.as_str()).await {
                Ok(c) => c,
                Err(e) => {
                    h.failing(format!("cannot connect to {url}: {e}"));
                    tracing::error!(error = %e, "NATS bridge cannot start");
                    return;
                }
            };
            let mut inner = JoinSet::new();
            inner.spawn(consume::watch_health(client.clone(), h, c.clone(), started.stop.clone()));
            if let (Some(stream), Some(durable)) = (s.stream.clone(), s.durable.clone()) {
                let spec = consume::Spec { stream, durable, subjects: s.subjects.clone() };
                inner.spawn(consume::run(started.clone(), client.clone(), spec, c));
            } else {
                c.set(Ok(()));
            }
            if let Some(p) = s.publish {
                inner.spawn(publish::run(started.clone(), client.clone(), p.subject_prefix, ends));
            }
            while inner.join_next().await.is_some() {}
            let _ = client.drain().await;
        });
        Self { health, tasks }
    }

    /// The bridge's health, for `/health`.
    #[must_use]
    pub fn health(&self) -> Arc<DependencyHealth> {
        self.health.clone()
    }

    /// Waits for the bridge to stop (after its context's `stop` was cancelled), at most `grace`.
    pub async fn stopped(mut self, grace: Duration) {
        let _ = tokio::time::timeout(grace, async { while self.tasks.join_next().await.is_some() {} }).await;
        self.tasks.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(url: &str) -> NatsSection {
        NatsSection { url: url.into(), stream: None, subjects: vec![], durable: None, publish: None }
    }

    #[test]
    fn the_url_comes_from_the_environment_first() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_string())
        };
        assert_eq!(resolve_url(&section("nats://a:1"), env(&[])).expect("url"), "nats://a:1");
        assert_eq!(
            resolve_url(&section("${DYNAMO_NATS_URL}"), env(&[("DYNAMO_NATS_URL", "nats://b:2")])).expect("url"),
            "nats://b:2"
        );
        assert_eq!(resolve_url(&section("nats://a:1"), env(&[("PLINTH_NATS_URL", "nats://c:3")])).expect("url"), "nats://c:3");
        assert!(resolve_url(&section("${MISSING}"), env(&[])).is_err());
        assert!(resolve_url(&section("nats://a b"), env(&[])).is_err());
    }
}
