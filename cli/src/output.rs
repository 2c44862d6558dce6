//! Printing diagnostics and summaries.

use crate::ColorChoice;
use dnspolicy_compiler::diagnostics::{render, render_json};
use dnspolicy_compiler::Diagnostic;
use std::io::IsTerminal;

/// Whether to colour output written to stderr.
pub fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    }
}

/// Prints diagnostics for people on stderr.
pub fn print_human(diags: &[Diagnostic], file: &str, src: &str, color: bool) {
    if !diags.is_empty() {
        eprint!("{}", render(diags, file, src, color));
    }
}

/// Prints diagnostics as JSON lines on stdout.
pub fn print_json(diags: &[Diagnostic], file: &str, src: &str) {
    out(&render_json(diags, file, src));
}

/// Writes to stdout. A closed pipe (`dnspolicy ... | head`) ends the
/// program quietly instead of panicking, as other command-line tools do.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(2);
    }
}

/// [`out`] with a newline.
pub fn outln(text: &str) {
    out(&format!("{text}\n"));
}

/// "1 rule", "2 rules".
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}
