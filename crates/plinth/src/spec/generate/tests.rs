use super::markers::{self, begin, end, find};
use super::settings::{PRECEDENCE, env_vars, serve_flags};
use super::*;
use crate::config::Source;
use crate::spec::lint::lint;
use std::path::PathBuf;

fn hello_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hello/component.yaml"))
}

fn hello() -> Component {
    Component::load(&hello_path()).expect("the example component loads")
}

fn component(text: &str) -> Component {
    Component::parse(text, "component.yaml", "component.yaml".into(), ".".into()).expect("valid component")
}

fn block(name: &str, c: &Component) -> String {
    render_block(name, &Facts::new(c)).expect("known block")
}

#[test]
fn a_new_document_is_001_with_every_block_and_only_questions_to_lint() {
    let doc = new_document(&hello());
    let names: Vec<&str> = BLOCKS.iter().map(|(n, _)| *n).collect();
    assert_eq!(document::block_names(), names, "the layout holds every block once, in BLOCKS order");
    let found = find(&doc).expect("balanced markers");
    assert_eq!(found.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), names);
    let findings = lint(&doc);
    assert!(findings.len() >= 10, "{findings:?}");
    let errors: Vec<_> = findings.iter().filter(|f| f.severity == crate::spec::lint::Severity::Error).collect();
    assert!(errors.iter().all(|f| f.code == "question"), "only questions are left: {findings:?}");
    assert!(findings.iter().all(|f| f.code == "question" || f.code == "optional-section"), "{findings:?}");
    assert!(doc.starts_with("# hello - 1.0 Component Specification\n"));
}

#[test]
fn the_defaults_are_the_ones_config_resolve_applies() {
    let c = hello();
    let facts = Facts::new(&c);
    let flags = serve_flags(&facts.defaults);
    assert!(flags.len() >= 20, "{flags:?}");
    let get = |long: &str| flags.iter().find(|f| f.long == long).unwrap_or_else(|| panic!("{long} missing"));
    assert_eq!((get("--host").default.as_str(), get("--host").kind), ("127.0.0.1", "string"));
    assert_eq!((get("--port").default.as_str(), get("--port").kind), ("8000", "integer"));
    assert_eq!((get("--lease").default.as_str(), get("--lease").kind), ("30s", "duration"));
    assert_eq!((get("--config").default.as_str(), get("--config").kind), ("component.yaml", "path"));
    assert_eq!(get("--log-dir").default, "none");
    for f in &flags {
        assert!(f.env.as_deref().is_some_and(|e| e.starts_with("PLINTH_")), "{} has no PLINTH_* variable", f.long);
        // Why: the burst's default is computed from the rate, which the help text says in words.
        assert!(
            !f.default_in_words() || f.id == "rate_burst",
            "{}: --help says {:?}, config.rs applies {}",
            f.long,
            f.help_default,
            f.default
        );
    }
}

#[test]
fn cli_flags_and_env_vars_tables_come_from_clap() {
    let c = hello();
    let flags = block("cli-flags", &c);
    assert!(flags.contains("| `--port` | integer | `8000` | `PLINTH_PORT` | Port to listen on; 0 picks a free one |"), "{flags}");
    assert!(!flags.contains("[default:"), "the default has its own column: {flags}");
    assert!(flags.contains("| `--rate-burst` | integer | twice the rate | `PLINTH_RATE_BURST` |"), "{flags}");
    let vars = block("env-vars", &c);
    assert!(vars.contains("| `PLINTH_URL` | string | `http://127.0.0.1:8000` | `--url` |"), "{vars}");
    assert!(vars.contains("`plinth run`") && vars.contains("`plinth spec status`"), "{vars}");
    assert!(vars.contains("refers to no other environment variable"), "{vars}");
    let all = env_vars(&[]);
    let config = all.iter().find(|v| v.name == "PLINTH_CONFIG").expect("PLINTH_CONFIG");
    assert!(config.commands.contains(&"serve".to_string()) && config.commands.contains(&"spec generate".to_string()));
}

#[test]
fn variables_the_component_file_refers_to_are_listed() {
    let c = component(
        "component: {name: svc, version: '1'}\nfunctions:\n  - name: work\n    handler:\n      http: {url: 'http://x/work', headers: {Authorization: 'Bearer ${TOKEN}'}}\n\
         auth:\n  api_keys:\n    - {name: ops, from_env: OPS_KEY, scopes: [admin]}\n",
    );
    let vars = block("env-vars", &c);
    assert!(vars.contains("| `TOKEN` | the `Authorization` header sent to the `work` handler |"), "{vars}");
    assert!(vars.contains("| `OPS_KEY` | the API key `ops` |"), "{vars}");
    let endpoints = block("endpoints", &c);
    assert!(endpoints.contains("| `POST /run` |") && endpoints.contains("| `runs:write` |"), "{endpoints}");
    assert!(endpoints.lines().any(|l| l.starts_with("| `GET /health` |") && l.ends_with("| public |")), "{endpoints}");
    let file = block("config-file", &c);
    assert!(
        file.contains("sets nothing") && file.contains("API key `ops` (from the variable `OPS_KEY`) holds `admin`"),
        "{file}"
    );
}

#[test]
fn flow_rules_are_described() {
    let c = component(
        "component: {name: flow, version: '1'}\nfunctions:\n  - name: charge\n    handler: {rust: noop}\n    policy:\n      \
         concurrency: {limit: 2, key: input.tenant}\n      throttle: {limit: 10, period: 1s, burst: 3, key: input.tenant}\n      \
         rate_limit: {limit: 50, period: 1h}\n      debounce: {period: 2s, max_wait: 10s}\n      \
         singleton: {key: input.tenant, mode: cancel}\n",
    );
    let functions = block("functions", &c);
    assert!(
        functions.contains(
            "2 at once per `input.tenant` across nodes; at most 10 starts per 1s (burst 3) per `input.tenant`; at most 50 new \
             runs per 1h; starts 2s after the last trigger (at most 10s); one unfinished run per `input.tenant` (a \
             new one cancels it);"
        ),
        "{functions}"
    );
}

#[test]
fn functions_endpoints_metrics_health_and_errors_are_described() {
    let c = hello();
    let functions = block("functions", &c);
    assert!(functions.contains("| `fail` | Always exits non-zero, so retries and backoff show. | command `sh handlers/fail.sh` | 3 attempts, backoff 500ms..5s ×2 (full jitter); timeout 10s; up to `--workers` at once per node; no queue limit | none: any JSON |"), "{functions}");
    assert!(functions.contains("Input schema of `sleep`") && functions.contains("\"required\": ["), "{functions}");
    let endpoints = block("endpoints", &c);
    for route in
        ["`GET /health`", "`GET /ready`", "`POST /run`", "`GET /runs/{id}`", "`POST /runs/{id}/cancel`", "`GET /openapi.json`"]
    {
        assert!(endpoints.contains(route), "{route} missing: {endpoints}");
    }
    let metrics = block("metrics", &c);
    for d in &plinth_core::metrics::METRICS {
        assert!(metrics.contains(&format!("| `plinth_{}` |", d.name)), "{} missing: {metrics}", d.name);
    }
    assert!(metrics.contains("| `plinth_requests_total` | Counter | `method`, `route`, `status` |"), "{metrics}");
    let health = block("health-checks", &c);
    assert!(health.contains("| `GET /health` |") && health.contains("`503`: Unhealthy"), "{health}");
    assert!(health.contains("- `database`: The run store"), "{health}");
    assert!(
        health.contains("- `nats`: The NATS bridge") && health.contains("- `inngest`: The Inngest apps"),
        "optional checks too: {health}"
    );
    let tracing = block("tracing", &c);
    for d in &plinth_core::trace::SPANS {
        assert!(tracing.contains(&format!("| `{}` | {} |", d.name, d.kind)), "{} missing: {tracing}", d.name);
    }
    assert!(tracing.contains("`run_id`, `function`, `attempt`, `correlation_id`, `outcome`, `error_code`"), "{tracing}");
    assert!(tracing.contains("spans_dropped_total") && tracing.contains("`TRACEPARENT`"), "{tracing}");
    let errors = block("error-codes", &c);
    for code in plinth_core::Code::ALL {
        assert!(errors.contains(&format!("| `{}` | `{}` |", code.as_str(), code.entry().name)), "{errors}");
    }
    let file = block("config-file", &c);
    assert!(
        file.contains("| `server.port` | `8000` | `8000` | `--port` |") && file.contains("| `server.lease` | `15s` | `30s` |"),
        "{file}"
    );
}

#[test]
fn the_metric_prefix_of_the_file_is_used() {
    let c = component(
        "component: {name: svc, version: '1'}\nserver: {metrics_prefix: dynamo_svc}\nfunctions:\n  - {name: work, handler: {command: {argv: [cat]}}}\n",
    );
    let metrics = block("metrics", &c);
    assert!(metrics.contains("`dynamo_svc_runs_total`") && !metrics.contains("`plinth_runs_total`"), "{metrics}");
}

#[test]
fn precedence_is_the_order_config_resolve_applies() {
    assert_eq!(PRECEDENCE, [Source::Flag, Source::Env, Source::File, Source::Default]);
    let c = hello();
    let args = ServeArgs { port: Some(9999), ..ServeArgs::default() };
    let with_flag = crate::config::resolve(&args, None, &c).expect("resolve");
    assert_eq!(with_flag.port, 9999, "a flag beats the file");
    let from_file = crate::config::resolve(&ServeArgs::default(), None, &c).expect("resolve");
    assert_eq!(from_file.lease, std::time::Duration::from_secs(15), "the file beats the default");
    assert_eq!(from_file.workers, 16, "the default applies last");
    let text = block("config-precedence", &c);
    assert!(text.starts_with("1. Command-line flags") && text.contains("4. Plinth's defaults"), "{text}");
}

#[test]
fn invalid_component_files_are_refused_like_serve_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("component.yaml");
    std::fs::write(&bad, "component: {name: Bad Name, version: '1'}\nfunctions: []\n").expect("write");
    assert!(load(&bad).is_err_and(|e| e.contains("component.name") && e.contains("PLINTH_001")));
    std::fs::write(
        &bad,
        "component: {name: ok, version: '1'}\nserver: {log_level: loud}\nfunctions:\n  - {name: f, handler: {rust: x}}\n",
    )
    .expect("write");
    assert!(load(&bad).is_err_and(|e| e.contains("server.log_level")), "the server section is validated too");
    assert!(load(&dir.path().join("missing.yaml")).is_err_and(|e| e.contains("cannot read")));
}

#[test]
fn markers_are_found_outside_code_fences_and_must_balance() {
    let doc = format!("# t\n```\n{}\n```\n{}\nbody\n{}\n", begin("x"), begin("a"), end("a"));
    let found = find(&doc).expect("balanced");
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].name.as_str(), found[0].line), ("a", 5));
    assert_eq!(&doc[found[0].body.clone()], "body\n");
    let cases = [
        (format!("{}\n", begin("a")), "never closed"),
        (format!("{}\n{}\n", begin("a"), begin("b")), "inside block `a`"),
        (format!("{}\n", end("a")), "without a `begin a`"),
        (format!("{}\n{}\n", begin("a"), end("b")), "closes block `a`"),
        (format!("{}\n{}\n{}\n{}\n", begin("a"), end("a"), begin("a"), end("a")), "appears twice"),
        ("<!-- plinth:generated start a -->\n".to_string(), "malformed marker"),
        ("<!-- plinth:generated begin a\n".to_string(), "malformed marker"),
    ];
    for (text, want) in cases {
        assert!(find(&text).is_err_and(|e| e.contains(want)), "{text:?} should fail with {want:?}: {:?}", find(&text));
    }
}

#[test]
fn refresh_rewrites_only_the_blocks_and_check_shows_the_diff() {
    let c = hello();
    let facts = Facts::new(&c);
    let path = std::path::Path::new("SPEC.md");
    let fresh = new_document(&c);
    assert_eq!(check(path, &fresh, &facts).expect("check"), (0, String::new()));
    let drifted = fresh
        .replace("| `--port` | integer | `8000`", "| `--port` | integer | `8080`")
        .replace("> QUESTION: What changed in each version of the component?", "Version 0.1.0: the first.");
    let (n, diff) = check(path, &drifted, &facts).expect("check");
    assert_eq!(n, 1);
    assert!(diff.starts_with("--- SPEC.md (block `cli-flags`, line "), "{diff}");
    assert!(diff.contains("\n-| `--port` | integer | `8080`") && diff.contains("\n+| `--port` | integer | `8000`"), "{diff}");
    assert!(diff.contains("\n@@ -"), "{diff}");
    let (refreshed, changed) = refresh(path, &drifted, &facts).expect("refresh");
    assert_eq!(changed, ["cli-flags"]);
    assert!(refreshed.contains("Version 0.1.0: the first.") && refreshed.contains("| `--port` | integer | `8000`"));
    assert_eq!(check(path, &refreshed, &facts).expect("check").0, 0);
    assert_eq!(refresh(path, &refreshed, &facts).expect("refresh").1, Vec::<String>::new());
}

#[test]
fn documents_without_blocks_or_with_unknown_ones_are_refused() {
    let c = hello();
    let facts = Facts::new(&c);
    let path = std::path::Path::new("SPEC.md");
    assert!(check(path, "# spec\n\nno markers\n", &facts).is_err_and(|e| e.contains("no generated blocks")));
    let unknown = format!("# spec\n{}\n{}\n", begin("weather"), end("weather"));
    assert!(check(path, &unknown, &facts).is_err_and(|e| e.contains("SPEC.md:2: unknown generated block `weather`")));
    assert!(refresh(path, &format!("{}\n", begin("metrics")), &facts).is_err_and(|e| e.contains("never closed")));
}

#[test]
fn the_diff_is_unified_with_context() {
    assert_eq!(markers::diff("a\nb\n", "a\nb\n", 1), "");
    let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
    let new = "1\n2\n3\nfour\n5\n6\n7\n8\n9\nten\n";
    assert_eq!(markers::diff(old, new, 10), "@@ -11,5 +11,5 @@\n 2\n 3\n-4\n+four\n 5\n 6\n@@ -17,2 +17,3 @@\n 8\n 9\n+ten\n");
}
