//! Property tests: nothing a user can type makes the front end panic, and
//! every program that checks evaluates without panicking on any context.

use dnspolicy_compiler::ir::context::FIELDS;
use dnspolicy_compiler::syntax::lexer::KEYWORDS;
use dnspolicy_compiler::{check, Context};
use proptest::prelude::*;

/// Punctuation, literals and near-misses; with the keywords of the lexer's
/// own table they make random token soups.
const EXTRA: &[&str] = &[
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "=",
    ",",
    ":",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "!",
    "&&",
    "||",
    "x",
    "user.age",
    "<user.age>",
    "<then>",
    "{client.ip}",
    "{query.name}",
    "A",
    "AAAA",
    "TXT",
    "0",
    "18",
    "-1",
    "99999999999999999999",
    "9223372036854775808",
    "\"s\"",
    "\"*.example.com\"",
    "\"\\q\"",
    "\"open",
    "10.0.0.0/8",
    "10.0.0.1/8",
    "1.2.3.4",
    "1.2.3.999",
    "::1",
    "2001:db8::/32",
    "hash",
    "lower",
    "len",
    "#c\n",
    "\n",
    "r\"(a\"",
    "@",
    "int",
    "string",
    "[string]",
];

fn vocab() -> Vec<&'static str> {
    KEYWORDS.iter().chain(EXTRA).copied().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let src = String::from_utf8_lossy(&bytes);
        let _ = check(&src);
    }

    #[test]
    fn random_token_soup_never_panics(toks in proptest::collection::vec(proptest::sample::select(vocab()), 0..60)) {
        let src = toks.join(" ");
        let checked = check(&src);
        if let Some(policy) = checked.policy {
            let _ = policy.eval(&Context::default());
        }
    }
}

// ------------------------------------------------------------ well-formed programs

#[path = "support/programs.rs"]
mod programs;
use programs::{context, program};

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Generated well-typed programs check cleanly and evaluate on any
    /// context (the generator the JIT and WASM backends will share).
    #[test]
    fn generated_programs_check_and_evaluate(src in program(), ctxs in proptest::collection::vec(context(), 1..6)) {
        let checked = check(&src);
        let errors: Vec<_> = checked.diagnostics.iter().filter(|d| d.is_error()).collect();
        prop_assert!(errors.is_empty(), "{src}\n{errors:?}");
        let policy = checked.policy.expect("no errors, so a policy");
        for c in ctxs {
            let ctx = Context::from_json(&policy, &c).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let a = policy.eval(&ctx);
            let b = policy.eval_traced(&ctx);
            let c = policy.eval_without_index(&ctx);
            prop_assert_eq!(&a.verdict, &b.verdict);
            prop_assert_eq!(&a.verdict, &c.verdict, "the name index changed the verdict of\n{}", src);
            prop_assert_eq!(a.rule, c.rule);
        }
    }
}

#[test]
fn context_table_paths_all_resolve() {
    for f in FIELDS {
        let src = format!("then {{{}}}", f.path);
        let checked = check(&src);
        assert!(
            checked.policy.is_some(),
            "{}: {:?}",
            f.path,
            checked.diagnostics
        );
    }
}
