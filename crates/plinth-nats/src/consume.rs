//! Consuming: bind the durable pull consumer (creating the stream if needed), take messages in
//! ready chunks, store each chunk's events with their runs in one ingest, then acknowledge.
//! A message that is no event is terminated (never redelivered), logged and counted; when the
//! store cannot take a chunk, its messages are nak'ed to come back a second later.

use crate::BridgeContext;
use crate::decode::decode;
use async_nats::jetstream::{self, AckKind, consumer::pull, stream};
use futures_util::StreamExt;
use plinth_core::health::DependencyHealth;
use plinth_core::timefmt::now_micros;
use plinth_store::NewEvent;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The most messages stored in one ingest.
const CHUNK: usize = 256;
/// How long a message may wait unacknowledged before the server sends it again.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// Which stream and consumer.
pub(crate) struct Spec {
    pub(crate) stream: String,
    pub(crate) durable: String,
    pub(crate) subjects: Vec<String>,
}

/// Whether the consumer is bound, and if not why.
#[derive(Debug)]
pub(crate) struct ConsumerState(Mutex<Result<(), String>>);

impl Default for ConsumerState {
    fn default() -> Self {
        Self(Mutex::new(Err("binding the consumer".into())))
    }
}

impl ConsumerState {
    pub(crate) fn set(&self, state: Result<(), String>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = state;
    }
    fn get(&self) -> Result<(), String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Keeps the bridge's health: ok while connected and (when consuming) bound.
pub(crate) async fn watch_health(
    client: async_nats::Client,
    health: Arc<DependencyHealth>,
    consumer: Arc<ConsumerState>,
    stop: CancellationToken,
) {
    loop {
        match (client.connection_state(), consumer.get()) {
            (async_nats::connection::State::Connected, Ok(())) => health.ok(),
            (async_nats::connection::State::Connected, Err(why)) => health.failing(why),
            (state, _) => health.failing(format!("not connected to NATS ({state:?}); reconnecting")),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            () = stop.cancelled() => return,
        }
    }
}

async fn bind(client: &async_nats::Client, spec: &Spec) -> Result<jetstream::consumer::PullConsumer, String> {
    let js = jetstream::new(client.clone());
    let stream = js
        .get_or_create_stream(stream::Config { name: spec.stream.clone(), subjects: spec.subjects.clone(), ..Default::default() })
        .await
        .map_err(|e| format!("cannot open stream {}: {e}", spec.stream))?;
    let config = pull::Config {
        durable_name: Some(spec.durable.clone()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: 10_000,
        ..Default::default()
    };
    stream.get_or_create_consumer(&spec.durable, config).await.map_err(|e| format!("cannot bind consumer {}: {e}", spec.durable))
}

pub(crate) async fn run(ctx: Arc<BridgeContext>, client: async_nats::Client, spec: Spec, state: Arc<ConsumerState>) {
    while !ctx.stop.is_cancelled() {
        let why = match bind(&client, &spec).await {
            Ok(consumer) => match consumer.messages().await {
                Ok(messages) => {
                    state.set(Ok(()));
                    tracing::info!(stream = %spec.stream, durable = %spec.durable, "NATS bridge consuming");
                    consume(&ctx, messages).await
                }
                Err(e) => format!("cannot pull from consumer {}: {e}", spec.durable),
            },
            Err(e) => e,
        };
        if ctx.stop.is_cancelled() {
            return;
        }
        tracing::warn!(reason = %why, "NATS bridge not consuming; trying again in 1s");
        state.set(Err(why));
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = ctx.stop.cancelled() => return,
        }
    }
}

/// Takes messages until the stream breaks or the bridge stops; says why it stopped.
async fn consume(ctx: &BridgeContext, messages: pull::Stream) -> String {
    let mut chunks = messages.ready_chunks(CHUNK);
    loop {
        let chunk = tokio::select! {
            next = chunks.next() => next,
            () = ctx.stop.cancelled() => return "stopping".into(),
        };
        let Some(chunk) = chunk else { return "the consumer's message stream ended".into() };
        let mut good = Vec::with_capacity(chunk.len());
        let mut broken = None;
        for item in chunk {
            match item {
                Ok(m) => good.push(m),
                Err(e) => broken = Some(format!("the consumer's message stream failed: {e}")),
            }
        }
        handle(ctx, good).await;
        if let Some(why) = broken {
            return why;
        }
    }
}

/// Stores a chunk's events, then acknowledges them; terminates the bad ones.
async fn handle(ctx: &BridgeContext, messages: Vec<jetstream::Message>) {
    let now = now_micros();
    let mut batch = Vec::with_capacity(messages.len());
    let mut taken = Vec::with_capacity(messages.len());
    let mut ids = HashSet::new();
    for m in messages {
        let fallback =
            m.info().map_or_else(|_| plinth_core::ids::new_run_id(), |i| format!("nats-{}-{}", i.stream, i.stream_sequence));
        match decode(m.subject.as_str(), &m.payload, &fallback, ctx.max_bytes, now) {
            Ok(event) => {
                let first = ids.insert(event.id.clone());
                if first {
                    let correlation = m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("X-Correlation-ID"))
                        .map_or_else(plinth_core::ids::new_correlation_id, |v| v.as_str().to_string());
                    // Why: a W3C traceparent header carries the publisher's trace into the runs.
                    let header = |name: &str| m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
                    let trace = plinth_core::trace::Carried::from_headers(
                        header("traceparent").as_deref(),
                        header("tracestate").as_deref(),
                    );
                    batch.push(NewEvent::planned(&ctx.component.get(), event, &correlation, now).traced(&trace));
                }
                taken.push(m);
            }
            Err(why) => {
                ctx.metrics.error("NatsBadMessage");
                tracing::warn!(subject = %m.subject, event_id = %fallback, reason = %why, "NATS message is not an event; terminated");
                if let Err(e) = m.ack_with(AckKind::Term).await {
                    tracing::warn!(error = %e, "cannot terminate a bad NATS message");
                }
            }
        }
    }
    if batch.is_empty() {
        return;
    }
    let dedup_after = now.saturating_sub(i64::try_from(ctx.dedup_window.as_micros()).unwrap_or(i64::MAX));
    match plinth_store::ingest_starting(ctx.store.clone(), ctx.starter.clone(), batch, dedup_after, now).await {
        Ok(plinth_store::IngestStarted { ingested, queued }) => {
            if queued {
                ctx.wake.notify_one();
            }
            tracing::debug!(events = ingested.len(), "NATS events stored");
            for m in taken {
                if let Err(e) = m.ack().await {
                    // Why: the event is committed; a redelivery is deduplicated by its id.
                    tracing::warn!(error = %e, "cannot acknowledge a stored NATS message; it will come again and be deduplicated");
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, messages = taken.len(), "cannot store NATS events; they will be delivered again");
            for m in taken {
                let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
}
