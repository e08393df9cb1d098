//! The crates' allowed dependencies, checked against `cargo metadata`.
//!
//! A frontend (one crate per protocol) depends on the core, the state and
//! the protos, never on openraft and never on another frontend: a change to
//! one protocol then stays in its own crate, and Raft's types stay behind
//! the registry facade. The check reads every kind of dependency (normal,
//! dev, build) and also the frontends' sources, so a path to openraft
//! through another crate's re-export is caught too.
//!
//! Within every crate of the workspace, the top-level modules must not
//! import each other in a cycle (`a` uses `crate::b`, `b` uses `crate::a`):
//! a cycle means neither can be understood, tested or moved alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The crates that serve one protocol each.
const FRONTENDS: &[&str] = &[
    "sextant-consul",
    "sextant-etcd",
    "sextant-nacos",
    "sextant-dns",
    "sextant-native",
];

/// What no frontend may depend on, besides the other frontends.
const FORBIDDEN_FOR_FRONTENDS: &[&str] = &["openraft", "sextant-storage", "sextant-server"];

/// The names of each workspace package's direct dependencies (any kind).
fn dependencies(metadata: &Value) -> BTreeMap<String, Vec<String>> {
    metadata["packages"]
        .as_array()
        .map(|packages| {
            packages
                .iter()
                .map(|package| {
                    let name = package["name"].as_str().unwrap_or_default().to_owned();
                    let deps = package["dependencies"]
                        .as_array()
                        .map(|deps| {
                            deps.iter()
                                .filter_map(|d| d["name"].as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    (name, deps)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every dependency that breaks the layering, as "crate -> dependency".
fn violations(metadata: &Value) -> Vec<String> {
    let deps = dependencies(metadata);
    let mut found = Vec::new();
    for frontend in FRONTENDS {
        let Some(of_frontend) = deps.get(*frontend) else {
            found.push(format!("{frontend} is missing from the workspace"));
            continue;
        };
        for dep in of_frontend {
            let other_frontend = FRONTENDS.contains(&dep.as_str()) && dep != frontend;
            if other_frontend || FORBIDDEN_FOR_FRONTENDS.contains(&dep.as_str()) {
                found.push(format!("{frontend} -> {dep}"));
            }
        }
    }
    found
}

/// Lines of a frontend's sources that name openraft or the core's Raft
/// internals, as "file:line".
fn source_violations(crate_dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for path in rust_files(&crate_dir.join("src")) {
        let text = std::fs::read_to_string(&path).expect("a source file");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if code.contains("openraft") {
                found.push(format!("{}:{}", path.display(), number + 1));
            }
        }
    }
    found
}

fn workspace_metadata() -> Value {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn frontends_depend_on_neither_openraft_nor_each_other() {
    let found = violations(&workspace_metadata());
    assert!(found.is_empty(), "layering broken: {found:#?}");
}

#[test]
fn frontend_sources_name_no_openraft() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let found: Vec<String> = FRONTENDS
        .iter()
        .flat_map(|frontend| source_violations(&crates.join(frontend)))
        .collect();
    assert!(found.is_empty(), "openraft named in a frontend: {found:#?}");
}

/// The check itself: a frontend that imports another, or openraft, is
/// reported (so the tests above cannot pass by finding nothing to read).
#[test]
fn the_check_reports_a_frontend_importing_another() {
    let mut metadata = workspace_metadata();
    let packages = metadata["packages"].as_array_mut().expect("packages");
    let consul = packages
        .iter_mut()
        .find(|p| p["name"] == "sextant-consul")
        .expect("sextant-consul is a workspace member");
    let deps = consul["dependencies"].as_array_mut().expect("dependencies");
    deps.push(serde_json::json!({"name": "sextant-etcd", "kind": null}));
    deps.push(serde_json::json!({"name": "openraft", "kind": "dev"}));
    assert_eq!(
        violations(&metadata),
        vec![
            "sextant-consul -> sextant-etcd".to_owned(),
            "sextant-consul -> openraft".to_owned()
        ]
    );
}

/// The `.rs` files below `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The module names that `text` reaches as `crate::NAME` (comments left out).
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
            rest = after;
        }
    }
    names
}

/// Each top-level module of the crate at `src` with the top-level modules
/// it imports through `crate::` paths.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files_of: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("a src directory") {
        let path = entry.expect("a directory entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem == "lib" || stem == "main" {
            continue;
        }
        let files = if path.is_dir() {
            rust_files(&path)
        } else if path.extension().is_some_and(|e| e == "rs") {
            vec![path.clone()]
        } else {
            continue;
        };
        files_of.entry(stem.to_owned()).or_default().extend(files);
    }
    let modules: BTreeSet<String> = files_of.keys().cloned().collect();
    files_of
        .iter()
        .map(|(module, files)| {
            let used = files
                .iter()
                .flat_map(|f| crate_paths(&std::fs::read_to_string(f).expect("a source file")))
                .filter(|name| name != module && modules.contains(name))
                .collect();
            (module.clone(), used)
        })
        .collect()
}

/// One cycle of `graph`, as the modules along it, if there is any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_module_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut checked = 0;
    let mut cycles = Vec::new();
    for group in ["crates", "testing"] {
        for entry in std::fs::read_dir(root.join(group)).expect("a crates directory") {
            let src = entry.expect("a directory entry").path().join("src");
            if !src.is_dir() {
                continue;
            }
            checked += 1;
            if let Some(cycle) = find_cycle(&module_graph(&src)) {
                cycles.push(format!("{}: {}", src.display(), cycle.join(" -> ")));
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} crates found under {}",
        root.display()
    );
    assert!(cycles.is_empty(), "module cycles: {cycles:#?}");
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let edge = |from: &str, to: &[&str]| {
        (
            from.to_owned(),
            to.iter().map(|t| (*t).to_owned()).collect::<BTreeSet<_>>(),
        )
    };
    let acyclic = BTreeMap::from([edge("a", &["b"]), edge("b", &["c"]), edge("c", &[])]);
    assert_eq!(find_cycle(&acyclic), None);
    let cyclic = BTreeMap::from([edge("a", &["b"]), edge("b", &["c"]), edge("c", &["a"])]);
    assert_eq!(
        find_cycle(&cyclic),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        crate_paths("use crate::raft::Raft; // crate::nope\nlet x = crate::registry::now_ms();"),
        BTreeSet::from(["raft".to_owned(), "registry".to_owned()])
    );
}
