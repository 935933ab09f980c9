//! What a claim writes to the lanes of a limited function on PostgreSQL: the shared cases of
//! `conformance::lanes`, with the lanes read beside the store.

use super::{database_url, fresh, side_pool};
use crate::conformance::lanes::{
    LaneRow, a_claim_that_finds_every_lane_full_moves_no_lane, a_throttled_lane_that_admits_nothing_still_says_when,
};
use sqlx::PgPool;

/// The lanes of `f` with their row versions: an update, even one writing the same values,
/// gives the row a new `xmin`.
async fn lanes_of(side: &PgPool, schema: &str) -> Vec<LaneRow> {
    let sql = format!("SELECT key, served, touched_at, xmin::text FROM \"{schema}\".flow_keys WHERE function = 'f' ORDER BY key");
    sqlx::query_as(&sql).fetch_all(side).await.expect("read the lanes")
}

#[tokio::test]
async fn a_claim_that_finds_every_lane_full_updates_no_lane() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&database_url().expect("set")).await;
    a_claim_that_finds_every_lane_full_moves_no_lane(&store, async || lanes_of(&side, &scratch.schema).await).await;
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn a_throttled_lane_that_admits_nothing_is_not_updated_and_says_when() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let side = side_pool(&database_url().expect("set")).await;
    a_throttled_lane_that_admits_nothing_still_says_when(&store, async || lanes_of(&side, &scratch.schema).await).await;
    side.close().await;
    store.close().await;
    scratch.drop_now().await;
}
