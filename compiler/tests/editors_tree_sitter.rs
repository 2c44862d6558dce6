//! The tree-sitter grammar (`editors/tree-sitter-dnspolicy`): its keywords
//! are the lexer's, both ways (from the generated `src/node-types.json`);
//! and, with the tree-sitter CLI, the committed parser is what
//! `grammar.js` generates, `tree-sitter test` passes (corpus and highlight
//! tests), and every example parses without an error node.
//!
//! The CLI: `tree-sitter` on PATH or `target/tools/tree-sitter/bin` (where
//! `scripts/test` installs it from crates.io); under `CI=true` a missing
//! CLI fails.

#[path = "support/examples.rs"]
mod examples;

use dnspolicy_compiler::syntax::lexer::KEYWORDS;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo")
}

fn grammar_dir() -> PathBuf {
    repo().join("editors/tree-sitter-dnspolicy")
}

#[test]
fn keywords_are_the_lexer_keywords() {
    let text = std::fs::read_to_string(grammar_dir().join("src/node-types.json"))
        .expect("src/node-types.json (run `tree-sitter generate`)");
    let types: Value = serde_json::from_str(&text).expect("json");
    let words: BTreeSet<String> = types
        .as_array()
        .expect("array")
        .iter()
        .filter(|t| t["named"] == false)
        .filter_map(|t| t["type"].as_str())
        .filter(|t| t.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_string)
        .collect();
    let lexer: BTreeSet<String> = KEYWORDS.iter().map(|k| k.to_string()).collect();
    assert_eq!(words, lexer);
}

fn cli() -> Option<PathBuf> {
    let local = repo().join("target/tools/tree-sitter/bin/tree-sitter");
    if local.exists() {
        return Some(local);
    }
    if Command::new("tree-sitter")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(PathBuf::from("tree-sitter"));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the tree-sitter CLI is missing; scripts/test installs it (cargo install tree-sitter-cli)"
    );
    eprintln!("skipped: no tree-sitter CLI (scripts/test installs it)");
    None
}

/// Runs the CLI in the grammar directory with its parser cache in a temp
/// directory.
fn run(ts: &Path, args: &[&str], cache: &Path) -> (bool, String) {
    let o = Command::new("timeout")
        .arg("300")
        .arg(ts)
        .args(args)
        .current_dir(grammar_dir())
        .env("TREE_SITTER_LIBDIR", cache)
        .env("XDG_CACHE_HOME", cache)
        .env("XDG_CONFIG_HOME", cache)
        .output()
        .expect("run tree-sitter");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn the_cli_generates_tests_and_parses_every_example() {
    let Some(ts) = cli() else { return };
    let cache = std::env::temp_dir().join(format!("dnspolicy-ts-{}", std::process::id()));
    std::fs::create_dir_all(&cache).expect("cache");
    let committed =
        std::fs::read_to_string(grammar_dir().join("src/grammar.json")).expect("src/grammar.json");
    // Generate into a scratch copy: the committed parser must be current.
    let scratch = cache.join("gen");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let o = Command::new(&ts)
        .args(["generate", "--output"])
        .arg(&scratch)
        .arg(grammar_dir().join("grammar.js"))
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .expect("generate");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fresh = std::fs::read_to_string(scratch.join("grammar.json")).expect("generated");
    assert!(
        fresh == committed,
        "src/ is stale: run `tree-sitter generate` in editors/tree-sitter-dnspolicy"
    );

    let (ok, out) = run(&ts, &["test"], &cache);
    assert!(ok, "tree-sitter test:\n{out}");

    let files: Vec<String> = examples::example_policies()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(files.len() > 5);
    let mut args = vec!["parse", "--quiet"];
    args.extend(files.iter().map(String::as_str));
    let (ok, out) = run(&ts, &args, &cache);
    assert!(ok, "examples with parse errors:\n{out}");
    let _ = std::fs::remove_dir_all(&cache);
}
