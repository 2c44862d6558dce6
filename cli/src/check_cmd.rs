//! `dnspolicy check FILE...`: policies through the compiler's checker;
//! Lua, WASM and metadata files through the runtime's plugin checks (the
//! same code that loads them in `serve`). This file only prints.

use crate::output::{plural, print_human, print_json, use_color};
use crate::{ColorChoice, Format};
use dnspolicy_compiler::check;
use dnspolicy_runtime::plugin::check as plugin_check;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Default)]
struct FileResult {
    lua: bool,
    wasm: bool,
    meta: bool,
    errors: usize,
    warnings: usize,
    rules: usize,
    sets: usize,
}

impl FileResult {
    fn with_errors(errors: usize) -> FileResult {
        FileResult {
            errors,
            ..FileResult::default()
        }
    }
}

/// Checks every file; exit 0 when all are clean, 1 on errors, 2 on I/O errors.
/// With `cost`, each policy that checks also gets its cost bound line.
pub fn run(files: &[PathBuf], format: Format, color: ColorChoice, cost: bool) -> ExitCode {
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
            let Some(r) = check_wasm(path, &name, format, color) else {
                io_error = true;
                continue;
            };
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
        let mut errors = checked.error_count();
        // File-backed sets: their files must exist and every line parse.
        if let Some(p) = &checked.policy {
            if let Err(e) = dnspolicy_runtime::plugin::live::load_all(p, path) {
                eprintln!("error: {e}");
                errors += 1;
            }
        }
        if let (true, Some(p)) = (cost, &checked.policy) {
            print_cost(&name, &dnspolicy_compiler::ir::cost::cost(p), format);
        }
        let (rules, sets) = checked
            .policy
            .as_ref()
            .map_or((0, 0), |p| (p.rule_count(), p.declared_sets));
        let r = FileResult {
            lua: false,
            wasm: false,
            meta: false,
            errors,
            warnings: checked.diagnostics.len() - checked.error_count(),
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

fn check_metadata(src: &str, name: &str, format: Format, color: bool) -> FileResult {
    let diags = plugin_check::check_metadata(src);
    report(&diags, name, src, format, color);
    FileResult {
        meta: true,
        ..FileResult::with_errors(diags.len())
    }
}

fn check_lua(src: &str, name: &str, format: Format, color: bool) -> FileResult {
    let stem = std::path::Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name);
    let diags = plugin_check::check_lua(src, stem);
    report(&diags, name, src, format, color);
    FileResult {
        lua: true,
        ..FileResult::with_errors(diags.len())
    }
}

fn check_wasm(
    path: &std::path::Path,
    name: &str,
    format: Format,
    color: bool,
) -> Option<FileResult> {
    let diags = match plugin_check::check_wasm(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read {name}: {e}");
            return None;
        }
    };
    // The text shown under a diagnostic: the source of a .wat, nothing of a binary.
    let src = if path.extension().is_some_and(|e| e == "wat") {
        std::fs::read_to_string(path).unwrap_or_default()
    } else {
        String::new()
    };
    report(&diags, name, &src, format, color);
    Some(FileResult {
        wasm: true,
        ..FileResult::with_errors(diags.len())
    })
}

fn report(
    diags: &[dnspolicy_compiler::Diagnostic],
    name: &str,
    src: &str,
    format: Format,
    color: bool,
) {
    match format {
        Format::Human => print_human(diags, name, src, color),
        Format::Json => print_json(diags, name, src),
    }
}

fn summary(r: &FileResult) -> String {
    if r.lua && r.errors == 0 {
        return "ok: Lua plugin defines apply".to_string();
    }
    if r.wasm && r.errors == 0 {
        return format!(
            "ok: WASM plugin matches ABI version {}",
            dnspolicy_compiler::abi::ABI_VERSION
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

/// The cost bound: a line for people, a JSON object (one line) for scripts.
fn print_cost(name: &str, c: &dnspolicy_compiler::ir::cost::Cost, format: Format) {
    match format {
        Format::Human => {
            let mut line = format!(
                "{name}: cost: at most {} of {} and {} per query",
                plural(c.rules, "rule"),
                c.total_rules,
                plural(c.calls, "helper call"),
            );
            let mut notes = Vec::new();
            if let Some(w) = &c.worst_name {
                notes.push(format!("worst name: {w}"));
            }
            notes.push(match c.always {
                0 => "no rule runs for every query".to_string(),
                1 => "1 rule runs for every query".to_string(),
                n => format!("{n} rules run for every query"),
            });
            line.push_str(&format!(" ({})", notes.join("; ")));
            crate::output::outln(&line);
        }
        Format::Json => crate::output::outln(
            &serde_json::json!({
                "file": name,
                "cost": {
                    "rules": c.rules,
                    "total_rules": c.total_rules,
                    "helper_calls": c.calls,
                    "always": c.always,
                    "worst_name": c.worst_name,
                }
            })
            .to_string(),
        ),
    }
}

/// Summaries go to stdout for people and to stderr in JSON mode, so that
/// stdout stays pure JSON lines there.
fn summary_line(line: &str, format: Format) {
    match format {
        Format::Human => crate::output::outln(line),
        Format::Json => eprintln!("{line}"),
    }
}
