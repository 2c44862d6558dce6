//! The dnspolicy language: everything from source text to a verdict, with
//! no I/O (callers hand it source text and contexts).
//!
//! The pipeline flows one way, one module per stage:
//! source → tokens ([`syntax::lexer`]) → syntax tree ([`syntax::parser`],
//! [`syntax::ast`]) → checked, typed IR ([`mod@check`], [`ir`]) → verdicts,
//! on one of three [`backend`]s: the reference interpreter
//! ([`backend::interp`]), native code from Cranelift ([`backend::jit`]), or a
//! WASM plugin module ([`backend::wasm`]) of the one plugin ABI ([`abi`]).
//! [`diagnostics`] is the one module that renders errors.
//!
//! The whole pipeline, on each backend that runs in-process (the WASM
//! module is run by `dnspolicy-runtime`; here it is emitted and validated):
//!
//! ```
//! use dnspolicy_compiler::{compile, Context, JitPolicy, Value, Verdict};
//!
//! let src = r#"if {user.age} > 18 && {order.total} >= 100 { then "VIP" }"#;
//! let policy = compile(src).expect("the example checks");
//! let mut ctx = Context::default();
//! ctx.set_var("user.age", Value::Int(20));
//! ctx.set_var("order.total", Value::Int(150));
//! let vip = Some(Verdict::Value(Value::Str("VIP".into())));
//!
//! // The reference interpreter.
//! assert_eq!(policy.eval(&ctx).verdict, vip);
//! // The WASM emitter: a module the plugin host can load.
//! let module = dnspolicy_compiler::backend::wasm::emit(&policy).expect("lowers");
//! dnspolicy_compiler::backend::wasm::validate(&module).expect("valid WASM");
//! // Native code.
//! let jit = JitPolicy::compile(policy, false).expect("compiles");
//! assert_eq!(jit.eval(&ctx).verdict.map(|v| v.into_owned()), vip);
//! ```
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod abi;
pub mod backend;
pub mod check;
pub mod diagnostics;
pub mod ir;
pub mod syntax;

pub use backend::interp::{Evaluation, Trace};
pub use backend::jit::JitPolicy;
pub use check::{check, check_for_serving, check_for_serving_with, Checked};
pub use diagnostics::{Diagnostic, Severity};
pub use ir::context::{Context, Field};
pub use ir::types::{Cidr, Type};
pub use ir::value::{Value, Verdict};
pub use ir::Policy;
pub use syntax::span::Span;

/// Parses and checks `src`. On success returns the policy (warnings are
/// dropped; use [`check()`] to see them); on failure every diagnostic.
pub fn compile(src: &str) -> Result<Policy, Vec<Diagnostic>> {
    let checked = check(src);
    match checked.policy {
        Some(p) => Ok(p),
        None => Err(checked.diagnostics),
    }
}
