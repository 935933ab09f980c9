//! Copies of runs written into a PostgreSQL schema behind the store's back, read back through it.

use super::{database_url, fresh};
use crate::StoreError;
use crate::conformance::copies::{copies_are_runs_like_any_other, plan, templates};
use crate::copies::RunCopies;
use crate::copies::postgres::{analyze, checkpoint, copy_runs, data_directory, schema_bytes};
use plinth_core::timefmt::now_micros;

#[tokio::test]
async fn copies_are_written_into_the_schema_and_read_back_as_runs() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let url = database_url().expect("set");
    let (finished, queued) = templates(&store).await;
    let before = schema_bytes(&url, &scratch.schema).await.expect("weigh");
    assert!(before > 0, "a migrated schema has tables");
    let at = now_micros() - 10_000_000;
    for copies in plan(&finished, &queued, at) {
        assert_eq!(copy_runs(&url, &scratch.schema, &copies).await.expect("copy"), copies.count);
    }
    copies_are_runs_like_any_other(&store, &finished, at).await;
    analyze(&url, &scratch.schema).await.expect("statistics of the copies");
    assert!(analyze(&url, "no such schema").await.is_err(), "an invalid schema name is refused");

    let [done, _] = plan(&finished, &queued, at);
    let again = copy_runs(&url, &scratch.schema, &done).await.expect_err("the same ids twice");
    assert!(again.to_string().contains("duplicate key"), "a copy's id taken already is refused: {again}");
    let missing = RunCopies { template: "no-such-run".into(), prefix: "0000X0".into(), ..done.clone() };
    assert_eq!(copy_runs(&url, &scratch.schema, &missing).await.expect("copy"), 0, "no template, no copies");
    assert!(matches!(copy_runs(&url, "no such schema", &done).await, Err(StoreError::Schema(_))), "an invalid name");
    let empty = copy_runs(&url, "plinth_no_such_schema", &done).await.expect_err("a schema without a store");
    assert!(matches!(empty, StoreError::Schema(_)), "{empty}");
    assert!(data_directory(&url).await.expect("ask").is_some(), "the test role may read the data directory");
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn a_checkpoint_is_written_by_a_role_that_may_and_declined_for_one_that_may_not() {
    let Some(url) = database_url() else { return };
    assert!(checkpoint(&url).await.expect("checkpoint"), "the test role may checkpoint");

    // A role of its own, without `pg_checkpoint`: told no, not failed.
    let role = format!("plinth_no_checkpoint_{}", std::process::id());
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.expect("connect");
    let create = format!("CREATE ROLE {role} LOGIN");
    sqlx::Executor::execute(&mut admin, create.as_str()).await.expect("role");
    // Why `role` in the start-up options: the session then runs as that role (`SET ROLE`).
    let as_role = format!("{url}{}options=-crole%3D{role}", if url.contains('?') { '&' } else { '?' });
    let declined = checkpoint(&as_role).await;
    let drop = format!("DROP ROLE {role}");
    sqlx::Executor::execute(&mut admin, drop.as_str()).await.expect("drop the role");
    assert!(!declined.expect("asked"), "a role without the right is told no");

    // No database there: an error, not a yes.
    assert!(checkpoint("postgres://postgres@127.0.0.1:1/postgres").await.is_err(), "unreachable");
}
