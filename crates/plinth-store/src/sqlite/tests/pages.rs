//! Pages of runs on SQLite read one range of an index, whatever the filter: the statements are
//! checked by their plans and by the virtual machine's steps on a table where the function asked
//! for has thousands of runs in another status.

use super::super::migrate::{MIGRATIONS, migrate};
use super::super::read::{list, list_query};
use crate::ListFilter;
use plinth_core::RunStatus;
use rusqlite::{Connection, StatementStatus, params, params_from_iter};

/// A database with `hold` queued `held` times between older and newer succeeded runs of `many`,
/// then one failed and one cancelled run of `many`, ids in the order written.
fn table(held: usize) -> Connection {
    let mut conn = Connection::open_in_memory().expect("an in-memory database");
    migrate(&mut conn, MIGRATIONS).expect("migrations apply");
    let tx = conn.transaction().expect("a transaction");
    {
        let mut put = tx
            .prepare(
                "INSERT INTO runs (id, function, status, max_attempts, input, created_at, next_attempt_at, correlation_id) \
                 VALUES (?1, ?2, ?3, 3, '{}', ?4, ?4, ?5)",
            )
            .expect("the insert prepares");
        let mut n = 0_i64;
        let mut add = |function: &str, status: &str, count: usize| {
            for _ in 0..count {
                n += 1;
                let correlation = if function == "hold" { "held" } else { "other" };
                put.execute(params![format!("{n:026}"), function, status, n, correlation]).expect("a run is written");
            }
        };
        add("many", "succeeded", 100);
        add("hold", "queued", held);
        add("many", "succeeded", 100);
        add("many", "failed", 1);
        add("many", "cancelled", 1);
    }
    tx.commit().expect("the runs commit");
    conn
}

/// The ids of the page and the virtual machine steps its statement took.
fn page(conn: &Connection, f: &ListFilter) -> (Vec<String>, i32) {
    let (sql, args) = list_query(f);
    let mut stmt = conn.prepare(&sql).expect("the page statement prepares");
    let ids = stmt
        .query_map(params_from_iter(args), |row| row.get::<_, String>(0))
        .expect("the page reads")
        .collect::<Result<Vec<_>, _>>()
        .expect("ids");
    (ids, stmt.get_status(StatementStatus::VmStep))
}

fn plan(conn: &Connection, f: &ListFilter) -> Vec<String> {
    let (sql, args) = list_query(f);
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("the plan prepares");
    stmt.query_map(params_from_iter(args), |row| row.get::<_, String>(3))
        .expect("the plan")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn filter(function: Option<&str>, status: Option<RunStatus>) -> ListFilter {
    ListFilter { function: function.map(str::to_string), status, limit: 10, ..ListFilter::default() }
}

#[test]
fn a_function_with_no_run_in_the_status_asked_reads_nothing_else() {
    let conn = table(20_000);
    let (ids, steps) = page(&conn, &filter(Some("hold"), Some(RunStatus::Succeeded)));
    assert!(ids.is_empty(), "hold has no succeeded run: {ids:?}");
    // Walking the 200 succeeded runs would take thousands of steps; the 20,000 queued ones, far more.
    assert!(steps < 200, "an empty range read at once, took {steps} steps");
    let (ids, steps) = page(&conn, &filter(Some("many"), Some(RunStatus::Queued)));
    assert!(ids.is_empty(), "many has no queued run: {ids:?}");
    assert!(steps < 200, "took {steps} steps past 20,000 queued runs of hold");
    let (ids, steps) = page(&conn, &filter(Some("hold"), None));
    assert_eq!(ids.first(), Some(&format!("{:026}", 20_100)), "the newest held run first");
    assert_eq!(ids.len(), 11, "a page and one more");
    assert!(steps < 2_000, "a page of 20,000 queued runs read as a page, took {steps} steps");
    let steps_at = |held| page(&table(held), &filter(Some("many"), Some(RunStatus::Failed))).1;
    assert_eq!(steps_at(10), steps_at(5_000), "the page's cost does not grow with another function's runs");
}

#[test]
fn a_page_of_one_function_merges_its_statuses_newest_first() {
    let conn = table(30);
    let (ids, steps) = page(&conn, &filter(Some("many"), None));
    let expected: Vec<String> = [232, 231, 230, 229, 228, 227, 226, 225, 224, 223, 222].map(|n| format!("{n:026}")).to_vec();
    assert_eq!(ids, expected, "the cancelled, the failed, then succeeded runs, newest first, one past the page");
    assert!(steps < 2_000, "one page from each status's range, took {steps} steps");
    let first = list(&conn, &filter(Some("many"), None)).expect("a page");
    assert_eq!(first.runs.len(), 10);
    let cursor = first.next_cursor.clone().expect("more than a page");
    let next = list(&conn, &ListFilter { before_id: Some(cursor.clone()), ..filter(Some("many"), None) }).expect("the next");
    assert!(next.runs.iter().all(|r| r.run_id < cursor), "the next page is older than the cursor");
    assert_eq!(next.runs.first().map(|r| r.run_id.clone()), Some(format!("{:026}", 222)));
    let (older, _) = page(&conn, &ListFilter { before_id: Some(format!("{:026}", 101)), ..filter(Some("many"), None) });
    assert_eq!(older.len(), 11, "before the held runs: the oldest succeeded runs of many");
    assert_eq!(older.first(), Some(&format!("{:026}", 100)));
}

#[test]
fn pages_that_name_nothing_known_are_empty() {
    let conn = table(30);
    assert!(page(&conn, &filter(Some("nobody"), None)).0.is_empty(), "an unknown function");
    assert!(page(&conn, &filter(Some("nobody"), Some(RunStatus::Queued))).0.is_empty());
    let past = ListFilter { before_id: Some(format!("{:026}", 1)), ..filter(Some("many"), None) };
    assert!(page(&conn, &past).0.is_empty(), "a cursor before every run");
    let empty = table(0);
    assert!(page(&empty, &filter(None, Some(RunStatus::Waiting))).0.is_empty(), "a status no run is in");
}

#[test]
fn each_filter_reads_the_index_that_names_fewest_runs() {
    let conn = table(30);
    let correlated = ListFilter { correlation_id: Some("held".into()), ..filter(Some("hold"), Some(RunStatus::Queued)) };
    let evented = ListFilter { event_id: Some("01E".into()), ..filter(Some("hold"), Some(RunStatus::Queued)) };
    let cases = [
        (filter(Some("hold"), Some(RunStatus::Queued)), "runs_by_function_status (function=? AND status=?)"),
        (filter(Some("hold"), None), "runs_by_function_status (function=? AND status=?)"),
        (filter(None, Some(RunStatus::Failed)), "runs_by_status (status=?)"),
        (correlated, "runs_by_correlation (correlation_id=?)"),
        (evented, "runs_by_event (event_id=?)"),
        (
            ListFilter { trigger: Some("cron".into()), ..filter(None, Some(RunStatus::Failed)) },
            "runs_by_trigger (trigger_type=?)",
        ),
        (ListFilter { trigger: Some("cron".into()), ..filter(Some("hold"), None) }, "runs_by_trigger (trigger_type=?)"),
    ];
    for (f, index) in cases {
        let steps = plan(&conn, &f);
        let searches: Vec<&String> = steps.iter().filter(|s| s.contains(" runs ")).collect();
        assert!(!searches.is_empty(), "{f:?} reads runs: {steps:?}");
        assert!(searches.iter().all(|s| s.starts_with("SEARCH") && s.contains(index)), "{f:?} reads {index}: {steps:?}");
    }
    let everything = plan(&conn, &filter(None, None));
    assert!(everything.iter().all(|s| !s.contains("TEMP B-TREE")), "the newest runs by the primary key: {everything:?}");
}
