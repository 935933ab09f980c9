use super::*;

fn parse(text: &str) -> Result<Component, ConfigError> {
    Component::parse(text, "c.yaml", PathBuf::from("c.yaml"), PathBuf::from("."))
}

const GOOD: &str = r#"
component: {name: hello, version: 1.0.0, owner: team, description: says hello}
server: {port: 9000, lease: 10s}
functions:
  - name: echo
    handler: {command: {argv: [cat]}}
  - name: sleep
    handler: {command: {argv: [sh, sleep.sh], cwd: handlers, env: {A: b}}}
    input_schema:
      type: object
      properties: {seconds: {type: number, minimum: 0}}
      required: [seconds]
    policy:
      retries: {max_attempts: 5, backoff: {initial: 100ms, max: 2s, multiplier: 3}}
      timeout: 1m
      concurrency: 2
  - name: noop
    handler: {rust: noop}
"#;

#[test]
fn parses_a_full_file() {
    let c = parse(GOOD).expect("valid");
    assert_eq!(c.file.component.name, "hello");
    assert_eq!(c.file.server.port, Some(9000));
    assert_eq!(c.file.functions.len(), 3);
    let (i, sleep) = c.function("sleep").expect("sleep");
    assert_eq!(i, 1);
    assert_eq!(sleep.policy.retries.max_attempts, 5);
    assert_eq!(sleep.policy.concurrency.as_ref().map(crate::flow::Concurrency::limit), Some(2));
    assert!(c.schemas[1].is_some() && c.schemas[0].is_none());
    assert_eq!(c.file.functions[2].handler.kind(), "rust");
    assert!(c.function("missing").is_none());
}

#[test]
fn unknown_key_names_the_field() {
    let text = GOOD.replace("concurrency: 2", "concurrency: 2\n      retry_forever: true");
    let e = parse(&text).expect_err("unknown key");
    assert_eq!(e.field, "functions[1].policy.retry_forever");
    assert!(e.reason.contains("retry_forever"), "{}", e.reason);
    assert!(e.to_string().contains("PLINTH_001"));
}

#[test]
fn invalid_values_name_the_field() {
    let cases = [
        (GOOD.replace("max_attempts: 5", "max_attempts: 0"), "functions[1].policy.retries.max_attempts"),
        (GOOD.replace("timeout: 1m", "timeout: forever"), "functions[1].policy.timeout"),
        (GOOD.replace("name: noop", "name: echo"), "functions[2].name"),
        (GOOD.replace("name: hello", "name: Hello"), "component.name"),
        (GOOD.replace("argv: [cat]", "argv: []"), "functions[0].handler.command.argv"),
        (GOOD.replace("type: number", "type: 12"), "functions[1].input_schema"),
        (GOOD.replace("port: 9000", "port: 99999"), "server.port"),
        (GOOD.replace("{rust: noop}", "{http: {url: x}}"), "functions[2].handler.http.url"),
        (GOOD.replace("{rust: noop}", "{}"), "functions[2].handler"),
        (GOOD.replace("{rust: noop}", "{rust: noop, command: {argv: [cat]}}"), "functions[2].handler"),
    ];
    for (text, field) in cases {
        let e = parse(&text).expect_err(field);
        assert_eq!(e.field, field, "{e}");
    }
}

#[test]
fn bad_concurrency_names_the_field() {
    let cases = [
        ("concurrency: 0", "functions[1].policy.concurrency.limit", "between 1 and"),
        ("concurrency: -2", "functions[1].policy.concurrency.limit", "got -2"),
        ("concurrency: {limit: 0, key: input.t}", "functions[1].policy.concurrency.limit", "between 1 and"),
        ("concurrency: {limit: 2, key: 'input.'}", "functions[1].policy.concurrency", "not valid CEL"),
        ("concurrency: {limit: 2, key: 'tenant'}", "functions[1].policy.concurrency", "may only read"),
        ("concurrency: {limit: 2, tenant: input.t}", "functions[1].policy.concurrency", "unknown field"),
        ("concurrency: many", "functions[1].policy.concurrency", "whole number"),
    ];
    for (policy, field, reason) in cases {
        let e = parse(&GOOD.replace("concurrency: 2", policy)).expect_err(policy);
        assert_eq!(e.field, field, "{policy}: {e}");
        assert!(e.reason.contains(reason), "{policy}: {}", e.reason);
        assert!(e.to_string().contains("PLINTH_001"));
    }
    let throttles = [
        ("throttle: {limit: 0, period: 1s}", "functions[1].policy.throttle.limit", "between 1 and"),
        ("throttle: {limit: 5, period: 0s}", "functions[1].policy.throttle.period", "1ms"),
        ("throttle: {limit: 5, period: whenever}", "functions[1].policy.throttle.period", "not a duration"),
        ("throttle: {limit: 5, period: 1s, burst: 0}", "functions[1].policy.throttle.burst", "between 1 and"),
        ("throttle: {limit: 5, period: 1s, key: 'input.('}", "functions[1].policy.throttle.key", "not valid CEL"),
        (
            "concurrency: {limit: 1, key: input.a}\n      throttle: {limit: 5, period: 1s, key: input.b}",
            "functions[1].policy.throttle.key",
            "same key",
        ),
        (
            "concurrency: {limit: 1, key: input.a}\n      throttle: {limit: 5, period: 1s}",
            "functions[1].policy.throttle.key",
            "same key",
        ),
        ("rate_limit: {limit: 0, period: 1s}", "functions[1].policy.rate_limit.limit", "between 1 and"),
        ("debounce: {period: 0s}", "functions[1].policy.debounce.period", "1ms"),
        ("debounce: {period: 10s, max_wait: 2s}", "functions[1].policy.debounce.max_wait", "shorter than the period"),
        ("debounce: {period: 1s, key: 'input..'}", "functions[1].policy.debounce.key", "not valid CEL"),
        ("rate_limit: {limit: 5, period: 0s}", "functions[1].policy.rate_limit.period", "1ms"),
        ("rate_limit: {limit: 5, period: 1s, key: 'input.'}", "functions[1].policy.rate_limit.key", "not valid CEL"),
    ];
    for (policy, field, reason) in throttles {
        let e = parse(&GOOD.replace("concurrency: 2", policy)).expect_err(policy);
        assert_eq!(e.field, field, "{policy}: {e}");
        assert!(e.reason.contains(reason), "{policy}: {}", e.reason);
    }
    let singles = [
        ("singleton: {mode: replace}", "functions[1].policy.singleton.mode", "unknown variant"),
        ("singleton: {key: 'input.'}", "functions[1].policy.singleton.key", "not valid CEL"),
        ("batch: {max_size: 1001, timeout: 1s}", "functions[1].policy.batch.max_size", "from 1 to 1000"),
        ("batch: {max_size: 10, timeout: 1s}", "functions[1].policy.batch", "event` trigger"),
        ("batch: {max_size: 10, timeout: 1s}\n      debounce: {period: 1s}", "functions[1].policy.batch", "both"),
        ("priority: 'input.'", "functions[1].policy.priority", "not valid CEL"),
        ("timeouts: {start: 1m, finish: 10s}", "functions[1].policy.timeouts.start", "not shorter"),
        ("cancel_on: [{event: nope}]", "functions[1].policy.cancel_on[0].event", "component/event.name"),
        ("cancel_on: [{event: a/b, if: 'run.input.'}]", "functions[1].policy.cancel_on[0].if", "not valid CEL"),
    ];
    for (policy, field, reason) in singles {
        let e = parse(&GOOD.replace("concurrency: 2", policy)).expect_err(policy);
        assert_eq!(e.field, field, "{policy}: {e}");
        assert!(e.reason.contains(reason), "{policy}: {}", e.reason);
    }
    let global = GOOD.replace(
        "    handler: {rust: noop}\n",
        "    handler: {rust: noop}\n    triggers: [{event: a/b}]\n    policy: {singleton: {}}\n",
    );
    let c = parse(&global).expect("a singleton without a key on a function with triggers: one for the function");
    assert!(c.file.functions[2].policy.singleton.as_ref().is_some_and(|s| s.key.is_none()));
    let both = "concurrency: {limit: 1, key: input.a}\n      throttle: {limit: 5, period: 1s, key: input.a}";
    let ok = parse(&GOOD.replace("concurrency: 2", both)).expect("one key for both rules");
    assert_eq!(ok.file.functions[1].policy.throttle.as_ref().map(|t| t.limit), Some(5));
    let keyed = parse(&GOOD.replace("concurrency: 2", "concurrency: {limit: 3, key: input.tenant}")).expect("a keyed limit");
    let c = keyed.file.functions[1].policy.concurrency.as_ref().expect("concurrency");
    assert_eq!((c.limit(), c.key.as_ref().map(crate::flow::KeyExpr::source)), (3, Some("input.tenant")));
}

#[test]
fn rejects_empty_and_non_yaml_documents() {
    assert!(parse("").is_err());
    assert!(parse("just a string").is_err());
    let e = parse("component: {name: a, version: '1'}\nfunctions: []").expect_err("no functions");
    assert_eq!(e.field, "functions");
}

#[test]
fn load_reports_missing_file_and_resolves_base_dir() {
    let e = Component::load(Path::new("/nonexistent/component.yaml")).expect_err("missing");
    assert_eq!(e.field, "(file)");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("component.yaml");
    std::fs::write(&path, GOOD).expect("write");
    let c = Component::load(&path).expect("load");
    assert_eq!(c.base_dir, dir.path());
}

fn with_handler(handler: &str) -> Result<Component, ConfigError> {
    parse(&format!("component: {{name: h, version: '1'}}\nfunctions:\n  - name: f\n    handler: {handler}\n"))
}

#[test]
fn parses_an_http_handler() {
    let c = with_handler("{http: {url: 'https://svc.internal:8443/work', timeout: 5s, headers: {Authorization: 'Bearer ${T}'}}}")
        .expect("valid");
    let f = &c.file.functions[0];
    assert_eq!(f.handler.kind(), "http");
    let Some(HandlerKind::Http(h)) = f.handler.get() else { panic!("an http handler") };
    assert_eq!(h.url, "https://svc.internal:8443/work");
    assert_eq!(h.timeout.map(|t| t.get()), Some(std::time::Duration::from_secs(5)));
    assert_eq!(h.headers.get("Authorization").map(String::as_str), Some("Bearer ${T}"), "expanded at start-up, not load");
}

#[test]
fn refuses_bad_http_handlers() {
    let cases = [
        ("{http: {url: 'ftp://host/x'}}", "functions[0].handler.http.url"),
        ("{http: {url: 'http:///path'}}", "functions[0].handler.http.url"),
        ("{http: {url: 'localhost:8080'}}", "functions[0].handler.http.url"),
        ("{http: {url: 'http://h/', timeout: 0s}}", "functions[0].handler.http.timeout"),
        ("{http: {url: 'http://h/', headers: {'Bad Name': x}}}", "functions[0].handler.http.headers"),
        ("{http: {url: 'http://h/', headers: {X-A: \"a\\nb\"}}}", "functions[0].handler.http.headers"),
        ("{http: {url: 'http://h/', retries: 3}}", "functions[0].handler.http"),
        ("{http: {url: 'http://h/'}, command: {argv: [cat]}}", "functions[0].handler"),
    ];
    for (handler, field) in cases {
        let e = with_handler(handler).expect_err(handler);
        assert!(e.to_string().contains(field), "{handler}: {e}");
    }
}

#[test]
fn expands_environment_variables() {
    let env = |name: &str| match name {
        "A" => Some("1".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    assert_eq!(expand_env("x${A}y${EMPTY}z$A", env), Ok("x1yz$A".to_string()));
    assert_eq!(expand_env("plain", env), Ok("plain".to_string()));
    assert!(expand_env("${NOPE}", env).is_err_and(|e| e.contains("NOPE")));
    assert!(expand_env("${A", env).is_err_and(|e| e.contains("closing")));
}
