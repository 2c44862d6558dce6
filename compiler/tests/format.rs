//! `dnspolicy fmt`'s promises: the formatted program has the same tree
//! (spans aside) and the same verdicts, formatting is idempotent, and every
//! comment is kept in order. On every example and test policy of the repo,
//! on generated programs with comments sprinkled in, and on a pinned
//! messy input.

#[path = "support/programs.rs"]
mod programs;

use dnspolicy_compiler::syntax::format::format;
use dnspolicy_compiler::syntax::lexer::lex;
use dnspolicy_compiler::syntax::parser::parse;
use dnspolicy_compiler::{check, Context};
use programs::{context, program};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// The comments of `src`, in order (from the gaps between tokens).
fn comments(src: &str) -> Vec<String> {
    let (toks, _) = lex(src);
    let mut at = 0usize;
    let mut out = Vec::new();
    let mut gaps: Vec<(usize, usize)> = toks
        .iter()
        .map(|(s, _, e)| {
            let g = (at, *s as usize);
            at = *e as usize;
            g
        })
        .collect();
    gaps.push((at, src.len()));
    for (a, b) in gaps {
        let gap = &src[a..b];
        let mut rest = gap;
        while let Some(i) = rest.find(['#', '/']) {
            let r = &rest[i..];
            if r.starts_with('#') || r.starts_with("//") {
                let len = r.find('\n').unwrap_or(r.len());
                out.push(r[..len].trim_end().to_string());
                rest = &r[len..];
            } else {
                rest = &r[1..];
            }
        }
    }
    out
}

/// Formats `src` and checks every promise; the formatted text.
fn promises(src: &str, what: &str) -> String {
    let f = format(src).unwrap_or_else(|d| panic!("{what} does not parse: {d:?}"));
    let (a, _) = parse(src);
    let (b, errs) = parse(&f);
    assert!(
        errs.is_empty(),
        "{what}: the formatted text does not parse: {errs:?}\n{f}"
    );
    assert_eq!(
        a.without_spans(),
        b.without_spans(),
        "{what}: same tree\n--- formatted ---\n{f}"
    );
    assert_eq!(format(&f).expect("parses"), f, "{what}: idempotent");
    assert_eq!(
        comments(src),
        comments(&f),
        "{what}: comments kept, in order\n{f}"
    );
    f
}

fn dsl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() && !p.ends_with("node_modules") {
            dsl_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "dsl") {
            out.push(p);
        }
    }
}

#[test]
fn every_policy_in_the_repo_keeps_its_meaning_and_comments() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for d in [
        "examples",
        "compiler/tests/cases",
        "compiler/tests/diagnostics",
        "editors/vscode/tests",
    ] {
        dsl_files(&root.join(d), &mut files);
    }
    let mut n = 0;
    for f in files {
        let src = std::fs::read_to_string(&f).expect("read");
        if parse(&src).1.is_empty() {
            promises(&src, &f.display().to_string());
            n += 1;
        }
    }
    assert!(n > 40, "only {n} policies were formatted");
}

/// Kept verbatim from the original design (the angle spelling, one line).
const VERBATIM: [&str; 2] = ["seed.dsl", "design-card.dsl"];

#[test]
fn examples_are_formatted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files = Vec::new();
    dsl_files(&root, &mut files);
    files.retain(|f| !VERBATIM.iter().any(|v| f.ends_with(v)));
    assert!(files.len() >= 5);
    for f in files {
        let src = std::fs::read_to_string(&f).expect("read");
        assert_eq!(
            format(&src).expect("parses"),
            src,
            "{} is not in the canonical layout",
            f.display()
        );
    }
}

#[test]
fn a_messy_policy_gets_the_canonical_layout() {
    let messy = "# header\n\n\nconst   TTL=300\nset  names=[\"a.example\",\n  \"b.example\", # the b one\n]\n\
rule   geo   priority 10 when {query.name}   in names{\n  if {client.region}==\"CN-BJ\" || ({client.asn}>1 && !({client.city}==\"x\")) { then rewrite \"cdn-bj.example.com\" ttl TTL }   # BJ\n\n\n  else { then answer A 192.0.2.1,192.0.2.2 ttl (1+1) }\n  // done\n}\nif <user.age> > 18 < then \"VIP\" >\nrule p { then pool web sticky {client.subnet} count 2 ttl -(1) }\n";
    let want = "# header\n\nconst TTL = 300\nset names = [\n    \"a.example\",\n    \"b.example\",  # the b one\n]\nrule geo priority 10 when {query.name} in names {\n    if {client.region} == \"CN-BJ\" || {client.asn} > 1 && !({client.city} == \"x\") {\n        then rewrite \"cdn-bj.example.com\" ttl TTL  # BJ\n    } else {\n        then answer A 192.0.2.1, 192.0.2.2 ttl (1 + 1)\n    }\n    // done\n}\nif {user.age} > 18 { then \"VIP\" }\nrule p {\n    then pool web sticky {client.subnet} count 2 ttl -1\n}\n";
    let got = promises(messy, "the messy policy");
    assert_eq!(got, want, "\n--- got ---\n{got}");
}

/// `src` with a comment after every `n`th line and a comment line before
/// every `m`th.
fn sprinkle(src: &str, n: usize, m: usize) -> String {
    let mut out = String::new();
    for (i, line) in src.lines().enumerate() {
        if m > 0 && i % m == 0 {
            out.push_str(&format!("# before {i}\n"));
        }
        out.push_str(line);
        if n > 0 && i % n == 0 {
            out.push_str(&format!(" // after {i}"));
        }
        out.push('\n');
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn generated_programs_keep_their_verdicts(
        src in program(),
        n in 0usize..4,
        m in 0usize..5,
        ctxs in proptest::collection::vec(context(), 1..6),
    ) {
        let src = sprinkle(&src, n, m);
        let f = promises(&src, "a generated program");
        let a = check(&src).policy.expect("valid");
        let b = check(&f).policy.expect("still valid");
        for c in &ctxs {
            let ca = Context::from_json(&a, c).expect("context");
            let cb = Context::from_json(&b, c).expect("context");
            let (va, vb) = (a.eval(&ca), b.eval(&cb));
            prop_assert_eq!(va.verdict.map(|v| v.to_json()), vb.verdict.map(|v| v.to_json()));
            prop_assert_eq!(va.rule, vb.rule);
        }
    }
}
