use super::templates::{self, FUNCTION};
use super::{Kind, check_name, files, plinth_crate};
use plinth_core::component::{Component, HandlerKind};
use std::path::{Path, PathBuf};

fn parse(text: &str) -> Component {
    Component::parse(text, "component.yaml", PathBuf::from("component.yaml"), PathBuf::from("."))
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn names_follow_the_component_file_rule() {
    for good in ["demo", "a", "my-component_2", &"a".repeat(64)] {
        assert_eq!(check_name(good, Kind::Command), Ok(()), "{good}");
    }
    for bad in ["9abc", "a b", "../x", "Demo", "-a", "a/b", "é", &"a".repeat(65)] {
        let why = check_name(bad, Kind::Command).expect_err(bad);
        assert!(why.contains("is not a valid component name") && why.contains("starts with a lowercase letter"), "{why}");
    }
    assert!(check_name("", Kind::Http).expect_err("empty").starts_with("NAME is empty"));
    assert_eq!(check_name("plinth", Kind::Command), Ok(()), "only a Rust project clashes with its dependency");
    assert!(check_name("plinth", Kind::Rust).expect_err("clash").contains("its own dependencies"));
}

#[test]
fn every_kind_writes_a_component_that_loads_with_its_handler() {
    for (kind, want) in [(Kind::Command, "command"), (Kind::Http, "http"), (Kind::Rust, "rust")] {
        let component = parse(&templates::component_yaml("demo", kind));
        assert_eq!(component.file.component.name, "demo");
        let [f] = component.file.functions.as_slice() else { panic!("one function") };
        assert_eq!((f.name.as_str(), f.handler.kind()), (FUNCTION, want));
        let schema = component.schemas[0].as_ref().expect("an input schema");
        assert!(schema.violations(&serde_json::json!({})).is_empty(), "plinth check's default input {{}} is valid");
        assert!(!schema.violations(&serde_json::json!(true)).is_empty(), "a non-object is refused");
        assert!(!schema.violations(&serde_json::json!({"name": 3})).is_empty());
    }
}

#[test]
fn the_command_handler_is_run_through_sh_and_the_http_one_listens_where_the_file_points() {
    let component = parse(&templates::component_yaml("demo", Kind::Command));
    match component.file.functions[0].handler.get() {
        Some(HandlerKind::Command(c)) => assert_eq!(c.argv, ["sh", "handler.sh"]),
        other => panic!("{other:?}"),
    }
    assert!(templates::HANDLER_SH.starts_with("#!/bin/sh\n") && templates::HANDLER_SH.contains("input=$(cat)"));
    let component = parse(&templates::component_yaml("demo", Kind::Http));
    match component.file.functions[0].handler.get() {
        Some(HandlerKind::Http(h)) => assert_eq!(h.url, format!("http://127.0.0.1:{}/work", templates::HTTP_PORT)),
        other => panic!("{other:?}"),
    }
    let py = templates::handler_py();
    assert!(py.contains(&format!(r#"os.environ.get("HANDLER_PORT", "{}")"#, templates::HTTP_PORT)), "{py}");
    assert!(py.contains(r#"if self.path != "/work":"#) && !py.contains("{{"), "{py}");
}

#[test]
fn the_rust_project_registers_the_name_the_component_file_gives() {
    let component = parse(&templates::component_yaml("demo", Kind::Rust));
    let Some(HandlerKind::Rust(name)) = component.file.functions[0].handler.get() else { panic!("a rust handler") };
    let main = templates::main_rs("demo");
    assert!(main.contains(&format!("handlers.register(\"{name}\", {name});")), "{main}");
    assert!(main.contains(&format!("async fn {name}(ctx: HandlerContext, input: Value)")), "{main}");
    assert!(main.contains("plinth::run_cli(handlers)") && main.contains("use plinth::{HandlerContext, HandlerError, Handlers};"));
    let toml = templates::cargo_toml("demo", Path::new("/src/pl \"x\""));
    assert!(toml.contains("name = \"demo\"") && toml.contains("\n[workspace]\n"), "{toml}");
    assert!(toml.contains(r#"plinth = { path = "/src/pl \"x\"" }"#), "quotes escaped: {toml}");
    assert!(templates::gitignore(Kind::Rust).contains("/target") && !templates::gitignore(Kind::Command).contains("target"));
}

#[test]
fn the_plinth_crate_is_found_from_the_checkout_or_refused() {
    let here = plinth_crate(None).expect("this checkout");
    assert!(here.is_absolute() && here.join("src").join("new").is_dir(), "{}", here.display());
    let root = here.parent().and_then(Path::parent).expect("the checkout's root");
    assert_eq!(plinth_crate(Some(root)).expect("the root"), here);
    let empty = tempfile::tempdir().expect("tempdir");
    let why = plinth_crate(Some(empty.path())).expect_err("no Plinth there");
    assert!(why.contains("holds no Plinth crate") && why.contains("--plinth-path"), "{why}");
    let why = plinth_crate(Some(&root.join("crates").join("plinth-core"))).expect_err("another crate");
    assert!(why.contains("holds no Plinth crate"), "{why}");
}

#[test]
fn each_kind_has_its_files_and_a_readme_with_both_commands() {
    let names = |kind, plinth: Option<&Path>| files("demo", kind, plinth).into_iter().map(|(p, _)| p).collect::<Vec<_>>();
    assert_eq!(names(Kind::Command, None), ["component.yaml", "handler.sh", "README.md", ".gitignore"]);
    assert_eq!(names(Kind::Http, None), ["component.yaml", "handler.py", "README.md", ".gitignore"]);
    assert_eq!(
        names(Kind::Rust, Some(Path::new("/p"))),
        ["component.yaml", "Cargo.toml", "src/main.rs", "README.md", ".gitignore"]
    );
    for kind in [Kind::Command, Kind::Http, Kind::Rust] {
        let readme = templates::readme("demo", kind);
        let (serve, check) = templates::commands(kind);
        assert!(readme.starts_with("# demo\n") && readme.contains("## Serve") && readme.contains("## Test"), "{readme}");
        assert!(serve.iter().all(|s| readme.contains(s)) && readme.contains(check), "{readme}");
    }
}
