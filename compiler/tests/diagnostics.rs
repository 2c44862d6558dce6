//! Snapshot tests of rendered diagnostics: one small `.dsl` file per case
//! under `tests/diagnostics/`, whose first line lists the codes it must
//! produce (`# expect: E0030 E0040`). The snapshot holds the source and the
//! ariadne rendering (no colour) plus the JSON form of the first diagnostic.

use dnspolicy_compiler::check;
use dnspolicy_compiler::diagnostics::{render, render_json};
use std::collections::BTreeSet;

#[test]
fn rendered_diagnostics() {
    let mut wrong_codes = Vec::new();
    insta::glob!("diagnostics/*.dsl", |path| {
        let src = std::fs::read_to_string(path).expect("case file is readable");
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 file name");
        let expected: BTreeSet<&str> = src
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect:"))
            .expect("first line is `# expect: CODE...`")
            .split_whitespace()
            .collect();
        let checked = check(&src);
        let got: BTreeSet<&str> = checked.diagnostics.iter().map(|d| d.code).collect();
        if got != expected {
            wrong_codes.push(format!("{file}: expected {expected:?}, got {got:?}"));
        }
        if checked.error_count() > 0 {
            assert!(
                checked.policy.is_none(),
                "{file}: a policy with errors must not be produced"
            );
        }
        let rendered = render(&checked.diagnostics, file, &src, false);
        let json = render_json(&checked.diagnostics[..1], file, &src);
        insta::assert_snapshot!(format!(
            "--- SOURCE ---\n{src}--- RENDERED ---\n{rendered}--- JSON (first) ---\n{json}"
        ));
    });
    assert!(wrong_codes.is_empty(), "{}", wrong_codes.join("\n"));
}

/// Serving checks rule by rule and frees each rule's syntax as it goes; it
/// must still find every problem `check` finds, at the same places (only
/// the rule-order and dead-guard lints, W0005-W0007, are `check`'s alone).
#[test]
fn serving_reports_what_check_reports() {
    let mut differ = Vec::new();
    let mut cases = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/diagnostics"))
        .expect("the cases are readable")
    {
        let path = entry.expect("directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("dsl") {
            continue;
        }
        cases += 1;
        let src = std::fs::read_to_string(&path).expect("case file is readable");
        let seen = |c: &dnspolicy_compiler::Checked| -> Vec<(&'static str, u32, u32)> {
            c.diagnostics
                .iter()
                .filter(|d| !matches!(d.code, "W0005" | "W0006" | "W0007"))
                .map(|d| (d.code, d.primary.span.start, d.primary.span.end))
                .collect()
        };
        let (full, served) = (check(&src), dnspolicy_compiler::check_for_serving(&src));
        if seen(&full) != seen(&served) || full.policy.is_some() != served.policy.is_some() {
            differ.push(format!(
                "{}: check {:?}, serving {:?}",
                path.display(),
                seen(&full),
                seen(&served)
            ));
        }
        // As `serve` loads: each rule planned as the checker hands it over
        // (only while nothing has failed to check, so a broken rule never
        // reaches the planner), the rest when all are checked.
        let mut planner = dnspolicy_compiler::backend::jit::Planner::for_serving();
        let streamed =
            dnspolicy_compiler::check_for_serving_with(&src, &mut |r, sets| planner.rule(r, sets));
        if seen(&streamed) != seen(&served) || streamed.policy.is_some() != served.policy.is_some()
        {
            differ.push(format!(
                "{}: serving {:?}, planned as checked {:?}",
                path.display(),
                seen(&served),
                seen(&streamed)
            ));
        }
        if let Some(p) = streamed.policy {
            if let Err(e) = dnspolicy_compiler::JitPolicy::compile_planned(p, planner) {
                differ.push(format!("{}: planned as checked: {e}", path.display()));
            }
        }
    }
    assert!(cases > 50, "only {cases} cases found");
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
