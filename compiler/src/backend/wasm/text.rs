//! Checking and showing an emitted module: validation with `wasmparser`
//! and the text form (`dnspolicy compile --target wat`).

/// Validates a module with `wasmparser` (the features wasmtime enables by
/// default).
pub fn validate(wasm: &[u8]) -> Result<(), ModuleError> {
    wasmparser::Validator::new()
        .validate_all(wasm)
        .map(|_| ())
        .map_err(|e| ModuleError::Invalid(e.to_string()))
}

/// The module as text, for inspection (`compile --target wat`).
pub fn to_wat(wasm: &[u8]) -> Result<String, ModuleError> {
    wasmprinter::print_bytes(wasm).map_err(|e| ModuleError::Print(e.to_string()))
}

/// An emitted module that does not validate (a bug in the emitter), or
/// cannot be printed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModuleError {
    /// `wasmparser` refused it.
    #[error("invalid WASM module: {0}")]
    Invalid(String),
    /// `wasmprinter` could not print it.
    #[error("cannot print the module as text: {0}")]
    Print(String),
}
