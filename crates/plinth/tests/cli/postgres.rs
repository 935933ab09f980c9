//! `plinth serve` on PostgreSQL: runs end to end in their own schema, and survive a restart.
//! Needs `PLINTH_TEST_DATABASE_URL`; skipped loudly without it, except under `CI`.

use crate::harness::{Served, client, component_dir, send, submit};
use crate::pg::{Schema, database_url};
use serde_json::json;

const COMPONENT: &str =
    "component: {name: pg, version: '1'}\nfunctions:\n  - name: echo\n    handler: {command: {argv: [cat]}}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_served_from_postgres_and_survive_a_restart() {
    let Some(url) = database_url() else { return };
    let schema = Schema { url: url.clone(), name: format!("plinth_cli_{}", std::process::id()) };
    let (dir, config) = component_dir(COMPONENT);
    let args = ["--database-url", url.as_str(), "--database-schema", schema.name.as_str()];
    let c = client();
    let first = Served::start(&config, &args, dir.path());
    let id = submit(&c, &first, "echo", json!({"n": 1})).await;
    let (code, run) = send(c.get(first.url(&format!("/runs/{id}?wait=20")))).await;
    assert_eq!((code, run["status"].as_str()), (200, Some("succeeded")), "{run}");
    let (_, health) = send(c.get(first.url("/health"))).await;
    assert_eq!(health["checks"]["database"]["backend"], "postgres", "{health}");
    assert!(
        first
            .logs()
            .iter()
            .any(|l| l["message"] == "listening" && l["database"].as_str().is_some_and(|d| d.contains(&schema.name)))
    );
    first.kill9();

    let second = Served::start(&config, &args, dir.path());
    let (code, run) = send(c.get(second.url(&format!("/runs/{id}")))).await;
    assert_eq!((code, run["output"].clone()), (200, json!({"n": 1})), "the run is still there after a restart: {run}");
}

/// A long-poll on one node returns a run the other node accepted and ran, both ways round: the
/// waiting node asks the other to announce its ends (decision 0045).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_one_node_returns_a_run_the_other_ran() {
    let Some(url) = database_url() else { return };
    let schema = Schema { url: url.clone(), name: format!("plinth_cli_two_{}", std::process::id()) };
    let (dir, config) = component_dir(
        "component: {name: pg, version: '1'}\nfunctions:\n  - name: slow\n    handler: {command: {argv: [sh, -c, 'sleep 0.3; cat']}}\n",
    );
    let args = ["--database-url", url.as_str(), "--database-schema", schema.name.as_str()];
    let c = client();
    let a = Served::start(&config, &args, dir.path());
    let b = Served::start(&config, &args, dir.path());
    for (i, (accepting, waiting)) in [(&a, &b), (&b, &a)].into_iter().enumerate() {
        let id = submit(&c, accepting, "slow", json!({"i": i})).await;
        let (code, run) = send(c.get(waiting.url(&format!("/runs/{id}?wait=20")))).await;
        assert_eq!((code, run["status"].as_str(), run["output"].clone()), (200, Some("succeeded"), json!({"i": i})), "{run}");
    }
    let (code, run) = send(c.get(b.url("/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV?wait=1"))).await;
    assert_eq!(code, 404, "an unknown run is not found, waited for or not: {run}");
}

#[test]
fn an_unreachable_postgres_stops_start_up_without_echoing_the_password() {
    let (dir, config) = component_dir(COMPONENT);
    let out = crate::harness::plinth(
        &[
            "serve",
            "--config",
            config.to_str().expect("utf-8"),
            "--port",
            "0",
            "--database-url",
            "postgres://u:hunter2@127.0.0.1:1/db",
        ],
        &[],
        dir.path(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PLINTH_002"), "{stderr}");
    let all = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
    assert!(!all.contains("hunter2"), "{all}");
}

#[test]
fn an_invalid_schema_name_stops_start_up() {
    let (dir, config) = component_dir(COMPONENT);
    let out = crate::harness::plinth(
        &[
            "serve",
            "--config",
            config.to_str().expect("utf-8"),
            "--database-url",
            "postgres://h/db",
            "--database-schema",
            "Bad-Name",
        ],
        &[],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("database_schema"));
}

/// How many migrations the store of `backend` has: one file each.
fn migrations(backend: &str) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plinth-store/src").join(backend).join("migrations");
    std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).count()
}

#[test]
fn migrate_creates_the_schema_once_and_refuses_bad_settings() {
    let Some(url) = database_url() else { return };
    let schema = Schema { url: url.clone(), name: format!("plinth_migrate_{}", std::process::id()) };
    let (dir, config) = component_dir(COMPONENT);
    let args =
        ["migrate", "--config", config.to_str().expect("utf-8"), "--database-url", &url, "--database-schema", &schema.name];
    let first = crate::harness::plinth(&args, &[], dir.path());
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{stdout}{}", String::from_utf8_lossy(&first.stderr));
    assert!(
        stdout.contains(&format!(
            "PostgreSQL schema {}: applied {n} migration(s); schema version {n}",
            schema.name,
            n = migrations("postgres")
        )),
        "{stdout}"
    );
    let again = crate::harness::plinth(&args, &[], dir.path());
    assert!(String::from_utf8_lossy(&again.stdout).contains("applied 0 migration(s)"), "a second pass applies nothing");
    let password = url.replacen("postgres://postgres@", "postgres://postgres:hunter2@", 1);
    let unreachable = crate::harness::plinth(
        &["migrate", "--config", config.to_str().expect("utf-8"), "--database-url", "postgres://u:hunter2@127.0.0.1:1/db"],
        &[],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(unreachable.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("PLINTH_002") && !stderr.contains("hunter2"), "{stderr}");
    let bad = crate::harness::plinth(
        &["migrate", "--config", config.to_str().expect("utf-8"), "--database-url", &password, "--database-schema", "pg_nope"],
        &[],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(2), "an invalid schema name is a settings error");
}

#[test]
fn migrate_creates_a_sqlite_database_and_refuses_a_directory() {
    let (dir, config) = component_dir(COMPONENT);
    let db = dir.path().join("sub").join("runs.db");
    let url = format!("sqlite://{}", db.display());
    let out = crate::harness::plinth(
        &["migrate", "--config", config.to_str().expect("utf-8"), "--database-url", &url],
        &[],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let n = migrations("sqlite");
    assert!(out.status.success() && stdout.contains(&format!("applied {n} migration(s); schema version {n}")), "{stdout}");
    assert!(db.is_file());
    let url = format!("sqlite://{}", dir.path().display());
    let out = crate::harness::plinth(
        &["migrate", "--config", config.to_str().expect("utf-8"), "--database-url", &url],
        &[],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "a directory is not a database: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PLINTH_002"));
}
