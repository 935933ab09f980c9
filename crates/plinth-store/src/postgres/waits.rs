//! The waits an incoming event ends, inside its ingest. The runs waiting on the event's name
//! are taken one condition at a time (compiled once); an `event.data.A == run.input.B`
//! condition looks up the runs that hold the event's value (see [`crate::waitkey`]), so an
//! event does not evaluate the condition of every run waiting on its name.

use super::steps::{load_one, upsert, wake, wake_started};
use crate::StoreError;
use crate::starter::Resumed;
use crate::steps::{matches_compiled, parse_wait, run_var};
use crate::waitkey::{KeyEq, Probe};
use plinth_core::Event;
use plinth_core::steps::StepStatus;
use plinth_core::trigger::Expr;
use sqlx::{PgConnection, Row};
use std::collections::HashMap;

/// The runs waiting on an event name with a condition. Why the run's status is checked in
/// Rust: with it in SQL, stale statistics can make PostgreSQL walk every waiting run for each
/// waiting step (seen: 0.4 s for 366 runs); without it the plan starts from the steps' index
/// and reaches each run by its key.
const CANDIDATES: &str = "SELECT s.run_id, r.function, r.input, s.id, s.wait, r.status, r.flow_key FROM steps s \
     JOIN runs r ON r.id = s.run_id \
     WHERE s.wait_key = $1 AND s.status = 'waiting' AND s.op = 'wait_for_event' \
     AND (s.wait::jsonb ->> 'cond') IS NOT DISTINCT FROM $2";

/// The conditions of the waits on each event name, looked up once per ingest (a condition
/// whose waits all ended meanwhile just finds no run).
pub(crate) type Conds = HashMap<String, Vec<Option<String>>>;

/// Ends the waits `event` matches: each step gets the event; each run is stored started on a
/// slot `resumed` reserves when it has no lane (decision 0036), and queued otherwise. Whether
/// any run was queued.
pub(crate) async fn match_event(
    conn: &mut PgConnection,
    event: &Event,
    known: &mut Conds,
    resumed: &mut Resumed,
) -> Result<bool, StoreError> {
    let conds = match known.get(&event.name) {
        Some(c) => c.clone(),
        None => {
            let c: Vec<Option<String>> = sqlx::query_scalar(
                "SELECT DISTINCT wait::jsonb ->> 'cond' FROM steps \
                 WHERE wait_key = $1 AND status = 'waiting' AND op = 'wait_for_event'",
            )
            .bind(&event.name)
            .fetch_all(&mut *conn)
            .await?;
            known.insert(event.name.clone(), c.clone());
            c
        }
    };
    let mut woke = false;
    for cond in conds {
        let key = cond.as_deref().and_then(KeyEq::parse);
        let probe = key.as_ref().map_or(Probe::Any, |k| k.probe(event));
        if probe == Probe::Missing {
            tracing::warn!(event_id = %event.id, cond = cond.as_deref().unwrap_or(""), "the event lacks the field a wait_for_event condition compares; no match");
            continue;
        }
        let rows = match probe.text() {
            // Waits stored before `wait_match` existed (NULL) are taken too: CEL decides.
            Some(value) => {
                let sql = format!("{CANDIDATES} AND s.wait_match = $3 UNION ALL {CANDIDATES} AND s.wait_match IS NULL");
                sqlx::query(&sql).bind(&event.name).bind(&cond).bind(value).fetch_all(&mut *conn).await?
            }
            None => sqlx::query(CANDIDATES).bind(&event.name).bind(&cond).fetch_all(&mut *conn).await?,
        };
        let compiled = cond.as_deref().map(|c| Expr::compile(c, &["event", "run"]));
        for row in &rows {
            if row.try_get::<String, _>("status")? != "waiting" {
                continue;
            }
            let (run_id, function): (String, String) = (row.try_get("run_id")?, row.try_get("function")?);
            let input: String = row.try_get("input")?;
            let wait: Option<String> = row.try_get("wait")?;
            let Some(wait) = parse_wait(wait.as_deref()) else { continue };
            let input = serde_json::from_str(&input).unwrap_or(serde_json::Value::Null);
            if !matches_compiled(&wait, event, &run_var(&run_id, &function, &input), compiled.as_ref()) {
                continue;
            }
            // Locked now, and checked again: another ingest may have ended this wait meanwhile.
            let step_id: String = row.try_get("id")?;
            let Some(step) = load_one(conn, &run_id, &step_id).await? else { continue };
            if step.status != StepStatus::Waiting {
                continue;
            }
            // Why only a run with no lane: a lane's limit is held by the claim (and the
            // throttle's spacing by its state), which a run started here would pass by.
            let lease = if row.try_get::<Option<String>, _>("flow_key")?.is_none() {
                resumed.reserve(&function, plinth_core::timefmt::now_micros())
            } else {
                None
            };
            let ended = match lease {
                Some(lease) => match wake_started(conn, &run_id, event.received_at, &lease).await? {
                    Some(run) => {
                        resumed.stored(run);
                        true
                    }
                    None => {
                        resumed.unused();
                        false
                    }
                },
                None => {
                    let queued = wake(conn, &run_id, event.received_at).await?;
                    woke |= queued;
                    queued
                }
            };
            if ended {
                upsert(conn, &run_id, &step.succeed(event.as_input(), event.received_at)).await?;
            }
        }
    }
    Ok(woke)
}
