//! The plugin SDKs against the ABI's one source (`dnspolicy_compiler::abi`):
//! the Rust SDK's `sys` imports and the C header's `DNSPOLICY_IMPORT` and
//! `DNSPOLICY_EXPORT` declarations name exactly the table's functions, with
//! its parameter and result types (pointers and `int32_t` are `i32` on
//! wasm32, `int64_t` is `i64`). A change of the ABI fails here, not in
//! production.

use dnspolicy_compiler::abi::{AbiFunc, Ty, ABI_VERSION, EXPORTS, HOST_IMPORTS};
use std::collections::BTreeMap;
use std::path::Path;

type Sig = (Vec<&'static str>, Vec<&'static str>);

fn read(p: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p))
        .unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn wasm_ty(c_or_rust: &str) -> &'static str {
    let t = c_or_rust.trim();
    if t.contains("i64") || t.contains("int64_t") {
        "i64"
    } else {
        "i32"
    }
}

fn table(funcs: &[AbiFunc]) -> BTreeMap<String, Sig> {
    let name = |t: &Ty| match t {
        Ty::I32 => "i32",
        Ty::I64 => "i64",
    };
    funcs
        .iter()
        .map(|f| {
            (
                f.name.to_string(),
                (
                    f.params.iter().map(name).collect(),
                    f.results.iter().map(name).collect(),
                ),
            )
        })
        .collect()
}

/// Splits `a, b, c` at top-level commas.
fn params(list: &str) -> Vec<&'static str> {
    let list = list.trim();
    if list.is_empty() || list == "void" {
        return Vec::new();
    }
    list.split(',').map(wasm_ty).collect()
}

#[test]
fn rust_sdk_imports_are_the_abi_table() {
    let src = read("sdk/rust/dnspolicy-plugin/src/lib.rs");
    let block = src
        .split("extern \"C\" {")
        .nth(1)
        .and_then(|b| b.split("\n    }\n").next())
        .expect("the sys extern block");
    let flat = block.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut got = BTreeMap::new();
    for decl in flat.split(';').filter(|d| d.contains("pub fn ")) {
        let decl = decl.trim().trim_start_matches("pub fn ");
        let (name, rest) = decl.split_once('(').expect("(");
        let (args, ret) = rest.rsplit_once(')').expect(")");
        let args: Vec<&str> = args
            .split(',')
            .filter(|a| !a.trim().is_empty())
            .map(|a| a.split_once(':').map_or(a, |(_, t)| t))
            .collect();
        let results = match ret.trim().strip_prefix("->") {
            Some(t) => vec![wasm_ty(t)],
            None => Vec::new(),
        };
        got.insert(name.trim().to_string(), (params(&args.join(",")), results));
    }
    assert_eq!(got, table(HOST_IMPORTS));
    assert!(src.contains(&format!("pub const ABI_VERSION: i32 = {ABI_VERSION};")));
    for e in EXPORTS {
        assert!(
            src.contains(&format!("#[export_name = \"{}\"]", e.name)),
            "export_plugin! exports {}",
            e.name
        );
    }
}

#[test]
fn c_header_declares_the_abi_table() {
    let src = read("examples/plugins/wasm/dnspolicy_plugin.h");
    let flat = src.split_whitespace().collect::<Vec<_>>().join(" ");
    let decls = |marker: &str| -> BTreeMap<String, Sig> {
        flat.split(marker)
            .skip(1)
            .filter_map(|d| {
                let (name, rest) = d.split_once(')')?;
                // The macro's own definition.
                if name == "name" {
                    return None;
                }
                let rest = rest.split(';').next()?;
                let (ret_and_fn, args) = rest.split_once('(')?;
                let args = args.rsplit_once(')')?.0;
                let ret = ret_and_fn.split_whitespace().next()?;
                let results = if ret == "void" {
                    Vec::new()
                } else {
                    vec![wasm_ty(ret)]
                };
                Some((name.trim().to_string(), (params(args), results)))
            })
            .collect()
    };
    assert_eq!(decls("DNSPOLICY_IMPORT("), table(HOST_IMPORTS));
    assert_eq!(decls("DNSPOLICY_EXPORT("), table(EXPORTS));
    assert!(flat.contains(&format!("#define DNSPOLICY_ABI_VERSION {ABI_VERSION}")));
}
