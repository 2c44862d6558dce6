//! `dnspolicy import rpz ZONEFILE... [-o OUT]`: Response Policy Zones as a
//! policy (`dnspolicy_runtime::import::rpz`). Zones are given in precedence
//! order. The policy is checked before it is written; what cannot be
//! expressed is printed as warnings (and kept as comments in the output).
//! Exit 0 on success, 1 when the result does not check, 2 on unreadable
//! or malformed input.

use std::path::PathBuf;
use std::process::ExitCode;

/// `dnspolicy import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    #[command(subcommand)]
    what: ImportWhat,
}

#[derive(clap::Subcommand, Debug)]
enum ImportWhat {
    /// Response Policy Zone files, first = highest precedence.
    Rpz {
        /// RPZ zone files (master-file format).
        #[arg(required = true, value_name = "ZONEFILE")]
        zones: Vec<PathBuf>,
        /// Where to write the policy (default: stdout).
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<PathBuf>,
    },
}

/// Runs `dnspolicy import`.
pub fn run(args: ImportArgs) -> ExitCode {
    let ImportWhat::Rpz { zones, output } = args.what;
    let mut texts = Vec::new();
    for z in &zones {
        match std::fs::read_to_string(z) {
            Ok(t) => texts.push((z.display().to_string(), t)),
            Err(e) => {
                eprintln!("error: {}: {e}", z.display());
                return ExitCode::from(2);
            }
        }
    }
    let t0 = std::time::Instant::now();
    let imported = match dnspolicy_runtime::import::rpz::import(&texts) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &imported.warnings {
        eprintln!("warning: not imported: {w}");
    }
    // What is written must load: check it like any policy.
    let checked = dnspolicy_compiler::check(&imported.policy);
    if checked.policy.is_none() {
        let shown = output
            .as_ref()
            .map_or("<import>".to_string(), |p| p.display().to_string());
        eprint!(
            "{}",
            dnspolicy_compiler::diagnostics::render(
                &checked.diagnostics,
                &shown,
                &imported.policy,
                false
            )
        );
        eprintln!("error: the imported policy does not check (a bug: please report it)");
        return ExitCode::from(1);
    }
    match &output {
        Some(p) => {
            if let Err(e) = std::fs::write(p, &imported.policy) {
                eprintln!("error: {}: {e}", p.display());
                return ExitCode::from(2);
            }
            eprintln!(
                "imported {} trigger(s) from {} zone(s) into {} in {} ms ({} warning(s))",
                imported.triggers,
                zones.len(),
                p.display(),
                t0.elapsed().as_millis(),
                imported.warnings.len()
            );
        }
        None => print!("{}", imported.policy),
    }
    ExitCode::SUCCESS
}
