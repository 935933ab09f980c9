//! What a claim writes to the lanes of a limited function on SQLite: the shared cases of
//! `conformance::lanes`, with the lanes read beside the store.

use super::fresh;
use crate::conformance::lanes::{
    LaneRow, a_claim_that_finds_every_lane_full_moves_no_lane, a_throttled_lane_that_admits_nothing_still_says_when,
};
use rusqlite::Connection;
use std::path::Path;

/// The lanes of `f`; SQLite shows no row version, and a claim's update changes the served turn.
fn lanes_of(path: &Path) -> Vec<LaneRow> {
    let conn = Connection::open(path).expect("open beside the store");
    conn.prepare("SELECT key, served, touched_at, '' FROM flow_keys WHERE function = 'f' ORDER BY key")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn a_claim_that_finds_every_lane_full_writes_nothing_and_one_that_takes_a_run_moves_its_lane() {
    let (dir, store) = fresh();
    let path = dir.path().join("plinth.db");
    a_claim_that_finds_every_lane_full_moves_no_lane(&store, async || lanes_of(&path)).await;
}

#[tokio::test]
async fn a_throttled_lane_that_admits_nothing_is_not_written_and_says_when() {
    let (dir, store) = fresh();
    let path = dir.path().join("plinth.db");
    a_throttled_lane_that_admits_nothing_still_says_when(&store, async || lanes_of(&path)).await;
}
