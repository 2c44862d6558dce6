//! Per-plugin decision counters, sharded by UDP worker thread.
//!
//! A query that a 100 000-rule policy decides bumps its rule's counter: a
//! random line in an 800 KB array, a cache miss. As a shared `fetch_add`
//! it was also a locked instruction, which on x86 waits for that miss and
//! holds back every later load of the query (the verdict, the answer).
//! A UDP worker thread instead owns a shard and counts with a plain load
//! and store (it is the shard's only writer), so the miss overlaps the
//! rest of the query; every other thread (TCP, HTTP, upstream tasks)
//! counts in a shared shard with `fetch_add`. A scrape sums the shards.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

/// Worker shards per plugin; threads of higher worker ids share the
/// locked shard.
const SHARDS: usize = 32;

thread_local! {
    /// The shard this thread writes alone: set by a UDP worker thread.
    static OWN_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Marks the calling thread as the only writer of shard `id` of every
/// plugin's counters (a UDP worker thread, for its life).
pub fn own_shard(id: usize) {
    OWN_SHARD.with(|s| s.set(id));
}

/// One shard: queries decided, and per rule.
#[derive(Debug)]
struct Shard {
    decided: AtomicU64,
    rules: Box<[AtomicU64]>,
}

impl Shard {
    fn new(rules: usize) -> Shard {
        Shard {
            decided: AtomicU64::new(0),
            rules: (0..rules).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// A plugin's decision counters. Shards are made on their first count, so
/// a plugin that never decides (or a worker that never runs it) costs no
/// per-rule memory.
#[derive(Debug)]
pub struct PluginStats {
    rules: usize,
    shared: OnceLock<Shard>,
    workers: Box<[OnceLock<Shard>]>,
}

impl PluginStats {
    /// Counters for a plugin with `rules` rules.
    pub fn new(rules: usize) -> PluginStats {
        PluginStats {
            rules,
            shared: OnceLock::new(),
            workers: (0..SHARDS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Counts one decision (by `rule`, when a rule decided).
    #[inline]
    pub fn count(&self, rule: Option<usize>) {
        let own = OWN_SHARD.with(Cell::get);
        if let Some(slot) = self.workers.get(own) {
            let s = slot.get_or_init(|| Shard::new(self.rules));
            bump(&s.decided);
            if let Some(c) = rule.and_then(|r| s.rules.get(r)) {
                bump(c);
            }
        } else {
            let s = self.shared.get_or_init(|| Shard::new(self.rules));
            s.decided.fetch_add(1, Relaxed);
            if let Some(c) = rule.and_then(|r| s.rules.get(r)) {
                c.fetch_add(1, Relaxed);
            }
        }
    }

    /// Starts loading the line of `rule`'s counter in this thread's shard
    /// (a hint before a batch is decided).
    #[inline]
    pub fn prefetch(&self, rule: u32) {
        let own = OWN_SHARD.with(Cell::get);
        if let Some(c) = self
            .workers
            .get(own)
            .and_then(OnceLock::get)
            .and_then(|s| s.rules.get(rule as usize))
        {
            dnspolicy_compiler::ir::name_table::prefetch(c);
        }
    }

    fn shards(&self) -> impl Iterator<Item = &Shard> {
        std::iter::once(&self.shared)
            .chain(self.workers.iter())
            .filter_map(OnceLock::get)
    }

    /// Queries this plugin decided.
    pub fn decided(&self) -> u64 {
        self.shards().map(|s| s.decided.load(Relaxed)).sum()
    }

    /// Decisions per rule, indexed like
    /// [`Plugin::rule_names`](super::Plugin::rule_names).
    pub fn rules(&self) -> Vec<u64> {
        let mut out = vec![0; self.rules];
        for s in self.shards() {
            for (o, c) in out.iter_mut().zip(s.rules.iter()) {
                *o += c.load(Relaxed);
            }
        }
        out
    }
}

/// Adds one to a counter this thread alone writes: no locked instruction.
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_sum_on_read() {
        let stats = std::sync::Arc::new(PluginStats::new(3));
        // Two owning worker threads and one shared (unowned) thread.
        let threads: Vec<_> = [Some(0), Some(5), None]
            .into_iter()
            .map(|own| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    if let Some(id) = own {
                        own_shard(id);
                    }
                    for i in 0..1000 {
                        stats.count(Some(i % 3));
                    }
                    stats.count(None);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("counting thread");
        }
        assert_eq!(stats.decided(), 3 * 1001);
        assert_eq!(stats.rules(), vec![3 * 334, 3 * 333, 3 * 333]);
        // A rule number past the list counts the decision only.
        stats.count(Some(7));
        assert_eq!(stats.decided(), 3 * 1001 + 1);
    }
}
