//! `dnspolicy push | rollback | promote | status`: plugin sets for a fleet
//! of edges in etcd (docs/fleet.md). Exit 0 on success; 1 when the set does
//! not check, a compare-and-set loses, a rollout is blocked or etcd
//! refuses; 2 on usage, local I/O errors, or etcd unreachable.

use dnspolicy_runtime::source::etcd::client::{Etcd, EtcdError};
use dnspolicy_runtime::source::etcd::fleet::{self, FleetError, Keys, PushOptions};
use dnspolicy_runtime::source::etcd::oci_ref;
use dnspolicy_runtime::source::now_rfc3339;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `dnspolicy push`.
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// The plugin directory (checked as `serve` loads it; refused if any
    /// plugin does not load).
    #[arg(required_unless_present = "oci", conflicts_with = "oci")]
    dir: Option<PathBuf>,
    /// Instead of DIR: an OCI artifact (`HOST[:PORT]/REPO:TAG` or
    /// `…@sha256:…`, see docs/oci.md) the edges pull by digest; a tag is
    /// pinned to its digest now. Checked like DIR before it is pushed.
    #[arg(long, value_name = "REF")]
    oci: Option<String>,
    /// Plain HTTP to the `--oci` registry (loopback registries).
    #[arg(long)]
    insecure: bool,
    /// etcd client URLs, comma-separated (`http://127.0.0.1:2379,…`).
    #[arg(long, value_name = "URL[,URL]")]
    etcd: String,
    /// The set's name.
    #[arg(long, value_name = "NAME")]
    set: String,
    /// Push only if the set is at version N now (0: a new set); exactly one
    /// of two concurrent pushes of the same N wins.
    #[arg(long, value_name = "N")]
    if_version: Option<u64>,
    /// Who pushes (default: $USER).
    #[arg(long)]
    author: Option<String>,
    /// Why (kept in the version's manifest).
    #[arg(long, short = 'm', default_value = "")]
    message: String,
    /// Stage the version: these nodes (comma-separated) or this share of
    /// nodes (`10%`) run it first; `dnspolicy promote` rolls it out.
    #[arg(long, value_name = "NODE[,NODE]|N%")]
    canary: Option<String>,
    /// Versions kept for rollback.
    #[arg(long, default_value_t = fleet::DEFAULT_KEEP)]
    keep: u64,
}

/// `dnspolicy rollback`.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// The set's name.
    #[arg(long, value_name = "NAME")]
    set: String,
    /// The earlier version to push again (as a new version).
    #[arg(long, value_name = "VERSION")]
    to: u64,
    /// etcd client URLs, comma-separated.
    #[arg(long, value_name = "URL[,URL]")]
    etcd: String,
}

/// `dnspolicy promote`.
#[derive(clap::Args, Debug)]
pub struct PromoteArgs {
    /// The set's name.
    #[arg(long, value_name = "NAME")]
    set: String,
    /// etcd client URLs, comma-separated.
    #[arg(long, value_name = "URL[,URL]")]
    etcd: String,
}

/// `dnspolicy status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The set's name.
    #[arg(long, value_name = "NAME")]
    set: String,
    /// etcd client URLs, comma-separated.
    #[arg(long, value_name = "URL[,URL]")]
    etcd: String,
    /// `human` (a table) or `json`.
    #[arg(long, default_value = "human")]
    format: String,
}

type Failure = (u8, String);

/// A directory deleted when dropped (the pulled copy `push --oci` checks).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fail(e: FleetError) -> Failure {
    let code = match e {
        FleetError::Etcd(EtcdError::Unreachable(_)) => 2,
        _ => 1,
    };
    (code, e.to_string())
}

fn block_on<F: std::future::Future<Output = Result<(), Failure>>>(f: F) -> ExitCode {
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
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

fn client(urls: &str, set: &str) -> Result<Etcd, Failure> {
    if !fleet::valid_name(set) {
        return Err((
            2,
            format!("set name `{set}`: letters, digits, `-`, `_` and `.`"),
        ));
    }
    Etcd::new(urls).map_err(|e| fail(e.into()))
}

/// The files of a plugin set: plugins, their metadata and data files.
fn set_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let io = |e: std::io::Error| (2, format!("{}: {e}", dir.display()));
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.')
            || !e.path().is_file()
            || dnspolicy_runtime::source::oci::artifact::kind_of(&name).is_none()
        {
            continue;
        }
        let data = std::fs::read(e.path()).map_err(io)?;
        files.push((name, data));
    }
    files.sort();
    Ok(files)
}

/// Runs `dnspolicy push`.
pub fn push(a: PushArgs) -> ExitCode {
    block_on(async move {
        let etcd = client(&a.etcd, &a.set)?;
        let (dir, pointer, _pulled) = match (&a.dir, &a.oci) {
            (Some(d), _) => (d.clone(), None, None),
            (None, Some(r)) => {
                let p = oci_ref::pin(r, a.insecure).await.map_err(fail)?;
                let (files, _) = oci_ref::pull(&p).await.map_err(fail)?;
                let tmp =
                    std::env::temp_dir().join(format!("dnspolicy-push-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&tmp);
                std::fs::create_dir_all(&tmp)
                    .map_err(|e| (2, format!("{}: {e}", tmp.display())))?;
                for (name, data) in &files {
                    std::fs::write(tmp.join(name), data)
                        .map_err(|e| (2, format!("{name}: {e}")))?;
                }
                let guard = RemoveOnDrop(tmp.clone());
                (tmp, Some(p), Some(guard))
            }
            (None, None) => return Err((2, "DIR or --oci REF".into())),
        };
        if !dir.is_dir() {
            return Err((2, format!("{} is not a directory", dir.display())));
        }
        // What does not load in `serve` is not pushed.
        let chain = dnspolicy_runtime::plugin::Chain::load_dir(&dir)
            .map_err(|e| (2, format!("{}: {e}", dir.display())))?;
        if !chain.failed.is_empty() {
            let why: Vec<String> = chain
                .failed
                .iter()
                .map(|f| format!("{}: {}", f.path.display(), f.error))
                .collect();
            return Err((
                1,
                format!(
                    "not pushed: {} plugin(s) do not load:\n{}",
                    why.len(),
                    why.join("\n")
                ),
            ));
        }
        if chain.plugins.is_empty() {
            return Err((1, format!("not pushed: {} holds no plugin", dir.display())));
        }
        drop(chain);
        // With --oci the edges pull the files: etcd carries the pointer.
        let files = if pointer.is_some() {
            Vec::new()
        } else {
            set_files(&dir)?
        };
        let (canary, canary_percent) = match a.canary.as_deref() {
            None => (Vec::new(), 0),
            Some(c) if c.ends_with('%') => match c.trim_end_matches('%').parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => (Vec::new(), p),
                _ => return Err((2, format!("--canary {c}: a share is 1% to 100%"))),
            },
            Some(c) => {
                let nodes: Vec<String> = c
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect();
                if nodes.is_empty() || !nodes.iter().all(|n| fleet::valid_name(n)) {
                    return Err((2, format!("--canary {c}: node names, comma-separated")));
                }
                (nodes, 0)
            }
        };
        let opts = PushOptions {
            if_version: a.if_version,
            author: a
                .author
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "unknown".into()),
            message: a.message,
            canary,
            canary_percent,
            keep: a.keep,
            time: now_rfc3339(),
            oci: pointer.clone(),
        };
        let pushed = fleet::push(&etcd, &a.set, &files, &opts)
            .await
            .map_err(fail)?;
        if let Err(e) = fleet::collect_garbage(&etcd, &a.set).await {
            eprintln!("warning: old blobs not collected: {e}");
        }
        let staged = if opts.canary.is_empty() && opts.canary_percent == 0 {
            String::new()
        } else if opts.canary.is_empty() {
            format!(", staged on {}% of nodes", opts.canary_percent)
        } else {
            format!(", staged on {}", opts.canary.join(","))
        };
        match &pointer {
            Some(p) => println!(
                "pushed set {} version {} (OCI {}, revision {}{staged})",
                a.set, pushed.version, p.reference, pushed.revision
            ),
            None => println!(
                "pushed set {} version {} ({} file(s), {} bytes uploaded, revision {}{staged})",
                a.set,
                pushed.version,
                files.len(),
                pushed.uploaded,
                pushed.revision
            ),
        }
        Ok(())
    })
}

/// Runs `dnspolicy rollback`.
pub fn rollback(a: RollbackArgs) -> ExitCode {
    block_on(async move {
        let etcd = client(&a.etcd, &a.set)?;
        let keys = Keys::new(&a.set);
        let m = fleet::manifest(&etcd, &keys, a.to).await.map_err(fail)?;
        let mut files = Vec::new();
        // A version that points at an OCI artifact points at it again.
        for f in m.files.iter().filter(|_| m.oci.is_none()) {
            files.push((
                f.name.clone(),
                fleet::read_file(&etcd, &keys, f).await.map_err(fail)?,
            ));
        }
        let opts = PushOptions {
            author: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            message: format!("rollback to version {}", a.to),
            keep: fleet::DEFAULT_KEEP,
            time: now_rfc3339(),
            oci: m.oci.clone(),
            ..PushOptions::default()
        };
        let pushed = fleet::push(&etcd, &a.set, &files, &opts)
            .await
            .map_err(fail)?;
        println!(
            "set {} rolled back to version {}'s files as version {}",
            a.set, a.to, pushed.version
        );
        Ok(())
    })
}

/// Runs `dnspolicy promote`.
pub fn promote(a: PromoteArgs) -> ExitCode {
    block_on(async move {
        let etcd = client(&a.etcd, &a.set)?;
        let v = fleet::promote(&etcd, &a.set, &now_rfc3339())
            .await
            .map_err(fail)?;
        println!("set {} version {v} promoted to every node", a.set);
        Ok(())
    })
}

/// Runs `dnspolicy status`.
pub fn status(a: StatusArgs) -> ExitCode {
    block_on(async move {
        let etcd = client(&a.etcd, &a.set)?;
        let keys = Keys::new(&a.set);
        let (head, _) = fleet::head(&etcd, &keys).await.map_err(fail)?;
        let nodes = fleet::fleet_view(&etcd, &keys).await.map_err(fail)?;
        if a.format == "json" {
            let out = serde_json::json!({"set": a.set, "head": head, "nodes": nodes});
            println!("{out}");
            return Ok(());
        }
        if a.format != "human" {
            return Err((2, format!("--format {}: human or json", a.format)));
        }
        match &head {
            None => println!("set {}: no version pushed", a.set),
            Some(h) if h.in_canary() => {
                let who = if h.canary.is_empty() {
                    format!("{}% of nodes", h.canary_percent)
                } else {
                    h.canary.join(",")
                };
                println!(
                    "set {}: version {} staged on {who}; stable {} (dnspolicy promote rolls it out)",
                    a.set, h.version, h.stable
                );
            }
            Some(h) => println!("set {}: version {} on every node", a.set, h.version),
        }
        println!(
            "{:<16} {:>7} {:>7} {:<9} {:>9} {:<21} ERROR",
            "NODE", "VERSION", "TARGET", "STATE", "REVISION", "REPORTED"
        );
        for s in &nodes {
            let state = s.state.as_str();
            println!(
                "{:<16} {:>7} {:>7} {:<9} {:>9} {:<21} {}",
                s.node,
                s.version,
                s.target,
                state,
                s.revision,
                s.time,
                s.error.as_deref().unwrap_or("-").replace('\n', " ")
            );
        }
        Ok(())
    })
}
