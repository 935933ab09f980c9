//! The single writer thread and its group commit.
//!
//! Every write goes through one thread that owns the only writing connection. It takes all
//! the operations waiting in its channel (up to [`MAX_BATCH`]), applies each inside a savepoint
//! of one transaction, commits once, and only then answers each caller. So a caller's
//! "done" means "on disk", and a thousand concurrent submissions cost one fsync, not a thousand.

use super::ops::{self, Events, OpResult};
use crate::{CancelOutcome, ClaimRequest, Claimed, Enqueued, FinishRequest, Heartbeat, LogLine, Notifier, Rescued, StoreError};
use crate::{Ingested, NewEvent};
use plinth_core::steps::Step;
use plinth_core::{NewRun, Run};
use rusqlite::{Connection, TransactionBehavior};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The most operations grouped into one transaction.
pub(crate) const MAX_BATCH: usize = 1024;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write, with where to send its answer.
pub(crate) enum Op {
    Enqueue(NewRun, Reply<Enqueued>),
    Claim(ClaimRequest, Reply<Claimed>),
    Heartbeat(String, Vec<(String, u32)>, i64, Reply<Heartbeat>),
    Finish(FinishRequest, Reply<bool>),
    Logs(String, u32, Vec<LogLine>, Reply<()>),
    Cancel(String, i64, Reply<CancelOutcome>),
    Rescue(i64, Reply<Vec<Rescued>>),
    Adopt(String, i64, i64, Reply<Vec<Run>>),
    Expire(i64, Reply<Vec<crate::Expired>>),
    Prune(i64, i64, u32, Reply<u64>),
    Probe(i64, Reply<()>),
    Ingest(Vec<NewEvent>, i64, crate::Resume, Reply<(Vec<Ingested>, crate::starter::Resumed)>),
    PruneEvents(i64, i64, u32, Reply<u64>),
    FireTick(String, i64, NewRun, Reply<Option<Run>>),
    SaveSteps(String, String, u32, Vec<Step>, Reply<bool>),
    EnqueueWith(NewRun, Vec<Step>, Reply<Run>),
    Pragma(String, Reply<()>),
    Flow(crate::FlowUpkeep, Reply<u64>),
    RollUp(i64, Reply<u64>),
    Beat(crate::NodeBeat, Reply<()>),
}

/// Sends an operation's answer once the commit's fate is known.
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// An applied operation whose answer waits for the commit.
struct Applied {
    answer: Answer,
    events: Events,
}

fn settle<T: Send + 'static>(result: OpResult<T>, reply: Reply<T>) -> Option<Applied> {
    match result {
        Ok((value, events)) => Some(Applied {
            answer: Box::new(move |commit_error| {
                let _ = reply.send(commit_error.map_or(Ok(value), |e| Err(e.clone())));
            }),
            events,
        }),
        Err(e) => {
            let _ = reply.send(Err(e));
            None
        }
    }
}

fn apply(conn: &Connection, op: Op) -> Option<Applied> {
    match op {
        Op::Enqueue(run, reply) => settle(ops::enqueue(conn, run), reply),
        Op::Claim(req, reply) => settle(ops::claim(conn, &req), reply),
        Op::Heartbeat(owner, runs, until, reply) => settle(super::leases::heartbeat(conn, &owner, &runs, until), reply),
        Op::Finish(req, reply) => settle(ops::finish(conn, req), reply),
        Op::Logs(run_id, attempt, lines, reply) => settle(ops::append_logs(conn, &run_id, attempt, &lines), reply),
        Op::Cancel(run_id, now, reply) => settle(ops::cancel(conn, &run_id, now), reply),
        Op::Rescue(now, reply) => settle(super::leases::rescue(conn, now), reply),
        Op::Adopt(owner, stale, until, reply) => settle(super::leases::adopt(conn, &owner, stale, until), reply),
        Op::Expire(now, reply) => settle(super::expiry::expire(conn, now), reply),
        Op::Prune(before, keys_before, batch, reply) => settle(ops::prune(conn, before, keys_before, batch), reply),
        Op::Probe(now, reply) => settle(ops::probe(conn, now), reply),
        Op::Flow(what, reply) => settle(super::flow::upkeep(conn, &what), reply),
        Op::Ingest(events, dedup_after, resume, reply) => settle(super::events::ingest(conn, events, dedup_after, resume), reply),
        Op::PruneEvents(before, dedup_before, batch, reply) => {
            settle(super::events::prune_events(conn, before, dedup_before, batch), reply)
        }
        Op::FireTick(function, tick, run, reply) => settle(super::events::fire_tick(conn, &function, tick, &run), reply),
        Op::SaveSteps(run_id, owner, attempt, steps, reply) => {
            settle(super::steps::save(conn, &run_id, &owner, attempt, &steps), reply)
        }
        Op::EnqueueWith(run, steps, reply) => settle(super::steps::enqueue_with(conn, &run, &steps), reply),
        Op::RollUp(until, reply) => settle(super::stats::roll_up(conn, until), reply),
        Op::Beat(node, reply) => settle(super::stats::beat(conn, &node), reply),
        Op::Pragma(sql, reply) => settle(conn.execute_batch(&sql).map(|()| ((), Events::default())).map_err(Into::into), reply),
    }
}

fn fail(op: Op, e: &StoreError) {
    fn send<T>(r: Reply<T>, e: &StoreError) {
        let _ = r.send(Err(e.clone()));
    }
    match op {
        Op::Enqueue(_, r) => send(r, e),
        Op::Claim(_, r) => send(r, e),
        Op::Heartbeat(.., r) => send(r, e),
        Op::Finish(_, r) | Op::SaveSteps(.., r) => send(r, e),
        Op::EnqueueWith(.., r) => send(r, e),
        Op::Logs(.., r) | Op::Probe(_, r) | Op::Pragma(_, r) | Op::Beat(_, r) => send(r, e),
        Op::Cancel(.., r) => send(r, e),
        Op::Rescue(_, r) => send(r, e),
        Op::Adopt(.., r) => send(r, e),
        Op::Expire(_, r) => send(r, e),
        Op::Prune(.., r) | Op::PruneEvents(.., r) | Op::Flow(_, r) | Op::RollUp(_, r) => send(r, e),
        Op::Ingest(.., r) => send(r, e),
        Op::FireTick(.., r) => send(r, e),
    }
}

/// Runs the writer until every sender is gone.
pub(crate) fn run(mut conn: Connection, mut rx: mpsc::Receiver<Op>, notifier: &Arc<Notifier>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(op) = rx.blocking_recv() {
        batch.push(op);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch, notifier);
    }
    tracing::debug!("sqlite writer stopped");
}

fn commit_batch(conn: &mut Connection, batch: &mut Vec<Op>, notifier: &Notifier) {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let e = StoreError::from(e);
            tracing::error!(error = %e, "cannot begin a write transaction");
            batch.drain(..).for_each(|op| fail(op, &e));
            return;
        }
    };
    let mut applied = Vec::with_capacity(batch.len());
    for op in batch.drain(..) {
        let mut sp = match tx.savepoint() {
            Ok(sp) => sp,
            Err(e) => {
                fail(op, &StoreError::from(e));
                continue;
            }
        };
        match apply(&sp, op) {
            Some(mut done) => match super::steps::after_terminal(&sp, &mut done.events, plinth_core::timefmt::now_micros())
                .map_err(StoreError::from)
                .and_then(|()| sp.commit().map_err(StoreError::from))
            {
                Ok(()) => applied.push(done),
                Err(e) => (done.answer)(Some(&e)),
            },
            // Why: the savepoint rolls back when dropped, undoing the failed operation only.
            None => drop(sp.rollback()),
        }
    }
    let commit_error = tx.commit().err().map(StoreError::from);
    if let Some(e) = &commit_error {
        tracing::error!(error = %e, ops = applied.len(), "group commit failed; nothing of it was written");
    }
    let mut terminal = Vec::new();
    let mut work = false;
    for done in applied {
        if commit_error.is_none() {
            work |= done.events.work;
            terminal.extend(done.events.terminal);
            for id in &done.events.cancels {
                notifier.cancel(id);
            }
        }
        (done.answer)(commit_error.as_ref());
    }
    notifier.ended_here(terminal.iter().map(String::as_str));
    if work {
        notifier.work().notify_one();
    }
}
