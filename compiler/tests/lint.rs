//! W0005 is only said when it is true: on generated programs, a rule the
//! lint calls shadowed never decides on any generated context.

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
            .filter(|d| d.code == "W0005")
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
