//! `plinth new`: the folder it writes serves at once, runs its function and passes `plinth
//! check`; what it refuses (an existing folder without --force, names that are not identifiers).

use crate::check::{check, results};
use crate::harness::{Served, client, plinth, python3_available, send, submit, wait_status};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `plinth new ARGS` in `cwd`: (exit code, stdout, stderr).
fn new(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = plinth(&[&["new"], args].concat(), &[], cwd);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_command_component_serves_a_run_and_passes_every_check() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = new(&["demo"], tmp.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Created demo with a command handler (function `hello`):\n"), "{out}");
    assert!(out.contains("Next:\n  cd demo\n  plinth serve\n  plinth check http://127.0.0.1:8000"), "{out}");
    let dir = tmp.path().join("demo");
    for f in ["component.yaml", "handler.sh", "README.md", "SPEC.md", ".gitignore"] {
        assert!(out.contains(&format!("  demo/{f}\n")), "{f} listed: {out}");
        assert!(dir.join(f).is_file(), "{f} written");
    }
    let readme = read(&dir.join("README.md"));
    assert!(
        readme.contains("## Serve\n\n```sh\nplinth serve\n```")
            && readme.contains("```sh\nplinth check http://127.0.0.1:8000\n```")
    );

    let s = Served::start(&dir.join("component.yaml"), &["--database-url", "sqlite://runs.db"], &dir);
    let c = client();
    let id = submit(&c, &s, "hello", json!({"name": "ada"})).await;
    let run = wait_status(&c, &s, &id, "succeeded").await;
    assert_eq!(run["output"], json!({"greeting": "hello from hello", "attempt": 1, "input": {"name": "ada"}}), "{run}");
    let (status, logs) = send(c.get(s.url(&format!("/runs/{id}/logs")))).await;
    assert_eq!((status, &logs["logs"][0]["json"]["message"]), (200, &json!("saying hello")), "{logs}");
    let (status, refused) = send(c.post(s.url("/run")).json(&json!({"input": {"name": 7}}))).await;
    assert_eq!((status, refused["code"].as_str()), (422, Some("PLINTH_004")), "the schema holds: {refused}");

    // With its defaults (no --function, input {}): every check passes; the rate-limit probe
    // and the step checks are skipped, as they are unless asked for.
    let (code, out, _) = check(&[&s.url(""), "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    for r in results(&out) {
        let asked_for = r["id"] == "rate_limit.retry_after" || r["id"].as_str().is_some_and(|id| id.starts_with("steps."));
        let want = if asked_for { "skip" } else { "pass" };
        assert_eq!(r["outcome"], want, "{r}");
    }
    // SPEC.md is what `plinth spec generate` writes from this component.yaml.
    let spec = plinth(&["spec", "generate", "--config", "component.yaml", "--check", "SPEC.md"], &[], &dir);
    assert!(spec.status.success(), "{}{}", String::from_utf8_lossy(&spec.stdout), String::from_utf8_lossy(&spec.stderr));
    assert!(read(&dir.join("SPEC.md")).contains("QUESTION:"), "the human parts are left as questions");
}

#[test]
fn an_existing_folder_is_refused_unless_forced_and_forcing_keeps_other_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("component.yaml"), "not: ours\n").expect("write");
    std::fs::write(dir.join("notes.txt"), "keep me").expect("write");

    let (code, out, err) = new(&["demo"], tmp.path());
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("demo already exists") && err.contains("--force"), "{err}");
    assert_eq!(read(&dir.join("component.yaml")), "not: ours\n", "left alone");
    assert!(!dir.join("handler.sh").exists());

    let (code, out, err) = new(&["demo", "--force"], tmp.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Created demo"), "{out}");
    assert!(read(&dir.join("component.yaml")).contains("  name: demo\n"), "overwritten");
    assert!(dir.join("handler.sh").is_file() && dir.join("SPEC.md").is_file());
    assert_eq!(read(&dir.join("notes.txt")), "keep me", "other files are kept");

    // A file where the folder would go is refused even with --force.
    std::fs::write(tmp.path().join("taken"), "a file").expect("write");
    let (code, _, err) = new(&["taken", "--force"], tmp.path());
    assert_eq!(code, 2);
    assert!(err.contains("taken exists and is not a folder"), "{err}");
    assert_eq!(read(&tmp.path().join("taken")), "a file");
}

#[test]
fn names_that_are_not_identifiers_are_refused_saying_what_is_allowed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for bad in ["9abc", "a b", "", "../x", "Demo", "a/b"] {
        let (code, out, err) = new(&[bad], tmp.path());
        assert_eq!(code, 2, "{bad}: {out}");
        assert!(out.is_empty(), "{bad}: {out}");
        assert!(err.contains("starts with a lowercase letter and holds only a-z, 0-9, _ and -"), "{bad}: {err}");
    }
    let (_, _, err) = new(&["9abc"], tmp.path());
    assert!(err.starts_with("plinth new: `9abc` is not a valid component name"), "{err}");
    let (_, _, err) = new(&[""], tmp.path());
    assert!(err.starts_with("plinth new: NAME is empty"), "{err}");
    let (code, _, err) = new(&["demo", "--handler", "java"], tmp.path());
    assert_eq!(code, 2);
    assert!(err.contains("command, http, rust"), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).expect("list").count(), 0, "nothing written");
}

#[test]
fn dir_puts_the_component_under_another_folder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = new(&["svc", "--dir", "nested/parent"], tmp.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  cd nested/parent/svc\n"), "{out}");
    assert!(tmp.path().join("nested/parent/svc/component.yaml").is_file());

    std::fs::write(tmp.path().join("plain"), "a file").expect("write");
    let (code, _, err) = new(&["svc", "--dir", "plain"], tmp.path());
    assert_eq!(code, 1, "a folder that cannot be made");
    assert!(err.contains("cannot create plain/svc"), "{err}");
}

/// The scaffold's `handler.py`, running on a port it picked, killed when dropped.
struct PyHandler(Child);

impl Drop for PyHandler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_http_component_runs_through_its_python_handler() {
    if !python3_available("the HTTP handler `plinth new` writes") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = new(&["web", "--handler", "http"], tmp.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  cd web\n  python3 handler.py &\n  plinth serve\n"), "{out}");
    let dir = tmp.path().join("web");
    let mut child = Command::new("python3")
        .arg("handler.py")
        .current_dir(&dir)
        .env("HANDLER_PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 handler.py");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("its first line");
    // Why: it logs each request to stderr, which must stay open.
    std::thread::spawn(move || stderr.lines().map_while(Result::ok).for_each(drop));
    let _handler = PyHandler(child);
    let url = line.trim().strip_prefix("handler listening on ").unwrap_or_else(|| panic!("{line}")).to_string();
    // The port it picked instead of 8001, as its docstring says to do.
    let config = dir.join("component.yaml");
    let yaml = read(&config);
    assert!(yaml.contains("url: http://127.0.0.1:8001/work"), "{yaml}");
    std::fs::write(&config, yaml.replace("http://127.0.0.1:8001/work", &url)).expect("write");

    let s = Served::start(&config, &["--database-url", "sqlite://runs.db"], &dir);
    let c = client();
    let id = submit(&c, &s, "hello", json!({"name": "ada"})).await;
    let run = wait_status(&c, &s, &id, "succeeded").await;
    assert_eq!(run["output"], json!({"greeting": "Hello, ada!", "attempt": 1}), "{run}");
    let id = submit(&c, &s, "hello", json!({})).await;
    assert_eq!(wait_status(&c, &s, &id, "succeeded").await["output"]["greeting"], "Hello, world!");
    let (status, _) = send(c.post(url.replace("/work", "/elsewhere")).json(&json!({}))).await;
    assert_eq!(status, 404, "only /work is served");
}

/// The `path = "..."` of the `plinth` dependency in a Cargo.toml.
fn plinth_dependency(toml: &str) -> String {
    let line = toml.lines().find(|l| l.starts_with("plinth = { path = ")).unwrap_or_else(|| panic!("{toml}"));
    line.trim_start_matches("plinth = { path = \"").trim_end_matches("\" }").to_string()
}

/// Building the project would take minutes (Plinth and all its dependencies again), so this
/// checks that its files agree: the handler main.rs registers is the one component.yaml names,
/// and the dependency points at a Plinth crate.
#[test]
fn a_new_rust_project_depends_on_plinth_and_registers_the_handler_its_component_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = new(&["svc", "--handler", "rust"], tmp.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  cd svc\n  cargo run -- serve\n  cargo run -- check http://127.0.0.1:8000"), "{out}");
    let dir = tmp.path().join("svc");
    let component = plinth_core::Component::load(&dir.join("component.yaml")).expect("loads");
    let Some(plinth_core::HandlerKind::Rust(name)) = component.file.functions[0].handler.get() else {
        panic!("a rust handler: {:?}", component.file.functions[0].handler)
    };
    let main = read(&dir.join("src/main.rs"));
    assert!(main.contains(&format!("handlers.register(\"{name}\", {name});")), "{main}");
    assert!(main.contains("plinth::run_cli(handlers)"), "{main}");
    let toml = read(&dir.join("Cargo.toml"));
    assert!(toml.starts_with("[package]\nname = \"svc\"\n"), "{toml}");
    let dep = plinth_dependency(&toml);
    assert_eq!(Path::new(&dep), Path::new(env!("CARGO_MANIFEST_DIR")), "this checkout's crate");
    assert!(read(&Path::new(&dep).join("Cargo.toml")).contains("\nname = \"plinth\"\n"));

    // --plinth-path: a checkout's root is taken to its crate; a folder without Plinth is refused.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (code, _, err) = new(&["other", "--handler", "rust", "--plinth-path", root.to_str().expect("utf-8")], tmp.path());
    assert_eq!(code, 0, "{err}");
    let dep = plinth_dependency(&read(&tmp.path().join("other/Cargo.toml")));
    assert!(dep.ends_with("crates/plinth") && Path::new(&dep).join("src/lib.rs").is_file(), "{dep}");
    let empty = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = new(&["third", "--handler", "rust", "--plinth-path", empty.path().to_str().expect("utf-8")], tmp.path());
    assert_eq!(code, 2);
    assert!(err.contains("holds no Plinth crate") && !tmp.path().join("third").exists(), "{err}");
    let (code, _, err) = new(&["plinth", "--handler", "rust"], tmp.path());
    assert_eq!(code, 2);
    assert!(err.contains("after one of its own dependencies"), "{err}");
}
