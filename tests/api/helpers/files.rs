//! The project's own files, for tests that hold them against the code (dashboards, drift).

use std::path::{Path, PathBuf};

/// The project root at run time (cargo and nextest set it), not the one baked in at compile
/// time: the build cache is shared between clones.
pub fn root() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
}

/// A file of the project, by its path from the root.
pub fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Every file under `dir`, at any depth, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    fn visit(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|err| panic!("{dir:?}: {err}")) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                visit(&path, found);
            } else {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    visit(dir, &mut found);
    found.sort();
    found
}
