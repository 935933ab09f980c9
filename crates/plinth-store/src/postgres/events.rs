//! Events between the nodes that share a schema, over PostgreSQL's LISTEN/NOTIFY: new work
//! (so an idle node claims at once), runs that ended (so a long-poll on any node returns) and
//! cancel requests (so the node running the attempt stops it at once).
//!
//! Notices are hints, never the truth: a listener reads the database again on each, and the
//! dispatcher's and long-polls' fallback reads cover a notice that is lost. Notices are sent
//! after the commit that caused them, coalesced: a send in progress gathers what happens
//! meanwhile into the next one, so a busy node sends a few notices per batch of commits
//! rather than one per run. Ends are announced only while another node waits for some
//! (`interest`, decision 0045).

use super::dedicated::Dedicated;
use super::interest::Wanted;
use super::{OP_TIMEOUT, lock_key};
use crate::Notifier;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// PostgreSQL refuses a payload of 8000 bytes or more; ids are sent in chunks below this.
const MAX_PAYLOAD: usize = 7000;

/// What happened since the last send.
#[derive(Debug, Default, PartialEq, Eq)]
struct Pending {
    work: bool,
    /// This node waits for ends (`i`).
    ask: bool,
    /// This node started announcing its ends (`a`): the askers' waiters read again.
    answer: bool,
    terminal: Vec<String>,
    cancels: Vec<String>,
}

/// This store's outgoing notices and its channel.
#[derive(Debug)]
pub(crate) struct Events {
    /// Tells this store's own notices from the others', which it has already acted on.
    pub(super) node: String,
    pub(super) channel: String,
    pending: Mutex<Pending>,
    signal: Notify,
    wanted: Wanted,
}

impl Events {
    pub(crate) fn new(schema: &str) -> Self {
        Self {
            node: plinth_core::ids::new_correlation_id(),
            channel: channel(schema),
            pending: Mutex::new(Pending::default()),
            signal: Notify::new(),
            wanted: Wanted::new(),
        }
    }

    fn add(&self, f: impl FnOnce(&mut Pending)) {
        f(&mut self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        self.signal.notify_one();
    }

    /// Runs became due (enqueued, released, rescued back to the queue).
    pub(crate) fn work(&self) {
        self.add(|p| p.work = true);
    }

    /// Runs reached a terminal state: announced while another node waits for ends.
    pub(crate) fn terminal<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        if !self.wanted.at(Instant::now()) {
            return;
        }
        let ids: Vec<String> = ids.into_iter().map(str::to_string).collect();
        if !ids.is_empty() {
            self.add(|p| p.terminal.extend(ids));
        }
    }

    /// A cancel was asked for a running run.
    pub(crate) fn cancel(&self, id: &str) {
        self.add(|p| p.cancels.push(id.to_string()));
    }

    /// This node waits for ends.
    pub(crate) fn ask(&self) {
        self.add(|p| p.ask = true);
    }

    /// Another node waits for ends: announce them for a while, and answer if that starts it.
    fn asked(&self) {
        if self.wanted.asked(Instant::now()) {
            self.add(|p| p.answer = true);
        }
    }

    /// Whether this node's ends are announced now.
    #[cfg(test)]
    pub(super) fn wanted_now(&self) -> bool {
        self.wanted.at(Instant::now())
    }

    pub(super) fn take(&self) -> Vec<String> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        payloads(&self.node, &pending)
    }
}

/// The channel of a schema: an identifier of fixed length, whatever the schema's name.
fn channel(schema: &str) -> String {
    format!("plinth_{:016x}", lock_key(&["plinth-events", schema]))
}

/// `<kind> <node> [id,id,...]`: kind `w` (work), `i` (waits for ends), `a` (announces its
/// ends from now on), `t` (terminal) or `c` (cancel).
fn payloads(node: &str, p: &Pending) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, set) in [('w', p.work), ('i', p.ask), ('a', p.answer)] {
        if set {
            out.push(format!("{kind} {node}"));
        }
    }
    for (kind, ids) in [('t', &p.terminal), ('c', &p.cancels)] {
        let mut current = String::new();
        for id in ids {
            if !current.is_empty() && current.len() + id.len() + 1 > MAX_PAYLOAD {
                out.push(format!("{kind} {node} {current}"));
                current.clear();
            }
            if !current.is_empty() {
                current.push(',');
            }
            current.push_str(id);
        }
        if !current.is_empty() {
            out.push(format!("{kind} {node} {current}"));
        }
    }
    out
}

/// What a notice says, when another node sent it.
#[derive(Debug, PartialEq, Eq)]
enum Notice<'a> {
    Work,
    Ask,
    Answer,
    Terminal(Vec<&'a str>),
    Cancel(Vec<&'a str>),
}

fn parse<'a>(payload: &'a str, own_node: &str) -> Option<Notice<'a>> {
    let mut parts = payload.splitn(3, ' ');
    let kind = parts.next()?;
    let node = parts.next()?;
    if node == own_node {
        return None;
    }
    let mut ids = || parts.next().map(|s| s.split(',').filter(|id| !id.is_empty()).collect()).unwrap_or_default();
    match kind {
        "w" => Some(Notice::Work),
        "i" => Some(Notice::Ask),
        "a" => Some(Notice::Answer),
        "t" => Some(Notice::Terminal(ids())),
        "c" => Some(Notice::Cancel(ids())),
        _ => None,
    }
}

/// Sends what gathered, one round trip per send, until the store is dropped. Why a connection
/// of its own: a busy node sends a notice for every few batches (5,889 sends for 40,000 runs),
/// and a pooled connection cost two more round trips each (the pool's checks).
pub(crate) async fn send_loop(mut conn: Dedicated, events: Arc<Events>) {
    loop {
        events.signal.notified().await;
        let payloads = events.take();
        if payloads.is_empty() {
            continue;
        }
        let channel = &events.channel;
        let sent = conn
            .run(async |c| {
                sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                    .bind(channel)
                    .bind(&payloads)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
            .await;
        // Why: a lost notice costs the other nodes a fallback read, not correctness, and a stale
        // one is worth nothing later; it is dropped rather than retried.
        if let Err(e) = sent {
            tracing::debug!(error = %e, "cannot notify the other nodes");
        }
    }
}

/// Listens for the other nodes' notices and fires this node's wake-ups, reconnecting when the
/// connection is lost. After each (re)connection everything is read again (`resync`), since
/// notices sent meanwhile are gone.
pub(crate) async fn listen_loop(pool: PgPool, events: Arc<Events>, notifier: Arc<Notifier>) {
    let mut connected_before = false;
    loop {
        match listen(&pool, &events.channel).await {
            Ok(mut listener) => {
                if connected_before {
                    tracing::info!("listening to the other nodes again");
                }
                connected_before = true;
                notifier.resync();
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) => act(&notifier, &events, parse(n.payload(), &events.node)),
                        // The connection dropped and was made again: notices may be lost.
                        Ok(None) => notifier.resync(),
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the connection that hears the other nodes; reconnecting");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot listen to the other nodes yet"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn listen(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let connect = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(channel).await?;
        Ok(listener)
    };
    tokio::time::timeout(OP_TIMEOUT, connect).await.unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

fn act(notifier: &Notifier, events: &Events, notice: Option<Notice<'_>>) {
    match notice {
        Some(Notice::Work) => notifier.work().notify_one(),
        Some(Notice::Ask) => events.asked(),
        // Why: ends committed before that node began announcing were not announced.
        Some(Notice::Answer) => notifier.recheck(),
        Some(Notice::Terminal(ids)) => notifier.terminal(ids),
        Some(Notice::Cancel(ids)) => {
            for id in ids {
                notifier.cancel(id);
            }
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_the_node_and_chunk_long_id_lists() {
        let ids: Vec<String> = (0..600).map(|i| format!("{i:026}")).collect();
        let p = Pending { work: true, terminal: ids.clone(), cancels: vec!["c1".into()], ..Pending::default() };
        let out = payloads("n1", &p);
        assert_eq!(out[0], "w n1");
        assert!(out.iter().all(|s| s.len() < 8000), "every payload fits PostgreSQL's limit");
        let sent: Vec<&str> = out
            .iter()
            .filter_map(|s| match parse(s, "other") {
                Some(Notice::Terminal(ids)) => Some(ids),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(sent, ids.iter().map(String::as_str).collect::<Vec<_>>(), "every id once, in order");
        assert_eq!(out.last().map(String::as_str), Some("c n1 c1"));
    }

    #[test]
    fn nothing_pending_sends_nothing() {
        assert!(payloads("n1", &Pending::default()).is_empty());
    }

    #[test]
    fn own_and_malformed_notices_are_ignored() {
        assert_eq!(parse("w n1", "n1"), None, "our own notice");
        assert_eq!(parse("x n2 a", "n1"), None, "unknown kind");
        assert_eq!(parse("w", "n1"), None, "no node");
        assert_eq!(parse("", "n1"), None);
        assert_eq!(parse("t n2", "n1"), Some(Notice::Terminal(vec![])), "no ids is harmless");
        assert_eq!(parse("c n2 a,,b", "n1"), Some(Notice::Cancel(vec!["a", "b"])));
        assert_eq!(parse("w n2", "n1"), Some(Notice::Work));
        assert_eq!(parse("i n2", "n1"), Some(Notice::Ask));
        assert_eq!(parse("a n2 x", "n1"), Some(Notice::Answer), "ids after an answer are ignored");
        assert_eq!(parse("i n1", "n1"), None, "our own ask");
    }

    #[test]
    fn channels_are_fixed_length_identifiers_per_schema() {
        let a = channel("plinth");
        assert_eq!(a.len(), "plinth_".len() + 16);
        assert_ne!(a, channel("other"));
        assert_eq!(channel(&"x".repeat(63)).len(), a.len());
    }

    #[tokio::test]
    async fn gathered_events_are_taken_once() {
        let e = Events::new("s");
        e.work();
        e.terminal(["r0"]);
        e.asked();
        e.ask();
        e.terminal(["r1", "r2"]);
        e.terminal(std::iter::empty());
        e.cancel("r3");
        let node = e.node.clone();
        assert_eq!(
            e.take(),
            vec![
                format!("w {node}"),
                format!("i {node}"),
                format!("a {node}"),
                format!("t {node} r1,r2"),
                format!("c {node} r3")
            ],
            "an end before another node asked is not announced"
        );
        assert!(e.take().is_empty());
        e.asked();
        assert!(e.take().is_empty(), "a second ask while announcing is not answered");
    }

    #[tokio::test]
    async fn an_ask_starts_the_announcing_and_an_answer_makes_the_waiters_read_again() {
        let (notifier, e) = (Notifier::default(), Events::new("s"));
        act(&notifier, &e, parse("t n2 r1", "n1"));
        let waiter = notifier.wait_terminal("r1");
        act(&notifier, &e, parse("a n2", "n1"));
        assert!(waiter.await.is_ok(), "woken by the answer");
        act(&notifier, &e, parse("i n2", "n1"));
        e.terminal(["r2"]);
        let node = e.node.clone();
        assert_eq!(e.take(), vec![format!("a {node}"), format!("t {node} r2")]);
        act(&notifier, &e, None);
        assert_eq!(notifier.waiting(), 0);
    }
}
