//! `check --cost`: the bound is what the index gives, and no generated
//! query ever reaches more rules than the bound says.

#[path = "support/programs.rs"]
mod programs;

use dnspolicy_compiler::ir::cost::cost;
use dnspolicy_compiler::{check, Context};
use programs::{context, program};
use proptest::prelude::*;

fn policy(src: &str) -> dnspolicy_compiler::ir::Policy {
    let c = check(src);
    c.policy
        .unwrap_or_else(|| panic!("{src}: {:?}", c.diagnostics))
}

#[test]
fn exact_names_reach_one_rule_each() {
    let p = policy(
        "rule a when {query.name} == \"a.example\" { then refuse }\n\
         rule b when {query.name} == \"b.example\" { then refuse }\n\
         rule c when {query.name} == \"c.example\" { then refuse }\n\
         rule any when {client.asn} == 64500 { then hash({client.subnet}) % 2 == 0 }\n",
    );
    let c = cost(&p);
    assert_eq!(
        (c.rules, c.total_rules, c.always, c.calls),
        (2, 4, 1, 1),
        "{c:?}"
    );
}

#[test]
fn nested_suffixes_add_up_along_one_name() {
    let p = policy(
        "rule a when {query.name} ends_with \"example.com\" { then refuse }\n\
         rule b when {query.name} ends_with \"www.example.com\" { if lower({client.region}) == \"cn-bj\" && {client.city} matches \"^B\" { then refuse } }\n\
         rule c when {query.name} == \"x.www.example.com\" { then refuse }\n\
         rule d when {query.name} == \"other.net\" { then refuse }\n",
    );
    let c = cost(&p);
    assert_eq!((c.rules, c.calls, c.always), (3, 2, 0), "{c:?}");
    assert_eq!(c.worst_name.as_deref(), Some("x.www.example.com"));
}

#[test]
fn wildcards_and_prefixes_count() {
    let p = policy(
        "set ads = [\"*.ads.example\"]\n\
         rule a when {query.name} in ads { then refuse }\n\
         rule b when {query.name} ends_with \"example\" { then refuse }\n\
         rule n8 when {client.ip} in 10.0.0.0/8 { then refuse }\n\
         rule n16 when {client.ip} in 10.1.0.0/16 { then refuse }\n\
         rule v6 when {client.ip} in 2001:db8::/32 { then refuse }\n",
    );
    let c = cost(&p);
    // A name below ads.example (2) and an address in 10.1/16 (2).
    assert_eq!((c.rules, c.total_rules), (4, 5), "{c:?}");
    assert_eq!(c.worst_name.as_deref(), Some("*.ads.example"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn no_query_reaches_more_than_the_bound(
        src in program(),
        ctxs in proptest::collection::vec(context(), 1..10),
    ) {
        let p = check(&src).policy.expect("valid");
        let c = cost(&p);
        prop_assert!(c.rules <= c.total_rules);
        let mut cands = Vec::new();
        for j in &ctxs {
            let ctx = Context::from_json(&p, j).expect("context");
            p.index.candidates_in(&ctx, &mut cands);
            prop_assert!(cands.len() <= c.rules, "{} > bound {:?}\n{}\non {}", cands.len(), c, src, j);
        }
    }
}
