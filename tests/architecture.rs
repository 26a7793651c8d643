//! The architecture follows the imports: each stage of `src/` uses only the stages before it
//! (`src/lib.rs`), and no module imports one that imports it back. Read from the source, so
//! a new `use crate::report` in `sweep/` fails here, test code included.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The stages in order; cross-cutting modules (`tool`, `panics`, `faults`) may be used by any
/// stage and use none.
const STAGES: [&str; 11] = [
    "data", "model", "config", "store", "train", "eval", "sweep", "compare", "report", "track",
    "cli",
];
const CROSS_CUTTING: [&str; 3] = ["tool", "panics", "faults"];
/// Modules of a stage re-exported at the crate root (for the command-line grammar, which the
/// launcher compiles too), counted as their stage.
const REEXPORTED: [(&str, &str); 2] = [("defaults", "config"), ("tracking", "config")];

/// Every `.rs` file under `dir`, as (path relative to `src/`, text).
fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The top-level modules `text` names as `crate::<module>` (in `use` lines and paths).
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let tail = &rest[at + "crate::".len()..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
        rest = tail;
    }
    found
}

fn stage_of(file: &str) -> String {
    file.split(['/', '.']).next().unwrap().to_string()
}

#[test]
fn every_stage_imports_only_earlier_stages() {
    let mut files = Vec::new();
    sources(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut files,
    );
    let rank = |m: &str| STAGES.iter().position(|s| *s == m);
    let mut violations = Vec::new();
    for (file, text) in &files {
        let stage = stage_of(file);
        if stage == "lib" || stage == "main" {
            continue;
        }
        for used in crate_refs(text) {
            let used = REEXPORTED
                .iter()
                .find(|(m, _)| *m == used)
                .map_or(used.clone(), |(_, stage)| stage.to_string());
            if used == stage {
                continue;
            }
            let bad = match (rank(&stage), rank(&used)) {
                (Some(s), Some(u)) => u > s,
                // A cross-cutting module uses no stage.
                (None, Some(_)) => CROSS_CUTTING.contains(&stage.as_str()),
                (_, None) => !CROSS_CUTTING.contains(&used.as_str()),
            };
            if bad {
                violations.push(format!("{file} uses crate::{used}"));
            }
        }
    }
    assert!(
        files.len() > 40,
        "read only {} files: is the path right?",
        files.len()
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn no_module_of_train_imports_one_that_imports_it() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src/train"));
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "mod" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut uses = BTreeSet::new();
        for marker in ["super::", "crate::train::"] {
            let mut rest = text.as_str();
            while let Some(at) = rest.find(marker) {
                let tail = &rest[at + marker.len()..];
                let used: String = tail
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !used.is_empty() && used != name {
                    uses.insert(used);
                }
                rest = tail;
            }
        }
        graph.insert(name, uses);
    }
    assert!(graph.contains_key("training") && graph.contains_key("run"));
    // Depth-first search for a cycle among the modules of train/.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node.to_string()) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next) {
                if let Some(cycle) = visit(next, graph, path, done) {
                    return Some(cycle);
                }
            }
        }
        path.pop();
        None
    }
    for node in graph.keys() {
        let mut done = BTreeSet::new();
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle in src/train: {}", cycle.join(" -> "));
        }
    }
}
