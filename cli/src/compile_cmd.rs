//! `dnspolicy compile FILE --target wasm|wat|clif [-o OUT]`

use crate::output::{plural, print_human, use_color};
use crate::{CompileArgs, Target};
use dnspolicy_compiler::check;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Compiles a policy. Exit 0 when written, 1 when the policy does not
/// check or the target cannot lower it, 2 on usage or I/O errors.
pub fn run(args: &CompileArgs) -> ExitCode {
    let name = args.file.display().to_string();
    let src = match std::fs::read_to_string(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {name}: {e}");
            return ExitCode::from(2);
        }
    };
    let color = use_color(args.color);
    let checked = check(&src);
    print_human(&checked.diagnostics, &name, &src, color);
    let Some(policy) = checked.policy else {
        eprintln!("{}", plural(checked.error_count(), "error"));
        return ExitCode::from(1);
    };
    if args.target == Target::Clif {
        let rules = policy.rule_count();
        let jit = match dnspolicy_compiler::JitPolicy::compile(policy, true) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let s = jit.stats();
        let text = format!(
            "; {} rules: {} constant verdicts, {} compiled in {} functions, {} interpreted\n{}",
            rules,
            s.constant,
            s.compiled,
            s.functions,
            s.interpreted,
            jit.clif()
        );
        return write_out(args, text.as_bytes(), None);
    }
    let wasm = match dnspolicy_compiler::backend::wasm::emit(&policy) {
        Ok(w) => w,
        Err(u) => {
            print_human(&[u.diagnostic()], &name, &src, color);
            return ExitCode::from(1);
        }
    };
    if let Err(e) = dnspolicy_compiler::backend::wasm::validate(&wasm) {
        eprintln!("error: internal: the emitted module does not validate: {e}");
        return ExitCode::from(2);
    }
    let bytes = match args.target {
        Target::Wasm => wasm.clone(),
        Target::Wat | Target::Clif => match dnspolicy_compiler::backend::wasm::to_wat(&wasm) {
            Ok(t) => t.into_bytes(),
            Err(e) => {
                eprintln!("error: internal: cannot print the module: {e}");
                return ExitCode::from(2);
            }
        },
    };
    write_out(args, &bytes, Some(policy.rule_count()))
}

/// Writes the output to `-o` or stdout (a binary module never to a terminal).
fn write_out(args: &CompileArgs, bytes: &[u8], rules: Option<usize>) -> ExitCode {
    if args.output.as_os_str() == "-" {
        if args.target == Target::Wasm && std::io::stdout().is_terminal() {
            eprintln!("error: not writing a binary module to a terminal; use -o FILE.wasm");
            return ExitCode::from(2);
        }
        let mut out = std::io::stdout().lock();
        if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
            return ExitCode::from(2);
        }
    } else if let Err(e) = std::fs::write(&args.output, bytes) {
        eprintln!("error: cannot write {}: {e}", args.output.display());
        return ExitCode::from(2);
    } else if let Some(rules) = rules {
        eprintln!(
            "wrote {}: {} bytes, {} (WASM plugin ABI {})",
            args.output.display(),
            bytes.len(),
            plural(rules, "rule"),
            dnspolicy_compiler::abi::ABI_VERSION
        );
    }
    ExitCode::SUCCESS
}
