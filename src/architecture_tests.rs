//! The house has floors: no module imports one that imports it back, directly or through others.
//! Checked from the source text of `src/`: every `crate::`, `super::` and child-module path
//! counts as an import of the module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// `booking::expiry::sweeper` for `src/booking/expiry/sweeper.rs`; `booking` for its `mod.rs`;
/// `crate` for `lib.rs` and `main.rs`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("a file under src/");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    if parts.is_empty() {
        "crate".into()
    } else {
        parts.join("::")
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The source without comments, string literals and its inline unit tests (whose `super` is the
/// file itself), so only the module's own imports count.
fn code_only(source: &str) -> String {
    let source = source
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or(source);
    source
        .lines()
        .map(|line| {
            let line = line.split("//").next().unwrap_or("");
            let mut kept = String::new();
            let mut in_string = false;
            for c in line.chars() {
                if c == '"' {
                    in_string = !in_string;
                } else if !in_string {
                    kept.push(c);
                }
            }
            kept
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path that starts at `start` in `code`, expanded through `{a, b::c}` groups.
fn paths_after(code: &str, start: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(start) {
        let boundary = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let tail = &rest[at + start.len()..];
        if boundary {
            paths.extend(expand(tail));
        }
        rest = tail;
    }
    paths
}

fn expand(tail: &str) -> Vec<Vec<String>> {
    if let Some(group) = tail.strip_prefix('{') {
        let mut depth = 1;
        let end = group
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(group.len(), |(i, _)| i);
        return split_top_level(&group[..end])
            .iter()
            .flat_map(|item| expand(item.trim()))
            .collect();
    }
    let ident: String = tail
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() {
        return vec![Vec::new()];
    }
    match tail[ident.len()..].strip_prefix("::") {
        Some(more) => expand(more)
            .into_iter()
            .map(|mut path| {
                path.insert(0, ident.clone());
                path
            })
            .collect(),
        None => vec![vec![ident]],
    }
}

fn split_top_level(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut from) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[from..]);
    items
}

/// The longest known module a path names (`booking::seat_map::SeatChange` → `booking::seat_map`).
fn resolve(modules: &BTreeSet<String>, path: &[String]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or_else(|| "crate".into(), |(parent, _)| parent.to_string())
}

/// `src/` of the clone under test: the root at run time (cargo sets it), not the one baked in at
/// compile time, since the build cache is shared between clones.
fn source_root() -> PathBuf {
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    Path::new(&root).join("src")
}

fn source_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&source_root(), &mut files);
    files
}

fn import_graph() -> Graph {
    let files = source_files();
    let src = source_root();
    let sources: Vec<(String, String)> = files
        .iter()
        .filter(|file| file.file_name().is_some_and(|name| name != "main.rs"))
        .map(|file| {
            let source = std::fs::read_to_string(file).expect("a readable source file");
            (module_of(&src, file), code_only(&source))
        })
        .collect();
    let modules: BTreeSet<String> = sources.iter().map(|(module, _)| module.clone()).collect();
    let mut graph = Graph::new();
    for (module, code) in &sources {
        let prefix = |path: Vec<String>, base: &str| {
            let mut full: Vec<String> = base.split("::").map(String::from).collect();
            if base == "crate" {
                full.clear();
            }
            full.extend(path);
            full
        };
        let mut named: Vec<Vec<String>> = paths_after(code, "crate::");
        named.extend(
            paths_after(code, "super::")
                .into_iter()
                .map(|path| prefix(path, &parent(module))),
        );
        for child in modules.iter().filter(|m| parent(m) == *module) {
            let own = child.rsplit("::").next().expect("a module name");
            named.extend(
                paths_after(code, &format!("{own}::"))
                    .into_iter()
                    .map(|path| prefix(path, child)),
            );
        }
        let targets = graph.entry(module.clone()).or_default();
        for path in named {
            if let Some(target) = resolve(&modules, &path)
                && target != *module
            {
                targets.insert(target);
            }
        }
    }
    graph
}

/// One cycle of `graph`, if it has any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

/// The same graph between top-level modules (`booking`, `events`, ...) only.
fn top_level(graph: &Graph) -> Graph {
    let top = |module: &str| module.split("::").next().unwrap_or(module).to_string();
    let mut folded = Graph::new();
    for (from, targets) in graph {
        let entry = folded.entry(top(from)).or_default();
        entry.extend(
            targets
                .iter()
                .map(|to| top(to))
                .filter(|to| *to != top(from)),
        );
    }
    folded
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = import_graph();
    assert!(
        graph.contains_key("booking::expiry::sweeper") && graph["graphql"].contains("app"),
        "the import graph was read: {graph:#?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn no_concept_imports_one_that_imports_it_back() {
    if let Some(cycle) = find_cycle(&top_level(&import_graph())) {
        panic!(
            "import cycle between top-level modules: {}",
            cycle.join(" -> ")
        );
    }
}

/// Every statement's answer is read to its end (`db::one`), so an error PostgreSQL sends after the
/// row (a rolled-back implicit commit) is never lost: diesel-async's `get_result` and `first`
/// stop at the first row.
#[test]
fn no_answer_is_read_only_to_its_first_row() {
    let files = source_files();
    let mut found = Vec::new();
    for file in &files {
        let code = code_only(&std::fs::read_to_string(file).expect("a readable source file"));
        for banned in [".get_result(", ".get_result::<", ".first(", ".first::<"] {
            if code.contains(banned) {
                found.push(format!("{}: {banned}", file.display()));
            }
        }
    }
    assert!(files.len() > 20, "the sources were read");
    assert!(found.is_empty(), "use crate::db::one instead: {found:#?}");
}

#[test]
fn a_cycle_is_found() {
    let graph: Graph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(from, to)| (from.into(), to.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let code = code_only("use crate::{a::{b, c::D}, e}; // crate::f\nlet x = \"crate::g\";");
    assert_eq!(
        paths_after(&code, "crate::"),
        vec![
            vec!["a".to_string(), "b".into()],
            vec!["a".into(), "c".into(), "D".into()],
            vec!["e".into()],
        ]
    );
}
