//! Every policy under `examples/` (recursively; npm folders skipped).

use std::path::{Path, PathBuf};

pub fn example_policies() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("node_modules") {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "dsl") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}
