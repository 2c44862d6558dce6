//! `dnspolicy oci push|pull|inspect`: plugin sets as OCI artifacts
//! (`docs/oci.md`). Exit 0 on success, 1 when the registry refuses or an
//! artifact is malformed or tampered with, 2 on usage or local I/O errors.

use dnspolicy_runtime::source::oci::artifact::{layers_of, pack};
use dnspolicy_runtime::source::oci::{parse_ref, OciError, Registry};
use std::path::PathBuf;
use std::process::ExitCode;

/// `dnspolicy oci`.
#[derive(clap::Args, Debug)]
pub struct OciArgs {
    #[command(subcommand)]
    cmd: OciCommand,
}

#[derive(clap::Subcommand, Debug)]
enum OciCommand {
    /// Check the plugins of DIR as `serve` would load them, then push them
    /// as one artifact; prints the manifest digest (`sha256:…`) last.
    Push {
        /// The plugin directory.
        dir: PathBuf,
        /// `HOST[:PORT]/REPO:TAG`
        reference: String,
        /// Allow plain HTTP (loopback registries, tests).
        #[arg(long)]
        insecure: bool,
    },
    /// Pull a set (every blob verified against its digest) into DIR.
    Pull {
        /// `HOST[:PORT]/REPO:TAG` or `HOST[:PORT]/REPO@sha256:…`
        reference: String,
        /// Where to write the files (created).
        dir: PathBuf,
        /// Allow plain HTTP.
        #[arg(long)]
        insecure: bool,
    },
    /// Print a set's digest, format and files.
    Inspect {
        /// `HOST[:PORT]/REPO:TAG` or `HOST[:PORT]/REPO@sha256:…`
        reference: String,
        /// Allow plain HTTP.
        #[arg(long)]
        insecure: bool,
        /// `human` (a table) or `json` (manifest and config).
        #[arg(long, default_value = "human")]
        format: String,
    },
}

/// Runs `dnspolicy oci …`.
pub fn run(args: OciArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(go(args.cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

fn fail(e: OciError) -> (u8, String) {
    let code = match e {
        OciError::Io(..) | OciError::Reference(..) => 2,
        _ => 1,
    };
    (code, e.to_string())
}

async fn go(cmd: OciCommand) -> Result<(), (u8, String)> {
    match cmd {
        OciCommand::Push {
            dir,
            reference,
            insecure,
        } => {
            let r = parse_ref(&reference).map_err(fail)?;
            if !dir.is_dir() {
                return Err((2, format!("{} is not a directory", dir.display())));
            }
            // What does not load in `serve` is not pushed.
            let chain = dnspolicy_runtime::plugin::Chain::load_dir(&dir)
                .map_err(|e| (2, format!("{}: {e}", dir.display())))?;
            if !chain.failed.is_empty() {
                let why: Vec<String> = chain.failed.iter().map(|f| f.error.clone()).collect();
                return Err((
                    1,
                    format!(
                        "not pushed: {} plugin(s) do not load:\n{}",
                        why.len(),
                        why.join("\n")
                    ),
                ));
            }
            let a = pack(&dir, &dnspolicy_runtime::source::now_rfc3339())
                .map_err(|e| fail(e.into()))?;
            let digest = Registry::new(&r, insecure)
                .push(&r, &a)
                .await
                .map_err(fail)?;
            println!("pushed {} file(s) to {reference}", a.layers.len());
            println!("{digest}");
            Ok(())
        }
        OciCommand::Pull {
            reference,
            dir,
            insecure,
        } => {
            let r = parse_ref(&reference).map_err(fail)?;
            let pulled = Registry::new(&r, insecure).pull(&r).await.map_err(fail)?;
            pulled.write_to(&dir).map_err(fail)?;
            for (name, data) in &pulled.files {
                println!("{name} ({} bytes)", data.len());
            }
            println!("{}", pulled.digest);
            Ok(())
        }
        OciCommand::Inspect {
            reference,
            insecure,
            format,
        } => {
            let r = parse_ref(&reference).map_err(fail)?;
            let (digest, manifest) = Registry::new(&r, insecure)
                .manifest(&r)
                .await
                .map_err(fail)?;
            let (config_type, layers) = layers_of(&manifest).map_err(|e| fail(e.into()))?;
            let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap_or_default();
            if format == "json" {
                let out = serde_json::json!({"digest": digest, "manifest": m});
                println!("{out}");
                return Ok(());
            }
            println!("digest  {digest}");
            println!("config  {config_type}");
            if let Some(c) = m["annotations"]["org.opencontainers.image.created"].as_str() {
                println!("created {c}");
            }
            for (l, d) in layers
                .iter()
                .zip(m["layers"].as_array().into_iter().flatten())
            {
                let a = &d["annotations"];
                println!(
                    "  {:<24} {:<9} {:>8} B  priority {:<6} {}",
                    l.name,
                    a["dev.dnspolicy.kind"].as_str().unwrap_or("wasm"),
                    l.size,
                    a["dev.dnspolicy.priority"].as_str().unwrap_or("-"),
                    l.digest
                );
            }
            Ok(())
        }
    }
}
