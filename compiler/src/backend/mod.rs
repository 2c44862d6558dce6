//! Everything that runs a checked [`crate::ir::Policy`]: the reference
//! [`interp`]reter, which defines the meaning of every construct, and the
//! two compilers tested against it, [`jit`] (Cranelift, native code in this
//! process) and [`wasm`] (a stand-alone plugin module of the ABI in
//! [`crate::abi`]).
//!
//! Backends consume the IR only; they never look at syntax. Nothing here
//! does I/O: running a WASM module is the runtime's job.

pub mod interp;
pub mod jit;
pub mod wasm;
