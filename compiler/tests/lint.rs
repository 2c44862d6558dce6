//! W0005 and W0007 are only said when they are true: on generated
//! programs, a rule the lints call shadowed (W0005) or unmatchable (W0007)
//! never decides on any generated context.

#[path = "support/programs.rs"]
mod programs;

use dnspolicy_compiler::{check, Context};
use programs::{context, program};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn a_shadowed_rule_never_decides(
        src in program(),
        ctxs in proptest::collection::vec(context(), 1..10),
    ) {
        let checked = check(&src);
        let policy = checked.policy.expect("valid");
        let shadowed: Vec<usize> = checked
            .diagnostics
            .iter()
            .filter(|d| d.code == "W0005" || d.code == "W0007")
            .filter_map(|d| policy.rules.iter().position(|r| r.span == d.primary.span))
            .collect();
        for c in &ctxs {
            let ctx = Context::from_json(&policy, c).expect("context");
            let e = policy.eval(&ctx);
            prop_assert!(e.rule.is_none_or(|r| !shadowed.contains(&r)), "rule {:?} decided\n{}\non {}", e.rule, src, c);
        }
    }
}

#[test]
fn shadowing_is_found() {
    let c = check(
        "rule all { then refuse }\nrule later priority -1 when {query.name} == \"a.example\" { then nxdomain }\n",
    );
    assert!(
        c.diagnostics.iter().any(|d| d.code == "W0005"),
        "{:?}",
        c.diagnostics
    );
    // A guard that is not only the name key may be false: no warning.
    let c = check(
        "rule first when {query.name} == \"a.example\" && {client.asn} == 1 { then refuse }\nrule second priority -1 when {query.name} == \"a.example\" { then nxdomain }\n",
    );
    assert!(
        !c.diagnostics.iter().any(|d| d.code == "W0005"),
        "{:?}",
        c.diagnostics
    );
}

/// The W0007 warnings of `src`.
fn w0007(src: &str) -> usize {
    let c = check(src);
    assert!(c.policy.is_some(), "{:?}", c.diagnostics);
    c.diagnostics.iter().filter(|d| d.code == "W0007").count()
}

#[test]
fn guards_that_match_nothing_are_found() {
    for src in [
        "rule r when {query.name} == \"a.example\" && {query.name} == \"b.example\" { then refuse }",
        "rule r when {query.type} == A && !({query.type} != AAAA) { then refuse }",
        "rule r when {client.asn} == 1 && {client.asn} != 1 { then refuse }",
        "set s = [\"*.example.com\"]\nrule r when {query.name} in s && {query.name} == \"example.com\" { then refuse }",
        "set s = [\"x.example\"]\nrule r when {query.name} not in s && {query.name} == \"X.example\" { then refuse }",
        "rule r when {client.ip} == 192.0.2.1 && {client.ip} in 10.0.0.0/8 { then refuse }",
        "rule r when {client.ip} in 10.0.0.0/8 && {client.ip} in 11.0.0.0/8 { then refuse }",
        "input user.tier : string\nrule r when {user.tier} == \"gold\" && {user.tier} == \"silver\" { then refuse }",
        "rule r when false { then refuse }",
    ] {
        assert_eq!(w0007(src), 1, "{src}");
    }
}

#[test]
fn guards_that_can_match_are_not_flagged() {
    for src in [
        "rule r when {query.name} == \"a.example\" && {client.asn} == 1 { then refuse }",
        "rule r when {query.name} == \"a.example\" || {query.name} == \"b.example\" { then refuse }",
        "rule r when {client.ip} in 10.0.0.0/8 && {client.ip} in 10.1.0.0/16 { then refuse }",
        "rule r when {client.ip} == ::ffff:10.0.0.1 && {client.ip} in 10.0.0.0/8 { then refuse }",
        "set s = [\"*.example.com\"]\nrule r when {query.name} in s && {query.name} == \"www.example.com\" { then refuse }",
        "rule r when {client.asn} == 1 && {client.asn} != 2 { then refuse }",
        "rule r when {client.ip} in 10.0.0.0/8 && {client.ip} in 2001:db8::/32 { then refuse }",
    ] {
        assert_eq!(w0007(src), 0, "{src}");
    }
}

#[test]
fn serving_skips_the_lints_but_not_the_errors() {
    use dnspolicy_compiler::check_for_serving;
    let shadowed =
        "rule all { then refuse }\nrule later priority -1 when {query.name} == \"a.example\" { then nxdomain }\n";
    let codes = |c: &dnspolicy_compiler::Checked| -> Vec<&str> {
        c.diagnostics.iter().map(|d| d.code).collect()
    };
    assert!(codes(&check(shadowed)).contains(&"W0005"));
    let served = check_for_serving(shadowed);
    assert!(!codes(&served).contains(&"W0005"), "{:?}", codes(&served));
    // The same policy either way.
    assert_eq!(served.policy.expect("valid").rules.len(), 2);
    let broken = "rule r when {query.nme} == \"a.example\" { then nxdomain }\n";
    let (a, b) = (check(broken), check_for_serving(broken));
    assert!(a.policy.is_none() && b.policy.is_none());
    assert_eq!(codes(&a), codes(&b));
}

/// Serving checks each rule as it is parsed: declarations made after the
/// rules that use them (or before them) give the same policy as `check`.
#[test]
fn serving_sees_declarations_wherever_they_are() {
    use dnspolicy_compiler::check_for_serving;
    let rules = "rule r when {query.name} in blocked { then nxdomain }\n\
                 rule t when {query.name} == home { then answer A 192.0.2.1 }\n";
    let decls = "set blocked = [\"*.bad.example\"]\nconst home = \"home.example\"\n";
    for src in [format!("{decls}{rules}"), format!("{rules}{decls}")] {
        let full = check(&src);
        let served = check_for_serving(&src);
        assert_eq!(full.error_count(), 0, "{src}: {:?}", full.diagnostics);
        let codes = |c: &dnspolicy_compiler::Checked| -> Vec<&str> {
            c.diagnostics.iter().map(|d| d.code).collect()
        };
        assert_eq!(codes(&full), codes(&served), "{src}");
        let (a, b) = (full.policy.expect("valid"), served.policy.expect("valid"));
        assert_eq!(a.rules.len(), b.rules.len());
        assert_eq!(a.sets.len(), b.sets.len());
    }
    // A name declared nowhere is an error either way.
    let broken = "rule r when {query.name} in nowhere { then nxdomain }\n";
    assert!(check_for_serving(broken).policy.is_none());
}
