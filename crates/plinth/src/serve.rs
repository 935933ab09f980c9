//! `plinth serve`: open the store, start the engine and the API, and stop gracefully.

use crate::cli::ServeArgs;
use crate::config::{self, Settings};
use clap::ArgMatches;
use plinth_core::component::Component;
use plinth_core::metrics::Metrics;
use plinth_engine::{Engine, EngineConfig, Handlers};
use plinth_server::{AppState, Readiness};
use plinth_store::Store;
use plinth_store::sqlite::SqliteStore;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(crate) fn main(args: &ServeArgs, matches: Option<&ArgMatches>, handlers: Handlers) -> ExitCode {
    let (component, settings) = match config::load(args, matches) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Err(e) = Engine::check_handlers(&component, &handlers) {
        eprintln!("plinth: {e}");
        return ExitCode::from(2);
    }
    // Why: keys and secrets are read before anything starts, so a missing one stops start-up
    // like any other configuration error (exit 2), before the engine could claim a run.
    let auth = match plinth_server::Auth::from_component(&component, |name| std::env::var(name).ok()) {
        Ok(auth) => auth.map(Arc::new),
        Err(e) => {
            eprintln!("plinth: {e}");
            return ExitCode::from(2);
        }
    };
    let nats = match component.file.events.as_ref().and_then(|e| e.nats.as_ref()) {
        Some(section) => match plinth_nats::resolve_url(section, |name| std::env::var(name).ok()) {
            Ok(url) => Some((section.clone(), url)),
            Err(e) => {
                eprintln!("plinth: {}: events.nats.url: {e} ({})", component.path.display(), plinth_core::Code::InvalidConfig);
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let inngest_keys = match crate::inngest::keys(&component, |name| std::env::var(name).ok()) {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("plinth: {e}");
            return ExitCode::from(2);
        }
    };
    let otlp = settings.otlp_endpoint.as_deref();
    let mut guards =
        match crate::telemetry::init(&component.file.component.name, &settings.log_level, settings.log_dir.as_deref(), otlp) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("plinth: {e} ({})", plinth_core::Code::InvalidConfig);
                return ExitCode::from(2);
            }
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plinth: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let grace = settings.shutdown_grace;
        let code = run(component, settings, handlers, auth, nats, inngest_keys).await;
        // Why: spans still queued are exported before exit, within the grace period.
        guards.shutdown(grace).await;
        code
    })
}

async fn run(
    component: Component,
    settings: Settings,
    handlers: Handlers,
    auth: Option<Arc<plinth_server::Auth>>,
    nats: Option<(plinth_core::component::NatsSection, String)>,
    inngest_keys: crate::inngest::Keys,
) -> ExitCode {
    let mut postgres = None;
    let (opened, database) = if crate::config::is_postgres_url(&settings.database_url) {
        let store = plinth_store::postgres::PostgresStore::connect(&settings.database_url, &settings.database_schema).await;
        let store = store.map(Arc::new);
        postgres = store.as_ref().ok().cloned();
        (store.map(|s| s as Arc<dyn Store>), format!("postgres schema {}", settings.database_schema))
    } else {
        let path = match plinth_store::sqlite::path_from_url(&settings.database_url) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(code = "PLINTH_001", error = %e, "invalid database_url");
                return ExitCode::from(2);
            }
        };
        (SqliteStore::open(&path, settings.sqlite_synchronous).map(|s| Arc::new(s) as Arc<dyn Store>), path.display().to_string())
    };
    let store: Arc<dyn Store> = match opened {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(code = "PLINTH_002", error = %e, "cannot open the run store");
            eprintln!("plinth: cannot open the run store: {e} (PLINTH_002)");
            return ExitCode::FAILURE;
        }
    };
    let addr = format!("{}:{}", settings.host, settings.port);
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(code = "PLINTH_001", error = %e, addr = %addr, "cannot listen");
            eprintln!("plinth: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a.to_string());
    let name = component.file.component.name.clone();
    let component = Arc::new(plinth_core::component::Live::new(component));
    let inngest = Arc::new(plinth_server::apps::InngestApps::new(component.clone()).with_signing(inngest_keys.signing.clone()));
    let metrics = Arc::new(Metrics::new(&settings.metrics_prefix, &name));
    // Why: without access control anyone may send events, so no token is needed.
    let run_tokens = auth.is_some().then(|| Arc::new(plinth_core::tokens::RunTokens::default()));
    let engine_config = EngineConfig {
        workers: settings.workers,
        claim_batch: settings.claim_batch,
        lease: settings.lease,
        kill_grace: settings.kill_grace,
        wait_here_at_most: settings.node_wait,
        retention: settings.retention,
        idempotency_window: settings.idempotency_window,
        event_retention: settings.event_retention,
        max_log_bytes: settings.max_log_bytes,
        max_output_bytes: settings.max_output_bytes,
        max_step_calls: settings.max_step_calls,
        max_memo_bytes: settings.max_memo_bytes,
        url: format!("http://{local}"),
        run_tokens: run_tokens.clone(),
        inngest_signing: inngest_keys.signing,
        ..EngineConfig::default()
    };
    let owner = engine_config.owner.clone();
    let engine = Engine::start(store.clone(), component.clone(), Arc::new(handlers), metrics.clone(), engine_config);
    let readiness = Arc::new(Readiness::default());
    let rate_limit = std::num::NonZeroU32::new(settings.rate_limit).map(|rate| {
        let burst = std::num::NonZeroU32::new(settings.rate_burst).unwrap_or(rate);
        Arc::new(plinth_server::RateLimit::new(rate, burst))
    });
    let stop_bridge = CancellationToken::new();
    let bridge = nats.map(|(section, url)| {
        tracing::info!(url = %url, stream = section.stream.as_deref().unwrap_or("-"), "starting the NATS bridge");
        let ctx = plinth_nats::BridgeContext {
            store: store.clone(),
            component: component.clone(),
            metrics: metrics.clone(),
            wake: engine.waker(),
            starter: Some(engine.starter()),
            max_bytes: usize::try_from(settings.body_limit).unwrap_or(usize::MAX),
            dedup_window: settings.event_dedup_window,
            stop: stop_bridge.clone(),
        };
        plinth_nats::Bridge::start(&section, url, ctx)
    });
    let state = Arc::new(AppState {
        nats: bridge.as_ref().map(plinth_nats::Bridge::health),
        store,
        component: component.clone(),
        metrics,
        wake: engine.waker(),
        starter: Some(engine.starter()),
        readiness: readiness.clone(),
        body_limit: usize::try_from(settings.body_limit).unwrap_or(usize::MAX),
        auth: auth.clone(),
        rate_limit: rate_limit.clone(),
        event_dedup_window: settings.event_dedup_window,
        run_tokens,
        inngest_event_key: inngest_keys.event,
        inngest: inngest.clone(),
    });
    let stop_http = CancellationToken::new();
    if let Some(limit) = rate_limit {
        // Why: a bucket per client ever seen would grow without bound; full buckets are dropped.
        let stop = stop_http.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => limit.forget_idle(),
                    () = stop.cancelled() => break,
                }
            }
        });
    }
    // Why: the peer address keys the rate limit of clients without credentials.
    let app = if settings.ui {
        let ui = plinth_ui::router(state.clone(), &settings.ui_path, settings.ui_secret.as_deref().map(str::as_bytes));
        plinth_server::router_with(state, &settings.ui_path, ui)
    } else {
        plinth_server::router(state)
    };
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(stop_http.clone().cancelled_owned());
    let server = tokio::spawn(async move { server.await });
    // Why: handlers are installed before readiness is announced, so a SIGTERM sent as soon as
    // the node looks ready drains it instead of killing it with the default action.
    let signals = Signals::install();
    readiness.ready();
    crate::inngest::sync_listed(inngest, format!("http://{local}"));
    tracing::info!(addr = %local, component = %name, owner = %owner,
        database = %database, "listening");
    if settings.ui {
        tracing::info!(url = %format!("http://{local}{}", settings.ui_path), "web dashboard served");
    }
    match &auth {
        Some(auth) => {
            tracing::info!(api_keys = auth.api_key_count(), jwt = auth.jwt_algorithm().unwrap_or("off"), "access control on")
        }
        None if settings.host != "127.0.0.1" && settings.host != "localhost" && settings.host != "::1" => {
            tracing::warn!(host = %settings.host, "listening beyond loopback without authentication");
        }
        None => {}
    }
    let signal = signals.recv().await;
    readiness.draining();
    tracing::info!(
        signal,
        grace_ms = settings.shutdown_grace.as_millis() as u64,
        "shutting down: no new claims, in-flight runs get the grace period"
    );
    // Why: no new events from NATS while in-flight runs drain; unacknowledged ones come again.
    stop_bridge.cancel();
    let report = engine.shutdown(settings.shutdown_grace).await;
    if let Some(bridge) = bridge {
        bridge.stopped(std::time::Duration::from_secs(2)).await;
    }
    stop_http.cancel();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "the HTTP server failed"),
        Err(e) => tracing::error!(error = %e, "the HTTP server task failed"),
    }
    if let Some(pg) = postgres {
        // Why: giving the upkeep lead up at once lets another node take it without waiting.
        pg.close().await;
    }
    tracing::info!(finished = report.finished, released = report.released, "stopped");
    ExitCode::SUCCESS
}

/// SIGINT and SIGTERM streams, installed up front (a stream that cannot be installed never fires).
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self { interrupt: signal(SignalKind::interrupt()).ok(), terminate: signal(SignalKind::terminate()).ok() }
    }

    /// Waits for SIGINT or SIGTERM; returns which.
    async fn recv(mut self) -> &'static str {
        async fn next(s: Option<&mut tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = next(self.interrupt.as_mut()) => "SIGINT",
            () = next(self.terminate.as_mut()) => "SIGTERM",
        }
    }
}
