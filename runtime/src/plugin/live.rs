//! The files behind a DSL policy's live sets (`set x = file("...")`):
//! read beside the policy when it loads (a missing file or a bad line
//! refuses the load, like any other load error), then watched. A changed
//! file is parsed whole and swapped into the set's slot; the compiled
//! policy is not touched. A file that turns bad keeps the previous
//! members and says why, with the line number.

use super::PluginError;
use dnspolicy_compiler::ir::live::LiveSet;
use dnspolicy_compiler::ir::Policy;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How often the files are looked at: a metadata call each, no reading
/// unless one changed.
pub const POLL: Duration = Duration::from_millis(500);

/// A live set and the file it is read from.
pub type Bound = (Arc<LiveSet>, PathBuf);

/// `written` (as in `file("...")`) resolved beside the policy file.
pub fn resolve(policy_path: &Path, written: &str) -> PathBuf {
    let p = Path::new(written);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    policy_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(p)
}

/// Reads one set's file into it.
fn load_one(set: &LiveSet, file: &Path) -> Result<usize, PluginError> {
    let text = std::fs::read_to_string(file).map_err(|e| PluginError::LiveSet {
        path: file.to_path_buf(),
        set: set.name.clone(),
        reason: e.to_string(),
    })?;
    set.load_text(&text).map_err(|e| PluginError::LiveSet {
        path: file.to_path_buf(),
        set: set.name.clone(),
        reason: e.to_string(),
    })
}

/// Loads every live set of `policy` from files beside `policy_path`.
pub fn load_all(policy: &Policy, policy_path: &Path) -> Result<Vec<Bound>, PluginError> {
    let mut out = Vec::new();
    for set in &policy.live_sets {
        let file = resolve(policy_path, &set.path);
        let n = load_one(set, &file)?;
        tracing::info!(set = %set.name, file = %file.display(), members = n, "live set loaded");
        out.push((set.clone(), file));
    }
    Ok(out)
}

/// The watcher of one policy's set files; dropping it (with the plugin)
/// stops the thread.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn stamp(f: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(f).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Starts watching `sets` (nothing to watch: no thread).
pub fn watch(sets: Vec<Bound>) -> Option<Watch> {
    if sets.is_empty() {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("live-sets".into())
        .spawn(move || {
            let mut seen: Vec<Option<(SystemTime, u64)>> =
                sets.iter().map(|(_, f)| stamp(f)).collect();
            'outer: loop {
                // Short steps, so an unloaded plugin's thread ends quickly.
                for _ in 0..5 {
                    if flag.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    std::thread::sleep(POLL / 5);
                }
                for ((set, file), last) in sets.iter().zip(seen.iter_mut()) {
                    let now = stamp(file);
                    if now == *last {
                        continue;
                    }
                    *last = now;
                    match load_one(set, file) {
                        Ok(n) => tracing::info!(
                            set = %set.name, file = %file.display(), members = n,
                            "live set reloaded"
                        ),
                        Err(e) => tracing::warn!(
                            "live set not reloaded, keeping its previous {} members: {e}",
                            set.entries()
                        ),
                    }
                }
            }
        })
        .ok()?;
    Some(Watch {
        stop,
        thread: Some(thread),
    })
}
