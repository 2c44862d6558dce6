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
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How often the files are looked at: a metadata call each, no reading
/// unless one changed (and then held still for one more look).
pub const POLL: Duration = Duration::from_millis(500);

/// A file's modification time and size: what the watcher compares.
type Stamp = Option<(SystemTime, u64)>;

/// A live set, the file it is read from, and that file's stamp from just
/// before it was read (a change made while it was being read is seen).
pub type Bound = (Arc<LiveSet>, PathBuf, Stamp);

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
        let before = stamp(&file);
        let n = load_one(set, &file)?;
        tracing::info!(set = %set.name, file = %file.display(), members = n, "live set loaded");
        out.push((set.clone(), file, before));
    }
    Ok(out)
}

/// One live set as `/plugins` and `/metrics` show it.
#[derive(Clone, Debug)]
pub struct Status {
    /// The set's name in the policy.
    pub set: String,
    /// The file it is read from.
    pub file: PathBuf,
    /// Members now.
    pub members: usize,
    /// Changed files taken since the plugin loaded.
    pub reloads: u64,
    /// Changed files refused (unreadable, or a bad line).
    pub errors: u64,
    /// Why the last refused file was refused, until a good one is taken.
    pub last_error: Option<String>,
}

/// The watcher of one policy's set files; dropping it (with the plugin)
/// stops the thread.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    status: Arc<Mutex<Vec<Status>>>,
}

impl Watch {
    /// The sets' state now.
    pub fn status(&self) -> Vec<Status> {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn stamp(f: &Path) -> Stamp {
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
    let status = Arc::new(Mutex::new(
        sets.iter()
            .map(|(set, file, _)| Status {
                set: set.name.clone(),
                file: file.clone(),
                members: set.entries(),
                reloads: 0,
                errors: 0,
                last_error: None,
            })
            .collect::<Vec<_>>(),
    ));
    let shown = status.clone();
    let thread = std::thread::Builder::new()
        .name("live-sets".into())
        .spawn(move || {
            let mut seen: Vec<Stamp> = sets.iter().map(|(_, _, s)| *s).collect();
            // A change is read once its stamp holds still for one poll: a
            // file written in place (truncate, then write) is never read
            // half-written as an empty set.
            let mut pending: Vec<Option<Stamp>> = vec![None; sets.len()];
            'outer: loop {
                // Short steps, so an unloaded plugin's thread ends quickly.
                for _ in 0..5 {
                    if flag.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    std::thread::sleep(POLL / 5);
                }
                for (i, ((set, file, _), last)) in sets.iter().zip(seen.iter_mut()).enumerate() {
                    let now = stamp(file);
                    if now == *last {
                        pending[i] = None;
                        continue;
                    }
                    if pending[i] != Some(now) {
                        pending[i] = Some(now);
                        continue;
                    }
                    pending[i] = None;
                    *last = now;
                    let result = load_one(set, file);
                    if let Some(s) = shown.lock().ok().as_mut().and_then(|v| v.get_mut(i)) {
                        s.members = set.entries();
                        match &result {
                            Ok(_) => {
                                s.reloads += 1;
                                s.last_error = None;
                            }
                            Err(e) => {
                                s.errors += 1;
                                s.last_error = Some(e.to_string());
                            }
                        }
                    }
                    match result {
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
        status,
    })
}
