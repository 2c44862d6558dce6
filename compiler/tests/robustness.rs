//! Property tests: nothing a user can type makes the front end panic, and
//! every program that checks evaluates without panicking on any context.

use dnspolicy_compiler::context::FIELDS;
use dnspolicy_compiler::lexer::KEYWORDS;
use dnspolicy_compiler::{check, Context};
use proptest::prelude::*;
use serde_json::json;

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

fn int_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (-1000i64..1000).prop_map(|v| v.to_string()),
        Just("{user.n}".to_string()),
        Just("{client.asn}".to_string()),
        Just("{time.hour}".to_string()),
        Just("len({client.city})".to_string()),
        Just("hash({client.subnet})".to_string()),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        (
            inner.clone(),
            prop::sample::select(vec!["+", "-", "*", "/", "%"]),
            inner,
        )
            .prop_map(|(a, op, b)| format!("({a} {op} {b})"))
    })
}

fn bool_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (
            int_expr(),
            prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]),
            int_expr()
        )
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        prop::sample::select(vec![
            "{query.name} in names",
            "{query.name} not in names",
            "{query.name} == \"www.example.com\"",
            "{query.name} ends_with \"example.com\"",
            "{query.name} matches r\"^w+\\.\"",
            "{client.ip} in nets",
            "{client.subnet} in 10.0.0.0/8",
            "{client.region} == \"CN-BJ\"",
            "{client.region} != {user.region}",
            "{query.type} in [A, AAAA]",
            "{user.flag}",
            "true",
        ])
        .prop_map(String::from),
    ];
    leaf.prop_recursive(3, 10, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec!["&&", "||"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("nxdomain".to_string()),
        Just("pass".to_string()),
        Just("rewrite \"cdn.example.com\" ttl 60".to_string()),
        Just("answer A 192.0.2.1, 192.0.2.2".to_string()),
        Just("forward backup".to_string()),
        int_expr(),
        Just("{user.region}".to_string()),
    ]
}

fn block() -> impl Strategy<Value = String> {
    let leaf = action().prop_map(|a| format!("then {a}"));
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (bool_expr(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("if {c} {{ {a} }} else {{ {b} }}")),
            (bool_expr(), inner.clone()).prop_map(|(c, a)| format!("if {c} {{ {a} }}")),
            (int_expr(), inner).prop_map(|(e, a)| format!("let v = {e}\n{a}")),
        ]
    })
}

fn program() -> impl Strategy<Value = String> {
    let guard = prop_oneof![
        bool_expr(),
        Just("{query.name} == \"www.example.com\"".to_string()),
        Just("{query.name} ends_with \"example.net\"".to_string()),
        Just("{query.name} in names && {client.asn} > 3".to_string()),
        Just("{query.name} == \"x.test\" || {query.name} in names".to_string()),
    ];
    proptest::collection::vec((-5i64..5, prop::option::of(guard), block()), 1..6).prop_map(|rules| {
        let mut src = String::from(
            "set names = [\"www.example.com\", \"*.example.net\"]\nset nets = [10.1.0.0/16, 2001:db8::/32]\n\
             input user.n : int\ninput user.flag : bool\ninput user.region : string\n",
        );
        for (i, (prio, guard, body)) in rules.into_iter().enumerate() {
            let guard = guard.map(|g| format!(" when {g}")).unwrap_or_default();
            src.push_str(&format!("rule r{i} priority {prio}{guard} {{\n{body}\n}}\n"));
        }
        src
    })
}

fn context() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::option::of(prop::sample::select(vec![
            "www.example.com",
            "a.example.net",
            "example.net",
            "x.test",
        ])),
        prop::option::of(prop::sample::select(vec![
            "10.1.2.3",
            "192.0.2.1",
            "2001:db8::5",
            "::1",
        ])),
        prop::option::of(prop::sample::select(vec!["CN-BJ", "US-CA", ""])),
        prop::option::of(-3i64..30),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec!["A", "AAAA", "TXT"])),
        0i64..2_000_000_000,
    )
        .prop_map(|(name, ip, region, n, flag, qtype, time)| {
            let mut m = serde_json::Map::new();
            let mut put = |k: &str, v: serde_json::Value| {
                m.insert(k.to_string(), v);
            };
            if let Some(v) = name {
                put("query.name", json!(v));
            }
            if let Some(v) = ip {
                put("client.ip", json!(v));
            }
            if let Some(v) = region {
                put("client.region", json!(v));
                put("user.region", json!("US-CA"));
            }
            if let Some(v) = n {
                put("user.n", json!(v));
                put("client.asn", json!(v * 1000));
            }
            if let Some(v) = flag {
                put("user.flag", json!(v));
            }
            if let Some(v) = qtype {
                put("query.type", json!(v));
            }
            put("time", json!(time));
            serde_json::Value::Object(m)
        })
}

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
            let ctx = Context::from_json(&policy, &c).map_err(TestCaseError::fail)?;
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
