//! `dnspolicy check FILE...`

use crate::output::{plural, print_human, print_json, use_color};
use crate::{ColorChoice, Format};
use dnspolicy_compiler::check;
use std::path::PathBuf;
use std::process::ExitCode;

struct FileResult {
    lua: bool,
    wasm: bool,
    meta: bool,
    errors: usize,
    warnings: usize,
    rules: usize,
    sets: usize,
}

/// Checks every file; exit 0 when all are clean, 1 on errors, 2 on I/O errors.
pub fn run(files: &[PathBuf], format: Format, color: ColorChoice) -> ExitCode {
    let color = use_color(color);
    let mut io_error = false;
    let mut results = Vec::new();
    for path in files {
        let name = path.display().to_string();
        if path.extension().is_some_and(|e| e == "wasm" || e == "wat") {
            if let Err(e) = std::fs::metadata(path) {
                eprintln!("error: cannot read {name}: {e}");
                io_error = true;
                continue;
            }
            results.extend(check_metadata_beside(path, format, color));
            let r = check_wasm(path, &name, format, color);
            if files.len() > 1 {
                summary_line(&format!("{name}: {}", summary(&r)), format);
            }
            results.push(r);
            continue;
        }
        let src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot read {name}: {e}");
                io_error = true;
                continue;
            }
        };
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let r = check_metadata(&src, &name, format, color);
            if files.len() > 1 {
                summary_line(&format!("{name}: {}", summary(&r)), format);
            }
            results.push(r);
            continue;
        }
        results.extend(check_metadata_beside(path, format, color));
        if path.extension().is_some_and(|e| e == "lua") {
            let r = check_lua(&src, &name, format, color);
            if files.len() > 1 {
                summary_line(&format!("{name}: {}", summary(&r)), format);
            }
            results.push(r);
            continue;
        }
        let checked = check(&src);
        match format {
            Format::Human => print_human(&checked.diagnostics, &name, &src, color),
            Format::Json => print_json(&checked.diagnostics, &name, &src),
        }
        let errors = checked.error_count();
        let (rules, sets) = checked
            .policy
            .as_ref()
            .map_or((0, 0), |p| (p.rule_count(), p.declared_sets));
        let r = FileResult {
            lua: false,
            wasm: false,
            meta: false,
            errors,
            warnings: checked.diagnostics.len() - errors,
            rules,
            sets,
        };
        if files.len() > 1 {
            summary_line(&format!("{name}: {}", summary(&r)), format);
        }
        results.push(r);
    }
    let total = FileResult {
        lua: !results.is_empty() && results.iter().all(|r| r.lua),
        wasm: !results.is_empty() && results.iter().all(|r| r.wasm),
        meta: !results.is_empty() && results.iter().all(|r| r.meta),
        errors: results.iter().map(|r| r.errors).sum(),
        warnings: results.iter().map(|r| r.warnings).sum(),
        rules: results.iter().map(|r| r.rules).sum(),
        sets: results.iter().map(|r| r.sets).sum(),
    };
    if files.len() > 1 || results.is_empty() {
        let mut line = summary(&total);
        if !results.is_empty() {
            line.push_str(&format!(" in {}", plural(results.len(), "file")));
        }
        if !io_error || !results.is_empty() {
            summary_line(&line, format);
        }
    } else {
        summary_line(&summary(&total), format);
    }
    if io_error {
        ExitCode::from(2)
    } else if total.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A plugin's metadata file beside it (`NAME.yaml`) is checked with it; the
/// result counts only when it has errors.
fn check_metadata_beside(
    path: &std::path::Path,
    format: Format,
    color: bool,
) -> Option<FileResult> {
    let meta_path = path.with_extension("yaml");
    let meta_src = std::fs::read_to_string(&meta_path).ok()?;
    let r = check_metadata(&meta_src, &meta_path.display().to_string(), format, color);
    (r.errors > 0).then_some(r)
}

/// A metadata file is checked against the shipped JSON Schema; the error
/// names the offending field's path.
fn check_metadata(src: &str, name: &str, format: Format, color: bool) -> FileResult {
    let mut diags = Vec::new();
    if let Err(reason) = dnspolicy_runtime::plugin::parse_metadata(src) {
        diags.push(
            dnspolicy_compiler::Diagnostic::error(
                "E0051",
                format!("invalid plugin metadata: {reason}"),
                dnspolicy_compiler::Span::default(),
            )
            .with_label("checked against runtime/schema/plugin.schema.json"),
        );
    }
    match format {
        Format::Human => print_human(&diags, name, src, color),
        Format::Json => print_json(&diags, name, src),
    }
    FileResult {
        lua: false,
        wasm: false,
        meta: true,
        errors: diags.len(),
        warnings: 0,
        rules: 0,
        sets: 0,
    }
}

/// A Lua plugin is checked by loading it into a sandboxed state: it must
/// compile, its top-level code must run within the default limits, and it
/// must define `apply`. Neither `init` nor `apply` runs.
fn check_lua(src: &str, name: &str, format: Format, color: bool) -> FileResult {
    let stem = std::path::Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name);
    let mut diags = Vec::new();
    if let Err(msg) = dnspolicy_runtime::lua::check_script(src, stem) {
        // Lua reports `NAME:LINE: message`; point at that line.
        let line: Option<usize> = msg
            .split(&format!("{stem}:"))
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.trim().parse().ok());
        let span = line
            .map(|l| {
                let start: usize = src
                    .split_inclusive('\n')
                    .take(l.saturating_sub(1))
                    .map(str::len)
                    .sum();
                let len = src[start..].find('\n').unwrap_or(src.len() - start);
                dnspolicy_compiler::Span::new(start as u32, (start + len) as u32)
            })
            .unwrap_or_default();
        let first = msg.lines().next().unwrap_or(&msg).to_string();
        diags.push(
            dnspolicy_compiler::Diagnostic::error("E0050", first, span)
                .with_label("this Lua plugin would not load"),
        );
    }
    match format {
        Format::Human => print_human(&diags, name, src, color),
        Format::Json => print_json(&diags, name, src),
    }
    FileResult {
        errors: diags.len(),
        warnings: 0,
        rules: 0,
        sets: 0,
        lua: true,
        wasm: false,
        meta: false,
    }
}

/// A WASM plugin is compiled and checked against the ABI (imports, exports
/// and their types, size) without being instantiated: nothing of it runs.
fn check_wasm(path: &std::path::Path, name: &str, format: Format, color: bool) -> FileResult {
    let mut diags = Vec::new();
    // The size limit may be raised in the metadata beside the module.
    let max = std::fs::read_to_string(path.with_extension("yaml"))
        .ok()
        .and_then(|t| dnspolicy_runtime::plugin::parse_metadata(&t).ok())
        .and_then(|m| dnspolicy_runtime::host::Limits::from_metadata(&m.limits).ok())
        .map_or(dnspolicy_runtime::wasm::MAX_MODULE_BYTES, |l| {
            l.module_bytes
        });
    let result = dnspolicy_runtime::plugin::read_module(path, max)
        .map_err(|e| e.to_string())
        .and_then(|bytes| dnspolicy_runtime::wasm::check_module(&bytes, max));
    if let Err(msg) = result {
        diags.push(
            dnspolicy_compiler::Diagnostic::error(
                "E0052",
                msg,
                dnspolicy_compiler::Span::default(),
            )
            .with_label("this WASM plugin would not load (see grammar/WASM-ABI.md)"),
        );
    }
    // The text shown under a diagnostic: the source of a .wat, nothing of a binary.
    let src = if path.extension().is_some_and(|e| e == "wat") {
        std::fs::read_to_string(path).unwrap_or_default()
    } else {
        String::new()
    };
    match format {
        Format::Human => print_human(&diags, name, &src, color),
        Format::Json => print_json(&diags, name, &src),
    }
    FileResult {
        errors: diags.len(),
        warnings: 0,
        rules: 0,
        sets: 0,
        lua: false,
        wasm: true,
        meta: false,
    }
}

fn summary(r: &FileResult) -> String {
    if r.lua && r.errors == 0 {
        return "ok: Lua plugin defines apply".to_string();
    }
    if r.wasm && r.errors == 0 {
        return format!(
            "ok: WASM plugin matches ABI version {}",
            dnspolicy_runtime::wasm::ABI_VERSION
        );
    }
    if r.meta && r.errors == 0 {
        return "ok: plugin metadata".to_string();
    }
    let mut s = if r.errors > 0 {
        plural(r.errors, "error")
    } else {
        format!("ok: {}, {}", plural(r.rules, "rule"), plural(r.sets, "set"))
    };
    if r.warnings > 0 {
        s.push_str(&format!(", {}", plural(r.warnings, "warning")));
    }
    s
}

/// Summaries go to stdout for people and to stderr in JSON mode, so that
/// stdout stays pure JSON lines there.
fn summary_line(line: &str, format: Format) {
    match format {
        Format::Human => crate::output::outln(line),
        Format::Json => eprintln!("{line}"),
    }
}
