//! A page of runs is planned once per connection, not at every read, once the table is large:
//! where the plan's shape is fixed, the limit is written into the statement (a `LIMIT $n` made
//! PostgreSQL cost the generic plan for a tenth of the table and plan each read anew). Where a
//! value picks the index, the limit stays a parameter and each read gets its own plan.

use super::{database_url, fresh};
use crate::{ListFilter, Store};
use plinth_core::RunStatus;
use sqlx::{Connection, Executor, PgConnection};

/// 100,000 runs of `hold` queued and a few hundred ended runs of five other functions
/// (`done0` to `done4`), analyzed: the backlog the bench's flow part builds, in a component of
/// several functions. Why several: with one function beside `hold`, PostgreSQL's generic plan
/// for an unknown function was costed near the custom one for `hold` and kept; with more, it is
/// costed for a smaller share of the table, dearer than the custom plan of the function that
/// holds nearly all of it, and a page of `hold` was planned anew at every read (session 43).
async fn backlog(conn: &mut PgConnection, schema: &str) {
    conn.execute(format!("SET search_path TO \"{schema}\"").as_str()).await.expect("search path");
    let runs = "INSERT INTO runs (id, function, status, attempt, max_attempts, input, created_at, next_attempt_at, \
           correlation_id, finished_at) \
         SELECT lpad(g::text, 26, '0'), CASE WHEN g <= 300 THEN 'done' || g % 5 ELSE 'hold' END, \
           CASE WHEN g <= 300 THEN 'succeeded' ELSE 'queued' END, 0, 1, 'null', g, g, 'c' || g % 7, \
           CASE WHEN g <= 300 THEN g END \
         FROM generate_series(1, 100300) g";
    conn.execute(runs).await.expect("fill");
    conn.execute("ANALYZE runs").await.expect("analyze");
}

/// Prepares `sql` as `name` (`types` its parameters), executes it `times` with `values`, and
/// says how often PostgreSQL used its generic plan and how often it planned the call anew.
async fn plans_used(conn: &mut PgConnection, name: &str, types: &str, sql: &str, values: &str, times: usize) -> (i64, i64) {
    let types = if types.is_empty() { String::new() } else { format!("({types})") };
    conn.execute(format!("PREPARE {name}{types} AS {sql}").as_str()).await.expect("prepare");
    let call = if values.is_empty() { format!("EXECUTE {name}") } else { format!("EXECUTE {name}({values})") };
    for _ in 0..times {
        conn.execute(call.as_str()).await.expect("execute");
    }
    sqlx::query_as("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .expect("the statement's counts")
}

/// The pages the dashboard and the API read most, with what their parameters are and the values
/// sent: (name, filter, types, values).
fn pages() -> Vec<(&'static str, ListFilter, &'static str, &'static str)> {
    let one = |function: Option<&str>, status| ListFilter {
        function: function.map(str::to_string),
        status,
        limit: 50,
        ..ListFilter::default()
    };
    vec![
        ("newest", one(None, None), "", ""),
        ("of_hold_succeeded", one(Some("hold"), Some(RunStatus::Succeeded)), "text, text", "'hold', 'succeeded'"),
        ("of_hold_queued", one(Some("hold"), Some(RunStatus::Queued)), "text, text", "'hold', 'queued'"),
        ("of_hold_any", one(Some("hold"), None), "text", "'hold'"),
        ("succeeded_any", one(None, Some(RunStatus::Succeeded)), "text", "'succeeded'"),
    ]
}

#[tokio::test]
async fn a_page_keeps_one_plan_where_its_limit_as_a_parameter_was_planned_at_every_read() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut conn: PgConnection = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    backlog(&mut conn, &scratch.schema).await;
    for (name, filter, types, values) in pages() {
        let (sql, args) = super::super::read::list_query(&filter);
        assert!(sql.contains("LIMIT 51"), "{name}: the limit is in the statement: {sql}");
        assert_eq!(args.len(), types.split(", ").filter(|t| !t.is_empty()).count(), "{name}: {sql}");
        let (generic, custom) = plans_used(&mut conn, name, types, &sql, values, 12).await;
        assert!(generic >= 6 && custom <= 6, "{name}: planned once, then its plan kept: {generic} generic, {custom} custom");

        // Nor is the function's form: named to the planner, the function holding nearly all
        // the table got a plan of its own at every call.
        let hidden = "function = ANY((SELECT ARRAY[$1::text])::text[])";
        assert_eq!(sql.contains(hidden), filter.function.is_some(), "{name}: {sql}");
        if filter.function.is_some() {
            let named = sql.replace(hidden, "function = ANY(ARRAY[$1])");
            let (generic, custom) = plans_used(&mut conn, &format!("{name}_named"), types, &named, values, 12).await;
            assert_eq!((generic, custom), (0, 12), "{name} with the function named: planned at every call");
        }

        // The check is not vacuous: the same statement with its limit a parameter is planned at
        // every call on this table.
        let with_param = sql.replace("LIMIT 51", &format!("LIMIT ${}", args.len() + 1));
        let types = if types.is_empty() { "bigint".to_string() } else { format!("{types}, bigint") };
        let values = if values.is_empty() { "51".to_string() } else { format!("{values}, 51") };
        let (generic, custom) = plans_used(&mut conn, &format!("{name}_param"), &types, &with_param, &values, 12).await;
        assert_eq!((generic, custom), (0, 12), "{name} with `LIMIT $n`: planned at every call");
    }

    // The pages read through the store are the right ones all the same.
    let pages: Vec<_> = pages().into_iter().map(|(_, f, _, _)| f).collect();
    let newest = store.list(pages[0].clone()).await.expect("newest");
    assert_eq!(newest.runs.len(), 50);
    assert_eq!(newest.runs[0].run_id, format!("{:0>26}", 100_300), "newest first");
    assert_eq!(newest.next_cursor.as_deref(), Some(format!("{:0>26}", 100_251).as_str()), "a page of 50, then more");
    assert!(store.list(pages[1].clone()).await.expect("none").runs.is_empty(), "no succeeded run of hold");
    let done = store.list(pages[4].clone()).await.expect("succeeded");
    assert_eq!(done.runs[0].run_id, format!("{:0>26}", 300), "the newest succeeded run, past the queue");
    assert!(done.runs.iter().all(|r| r.function.starts_with("done") && r.status == RunStatus::Succeeded));
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}

#[tokio::test]
async fn a_page_filtered_by_a_value_that_picks_the_index_keeps_its_limit_a_parameter() {
    let Some((mut scratch, store)) = fresh().await else { return };
    let mut conn: PgConnection = PgConnection::connect(&database_url().expect("set")).await.expect("connect");
    backlog(&mut conn, &scratch.schema).await;
    let filters = [
        ListFilter { correlation_id: Some("c3".into()), limit: 50, ..ListFilter::default() },
        ListFilter { trigger: Some("api".into()), limit: 50, ..ListFilter::default() },
        ListFilter { created_after: Some(100_290), limit: 50, ..ListFilter::default() },
        ListFilter { status: Some(RunStatus::Queued), correlation_id: Some("c3".into()), limit: 50, ..ListFilter::default() },
    ];
    for filter in filters {
        let (sql, args) = super::super::read::list_query(&filter);
        assert!(sql.ends_with(&format!("LIMIT ${}", args.len())), "the limit is the last parameter: {sql}");
        assert!(!sql.contains("LIMIT 51"), "{sql}");
    }
    // A page by correlation id: the runs of `c3`, newest first, the limit applied.
    let page = store.list(ListFilter { correlation_id: Some("c3".into()), limit: 5, ..ListFilter::default() }).await;
    let page = page.expect("page by correlation id");
    assert_eq!(page.runs.len(), 5);
    assert!(page.runs.iter().all(|r| r.correlation_id == "c3"));
    assert!(page.runs.windows(2).all(|w| w[0].run_id > w[1].run_id), "newest first");
    // Past the newest run, a filtered page is empty, however the limit is given.
    let past = ListFilter { created_after: Some(200_000), limit: 1, ..ListFilter::default() };
    let past = store.list(past).await.expect("nothing after");
    assert!(past.runs.is_empty() && past.next_cursor.is_none());
    conn.close().await.expect("close");
    store.close().await;
    scratch.drop_now().await;
}
