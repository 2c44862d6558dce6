//! `dnspolicy fmt [--check] FILE...`: rewrites policies in the canonical
//! layout (`dnspolicy_compiler::syntax::format`), comments kept. Exit 0 when
//! every file is (now) formatted, 1 with `--check` when one is not, 2 on a
//! syntax error (printed, the file left alone) or an I/O error. `-` reads
//! stdin and writes the result to stdout.

use dnspolicy_compiler::diagnostics::render;
use dnspolicy_compiler::syntax::format::format;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

/// `dnspolicy fmt` arguments.
#[derive(clap::Args, Debug)]
pub struct FmtArgs {
    /// Policy files (`.dsl`), or `-` for stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Change nothing: list the files that are not formatted, exit 1 if any.
    #[arg(long)]
    pub check: bool,
}

/// Runs `dnspolicy fmt`.
pub fn run(args: &FmtArgs) -> ExitCode {
    let mut worst = 0u8;
    for path in &args.files {
        let stdin = path.as_os_str() == "-";
        let src = if stdin {
            let mut s = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                eprintln!("error: stdin: {e}");
                return ExitCode::from(2);
            }
            s
        } else {
            match std::fs::read_to_string(path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    worst = 2;
                    continue;
                }
            }
        };
        let shown = if stdin {
            "<stdin>".to_string()
        } else {
            path.display().to_string()
        };
        let formatted = match format(&src) {
            Ok(f) => f,
            Err(diags) => {
                eprint!("{}", render(&diags, &shown, &src, false));
                eprintln!("error: {shown} not formatted: it does not parse");
                worst = 2;
                continue;
            }
        };
        if stdin && !args.check {
            print!("{formatted}");
            continue;
        }
        if formatted == src {
            continue;
        }
        if args.check {
            println!("would reformat {shown}");
            worst = worst.max(1);
        } else if let Err(e) = std::fs::write(path, &formatted) {
            eprintln!("error: {shown}: {e}");
            worst = 2;
        } else {
            println!("formatted {shown}");
        }
    }
    ExitCode::from(worst)
}
