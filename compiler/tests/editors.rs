//! The editor grammars cannot drift from the compiler: their keyword,
//! record-type and context-root lists are compared with the lexer's and
//! checker's own tables, both ways. The VS Code grammar's own tests
//! (vscode-tmgrammar-test assertions and snapshots of every example) run
//! here too when its npm packages are installed; CI installs them.

use dnspolicy_compiler::ir::context::ROOTS;
use dnspolicy_compiler::ir::types::QTYPES;
use dnspolicy_compiler::syntax::lexer::KEYWORDS;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn editors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../editors")
}

fn grammar() -> Value {
    let text = std::fs::read_to_string(editors().join("vscode/syntaxes/dnspolicy.tmLanguage.json"))
        .expect("grammar");
    serde_json::from_str(&text).expect("the grammar is JSON")
}

/// The words of `\b(?:a|b|c)\b`.
fn alternatives(pattern: &str) -> Vec<String> {
    let inner = pattern
        .trim_start_matches("\\b(?:")
        .split_once(")\\b")
        .map(|(a, _)| a)
        .unwrap_or_else(|| panic!("not a word list: {pattern}"));
    inner.split('|').map(str::to_string).collect()
}

#[test]
fn textmate_keywords_are_the_lexer_keywords() {
    let g = grammar();
    let rules = g["repository"]["keywords"]["patterns"]
        .as_array()
        .expect("keyword rules");
    let mut words = BTreeSet::new();
    for r in rules {
        let scope = r["name"].as_str().expect("scope");
        assert!(
            scope.starts_with("keyword.") || scope.starts_with("constant.language."),
            "{scope}"
        );
        for w in alternatives(r["match"].as_str().expect("match")) {
            assert!(words.insert(w.clone()), "`{w}` listed twice");
        }
    }
    let lexer: BTreeSet<String> = KEYWORDS.iter().map(|k| k.to_string()).collect();
    assert_eq!(words, lexer, "grammar keywords vs lexer keywords");
}

#[test]
fn textmate_qtypes_and_roots_match_the_compiler() {
    let g = grammar();
    let m = g["repository"]["qtypes"]["patterns"][0]["match"]
        .as_str()
        .expect("qtype rule");
    let mut words: BTreeSet<String> = alternatives(m).into_iter().collect();
    assert!(words.remove("TYPE[0-9]+"), "generic TYPEnnn");
    let table: BTreeSet<String> = QTYPES.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(words, table);
    let ctx = g["repository"]["variables"]["patterns"][0]["match"]
        .as_str()
        .expect("context rule");
    let roots = ctx
        .split_once("(?:")
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(r, _)| r)
        .expect("roots");
    let roots: BTreeSet<&str> = roots.split('|').collect();
    assert_eq!(roots, ROOTS.iter().copied().collect());
}

#[test]
fn vim_keywords_are_the_lexer_keywords() {
    let text =
        std::fs::read_to_string(editors().join("vim/syntax/dnspolicy.vim")).expect("vim syntax");
    let mut keywords = BTreeSet::new();
    let mut qtypes = BTreeSet::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if (w.next(), w.next()) != (Some("syn"), Some("keyword")) {
            continue;
        }
        let group = w.next().unwrap_or("");
        let words: Vec<String> = w
            .filter(|x| *x != "contained")
            .map(str::to_string)
            .collect();
        match group {
            "dnspolicyType" => {}
            "dnspolicyQtype" => qtypes.extend(words),
            _ => keywords.extend(words),
        }
    }
    assert_eq!(
        keywords,
        KEYWORDS
            .iter()
            .map(|k| k.to_string())
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(
        qtypes,
        QTYPES
            .iter()
            .map(|(n, _)| n.to_string())
            .collect::<BTreeSet<_>>()
    );
}

#[test]
fn every_example_has_a_highlighting_snapshot() {
    let snaps = editors().join("vscode/tests/snap");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .expect("examples")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.push(examples.join("serve/plugins/geo_redirect.dsl"));
    for f in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dsl"))
    {
        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            snaps.join(name).exists(),
            "editors/vscode/tests/snap/{name} (a link to the example) is missing"
        );
        assert!(
            snaps.join(format!("{name}.snap")).exists(),
            "no snapshot for {name}: run `npm test -- -u` there"
        );
    }
}

#[test]
fn vscode_grammar_tests() {
    let dir = editors().join("vscode");
    if !dir.join("node_modules/.bin/vscode-tmgrammar-test").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install the grammar test tools: `npm ci` in editors/vscode"
        );
        eprintln!("skipped: run `npm ci` in editors/vscode to test the TextMate grammar");
        return;
    }
    let out = std::process::Command::new("npm")
        .arg("test")
        .current_dir(&dir)
        .output()
        .expect("npm test");
    assert!(
        out.status.success(),
        "grammar tests failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
