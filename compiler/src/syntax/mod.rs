//! The front end's syntax layer: source text → tokens ([`lexer`], logos) →
//! syntax tree ([`parser`], LALRPOP from `grammar/dnspolicy.lalrpop`;
//! [`ast`]), and back to text in the canonical layout ([`mod@format`]). Positions are byte [`span`]s.
//!
//! Depends on nothing but [`crate::diagnostics`] (to report errors) and the
//! scalar types of [`crate::ir::types`] (addresses and prefixes are parsed
//! while lexing).

pub mod ast;
pub mod format;
pub mod lexer;
pub mod parser;
pub mod span;
