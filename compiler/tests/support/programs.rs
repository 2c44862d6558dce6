//! Generators of well-typed programs and of contexts, shared by the
//! property tests of every backend (the interpreter with and without its
//! index here; the WASM module in `runtime/tests/wasm_differential.rs`).
//! Included with `#[path]`, so each test crate compiles its own copy.

#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::json;

pub fn int_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (-1000i64..1000).prop_map(|v| v.to_string()),
        Just("{user.n}".to_string()),
        Just("{client.asn}".to_string()),
        Just("{time.hour}".to_string()),
        Just("len({client.city})".to_string()),
        Just("hash({client.subnet})".to_string()),
        Just("hash({query.name})".to_string()),
        Just("hash({client.ip})".to_string()),
        Just("hash({user.region})".to_string()),
        Just("hash({query.type})".to_string()),
        Just("hash({user.flag})".to_string()),
        Just("hash({user.n})".to_string()),
        Just("len({query.name})".to_string()),
        Just("-{user.n}".to_string()),
        Just("9223372036854775807".to_string()),
        Just("(-9223372036854775807 - 1)".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
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

pub fn bool_expr() -> impl Strategy<Value = String> {
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
            "false",
            "{query.type} == AAAA",
            "{query.type} != A",
            "{client.ip} == 10.1.2.3",
            "{client.ip} != 2001:db8::5",
            "{client.ip} in 10.1.0.0/16",
            "{client.subnet} == 10.1.2.0/24",
            "{client.subnet} in nets",
            "{client.asn} in [64496, 5000, 7000]",
            "{user.region} in [\"US-CA\", \"CN-BJ\"]",
            "{client.region} in regions",
            "{client.region} starts_with \"CN\"",
            "{client.region} ends_with \"-CA\"",
            "{query.name} starts_with \"www\"",
            "{query.name} ends_with \"net\"",
            "{query.name} in [\"x.test\", {query.name}]",
            "{client.city} == \"\"",
            "{query.transport} == \"tcp\"",
            "{query.dnssec_ok}",
            "{user.flag} == {query.dnssec_ok}",
            "{client.region} matches \"^CN-\"",
            "{query.name} not in names && {query.name} ends_with \"example.net\"",
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

pub fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("nxdomain".to_string()),
        Just("pass".to_string()),
        Just("rewrite \"cdn.example.com\" ttl 60".to_string()),
        Just("answer A 192.0.2.1, 192.0.2.2".to_string()),
        Just("forward backup".to_string()),
        int_expr(),
        Just("{user.region}".to_string()),
        Just("{client.ip}".to_string()),
        Just("{client.subnet}".to_string()),
        Just("{query.name}".to_string()),
        Just("{query.type}".to_string()),
        Just("{user.flag}".to_string()),
        Just("\"literal\"".to_string()),
        Just("answer AAAA 2001:db8::1 ttl 30".to_string()),
        Just("answer TXT \"hello\"".to_string()),
        Just("refuse".to_string()),
        Just("servfail".to_string()),
        Just("nodata".to_string()),
        Just("drop".to_string()),
        Just("truncate".to_string()),
        Just("forward \"partner\"".to_string()),
    ]
}

pub fn block() -> impl Strategy<Value = String> {
    let leaf = action().prop_map(|a| format!("then {a}"));
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (bool_expr(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("if {c} {{ {a} }} else {{ {b} }}")),
            (bool_expr(), inner.clone()).prop_map(|(c, a)| format!("if {c} {{ {a} }}")),
            (int_expr(), inner.clone())
                .prop_map(|(e, a)| format!("let v = {e}\nif v > 3 {{ {a} }}")),
            inner.prop_map(|a| format!(
                "let s = {{client.region}}\nif s == \"CN-BJ\" || s == \"\" {{ {a} }}"
            )),
        ]
    })
}

pub fn program() -> impl Strategy<Value = String> {
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
             set regions = [\"CN-BJ\", \"US-CA\"]\n\
             input user.n : int\ninput user.flag : bool\ninput user.region : string\n",
        );
        for (i, (prio, guard, body)) in rules.into_iter().enumerate() {
            let guard = guard.map(|g| format!(" when {g}")).unwrap_or_default();
            src.push_str(&format!("rule r{i} priority {prio}{guard} {{\n{body}\n}}\n"));
        }
        src
    })
}

pub fn context() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::option::of(prop::sample::select(vec![
            "www.example.com",
            "a.example.net",
            "example.net",
            "x.test",
            "www.example.net",
            "deep.a.example.net",
            "example.com",
        ])),
        prop::option::of(prop::sample::select(vec![
            "10.1.2.3",
            "192.0.2.1",
            "2001:db8::5",
            "::1",
        ])),
        prop::option::of(prop::sample::select(vec!["CN-BJ", "US-CA", "CN-SH", ""])),
        prop::option::of(-3i64..30),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec!["A", "AAAA", "TXT"])),
        0i64..2_000_000_000,
        (
            prop::option::of(prop::sample::select(vec!["Beijing", "", "Zürich"])),
            prop::option::of(prop::sample::select(vec!["udp", "tcp"])),
            prop::option::of(any::<bool>()),
        ),
    )
        .prop_map(
            |(name, ip, region, n, flag, qtype, time, (city, transport, dnssec))| {
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
                if let Some(v) = city {
                    put("client.city", json!(v));
                }
                if let Some(v) = transport {
                    put("query.transport", json!(v));
                }
                if let Some(v) = dnssec {
                    put("query.dnssec_ok", json!(v));
                }
                serde_json::Value::Object(m)
            },
        )
}
