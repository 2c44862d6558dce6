//! The dnspolicy language: lexer, parser, checker, typed IR and the
//! reference interpreter.
//!
//! This crate does no I/O: callers hand it source text and contexts. The
//! pipeline flows one way: source → tokens ([`lexer`]) → syntax tree
//! ([`parser`], [`ast`]) → checked, typed IR ([`mod@check`], [`ir`]) → verdicts
//! ([`interp`]).
//!
//! ```
//! use dnspolicy_compiler::{compile, Context, Value, Verdict};
//!
//! let src = r#"if {user.age} > 18 && {order.total} >= 100 { then "VIP" }"#;
//! let policy = compile(src).expect("the example checks");
//! let mut ctx = Context::default();
//! ctx.set_var("user.age", Value::Int(20));
//! ctx.set_var("order.total", Value::Int(150));
//! assert_eq!(policy.eval(&ctx).verdict, Some(Verdict::Value(Value::Str("VIP".into()))));
//! ```
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod ast;
pub mod check;
pub mod context;
pub mod diagnostics;
pub mod hash;
pub mod index;
pub mod interp;
pub mod ir;
pub mod jit;
pub mod lexer;
pub mod parser;
pub mod span;
pub mod types;
pub mod value;
pub mod wasm;

pub use check::{check, Checked};
pub use context::{Context, Field};
pub use diagnostics::{Diagnostic, Severity};
pub use interp::{Evaluation, Trace};
pub use ir::Policy;
pub use span::Span;
pub use types::{Cidr, Type};
pub use value::{Value, Verdict};

/// Parses and checks `src`. On success returns the policy (warnings are
/// dropped; use [`check()`] to see them); on failure every diagnostic.
pub fn compile(src: &str) -> Result<Policy, Vec<Diagnostic>> {
    let checked = check(src);
    match checked.policy {
        Some(p) => Ok(p),
        None => Err(checked.diagnostics),
    }
}
