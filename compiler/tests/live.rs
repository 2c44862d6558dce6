//! File-backed sets (`set x = file("...")`): the interpreter and the JIT
//! look members up by slot, so new contents count without recompiling;
//! the checker keeps them to lookups of names, addresses and prefixes.

use dnspolicy_compiler::{check, Context, JitPolicy};
use serde_json::json;

const SRC: &str = "set blocklist = file(\"block.txt\")\n\
rule names when {query.name} in blocklist { then nxdomain }\n\
rule nets when {client.ip} in blocklist { then refuse }\n\
rule subnets when {client.subnet} in blocklist { then drop }\n";

fn verdicts(src: &str, text: &str, swap: &str, ctxs: &[serde_json::Value]) -> [Vec<String>; 4] {
    let interp = check(src).policy.expect("checks");
    let jitted = check(src).policy.expect("checks");
    let (li, lj) = (interp.live_sets[0].clone(), jitted.live_sets[0].clone());
    assert_eq!(
        (li.name.as_str(), li.path.as_str()),
        ("blocklist", "block.txt")
    );
    li.load_text(text).expect("data");
    lj.load_text(text).expect("data");
    let jit = JitPolicy::compile(jitted, false).expect("jit");
    let stats = jit.stats();
    assert_eq!(stats.interpreted, 0, "{stats:?}");
    let run = |ctxs: &[serde_json::Value]| -> (Vec<String>, Vec<String>) {
        ctxs.iter()
            .map(|c| {
                let ctx = Context::from_json(&interp, c).expect("context");
                let a = format!("{:?}", interp.eval(&ctx).verdict);
                let ctx = Context::from_json(jit.policy(), c).expect("context");
                let b = format!("{:?}", jit.eval(&ctx).verdict.map(|v| v.into_owned()));
                (a, b)
            })
            .unzip()
    };
    let (i1, j1) = run(ctxs);
    li.load_text(swap).expect("data");
    lj.load_text(swap).expect("data");
    let (i2, j2) = run(ctxs);
    [i1, j1, i2, j2]
}

#[test]
fn interpreter_and_jit_follow_the_file_without_recompiling() {
    let ctxs = [
        json!({"query": {"name": "ads.example.com"}, "client": {"ip": "192.0.2.9"}}),
        json!({"query": {"name": "a.tracker.example"}, "client": {"ip": "192.0.2.9"}}),
        json!({"query": {"name": "www.example.com"}, "client": {"ip": "10.1.2.3"}}),
        json!({"query": {"name": "www.example.com"}, "client": {"ip": "192.0.2.9", "subnet": "172.16.5.0/24"}}),
        json!({"query": {"name": "www.example.com"}, "client": {"ip": "192.0.2.9"}}),
    ];
    let [i1, j1, i2, j2] = verdicts(
        SRC,
        "ads.example.com\n*.tracker.example\n10.0.0.0/8\n172.16.0.0/12\n",
        "www.example.com\n192.0.2.9\n",
        &ctxs,
    );
    assert_eq!(i1, j1);
    assert_eq!(i2, j2);
    let nx = "Some(Nxdomain)";
    assert_eq!(i1[0], nx);
    assert_eq!(i1[1], nx);
    assert_eq!(i1[2], "Some(Refuse)");
    assert_eq!(i1[3], "Some(Drop)");
    assert_eq!(i1[4], "None");
    // After the swap: only www.example.com and 192.0.2.9.
    assert_eq!(i2[0], "Some(Refuse)");
    assert_eq!(i2[4], nx);
}

#[test]
fn the_checker_keeps_file_sets_to_lookups() {
    let codes = |src: &str| -> Vec<&'static str> {
        check(src).diagnostics.iter().map(|d| d.code).collect()
    };
    assert!(codes("set b = file(\"b.txt\")\ninput user.host : string\nrule r when {user.host} in b { then refuse }\n").contains(&"E0038"));
    assert!(codes("set b = file(\"b.txt\")\nrule r { then b }\n").contains(&"E0038"));
    assert!(
        codes("set b = file(1)\nrule r when {query.name} in b { then refuse }\n")
            .contains(&"E0044")
    );
    // An injected variable looked up in a file set is a name.
    let c = check("set b = file(\"b.txt\")\nrule r when {user.host} in b { then refuse }\n");
    let p = c.policy.expect("checks");
    assert_eq!(p.inputs[0].ty.to_string(), "name");
    // A string literal is looked up as a name.
    let c = check("set b = file(\"b.txt\")\nrule r when \"A.example\" in b { then refuse }\n");
    assert!(c.policy.is_some(), "{:?}", c.diagnostics);
    // One set, one slot, however many lookups.
    let p = check(SRC).policy.expect("checks");
    assert_eq!(p.live_sets.len(), 1);
}
