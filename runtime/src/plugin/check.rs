//! What `dnspolicy check` says about plugin files that are not policies: a
//! Lua script, a WASM module or a metadata file, checked exactly as `serve`
//! would load them (nothing of them serves), as compiler [`Diagnostic`]s so
//! the CLI renders them like any other (E0050 Lua, E0051 metadata, E0052
//! WASM).

use super::host::Limits;
use super::metadata::parse_metadata;
use super::wasm::{check_module, MAX_MODULE_BYTES};
use super::{lua, read_module};
use dnspolicy_compiler::{Diagnostic, Span};
use std::path::Path;

/// A Lua plugin: it must compile as text, its top-level code must run in
/// the sandbox within the default limits, and it must define `apply`.
/// Neither `init` nor `apply` runs. `file_name` is how Lua names the
/// chunk in its messages.
pub fn check_lua(src: &str, file_name: &str) -> Vec<Diagnostic> {
    let Err(e) = lua::check_script(src, file_name) else {
        return Vec::new();
    };
    let span = match &e {
        lua::LuaError::Script { line: Some(l), .. } => line_span(src, *l),
        _ => Span::default(),
    };
    let text = e.to_string();
    let first = text.lines().next().unwrap_or(&text).to_string();
    vec![Diagnostic::error("E0050", first, span).with_label("this Lua plugin would not load")]
}

/// A metadata file, against the shipped JSON Schema; the message names the
/// offending field's path.
pub fn check_metadata(src: &str) -> Vec<Diagnostic> {
    match parse_metadata(src) {
        Ok(_) => Vec::new(),
        Err(reason) => vec![Diagnostic::error(
            "E0051",
            format!("invalid plugin metadata: {reason}"),
            Span::default(),
        )
        .with_label("checked against runtime/schema/plugin.schema.json")],
    }
}

/// A WASM module (`.wasm` or `.wat`), compiled and checked against the ABI
/// without being instantiated; the size limit may be raised by the
/// metadata beside it. Errors reading the file are the caller's (I/O, not
/// a diagnostic).
pub fn check_wasm(path: &Path) -> Result<Vec<Diagnostic>, std::io::Error> {
    std::fs::metadata(path)?;
    let max = std::fs::read_to_string(path.with_extension("yaml"))
        .ok()
        .and_then(|t| parse_metadata(&t).ok())
        .and_then(|m| Limits::from_metadata(&m.limits).ok())
        .map_or(MAX_MODULE_BYTES, |l| l.module_bytes);
    let result = match read_module(path, max) {
        Ok(bytes) => check_module(&bytes, max).map_err(|e| e.to_string()),
        Err(super::PluginError::Io(_, e)) => return Err(e),
        Err(e) => Err(e.to_string()),
    };
    Ok(match result {
        Ok(()) => Vec::new(),
        Err(msg) => vec![Diagnostic::error("E0052", msg, Span::default())
            .with_label("this WASM plugin would not load (see grammar/WASM-ABI.md)")],
    })
}

/// The span of 1-based line `line` of `src` (empty at the end when the
/// text is shorter).
fn line_span(src: &str, line: u32) -> Span {
    let start: usize = src
        .split_inclusive('\n')
        .take((line as usize).saturating_sub(1))
        .map(str::len)
        .sum();
    let len = src[start..].find('\n').unwrap_or(src.len() - start);
    Span::new(start as u32, (start + len) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_errors_point_at_their_line() {
        let src = "function apply(ctx)\n  x = = 1\nend\n";
        let d = check_lua(src, "bad.lua");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, "E0050");
        assert_eq!(d[0].primary.span.text(src), "  x = = 1");
        assert!(check_lua("function apply(ctx) end", "ok.lua").is_empty());
        let none = check_lua("x = 1", "none.lua");
        assert!(none[0].message.contains("does not define `apply(ctx)`"));
    }

    #[test]
    fn metadata_errors_name_the_field() {
        let d = check_metadata("limits:\n  memory: 5\n");
        assert_eq!(d[0].code, "E0051");
        assert!(d[0].message.contains("/limits/memory"), "{}", d[0].message);
        assert!(check_metadata("priority: 3\n").is_empty());
    }
}
