//! Where things live in the module's memory: the layout constants, the
//! deduplicated data segment, the lookup table (rule index and name sets,
//! open addressing over FNV-1a 32) and the verdict table.

use super::*;

// Memory layout.
pub(super) const TEMP: u32 = 16; // scratch for hashing and set_value (16 bytes)
pub(super) const DATA_BASE: u32 = 1024;
pub(super) const SLOT: u32 = 24;
pub(super) const MAX_LISTS: u32 = 400; // 1 + 3 per label, labels <= 128

/// Globals: the heap's top, and the scratch pointer of one evaluation.
pub(super) const G_HEAP: u32 = 0;
pub(super) const G_SP: u32 = 1;

/// Constants in the data segment, deduplicated.
pub(super) struct Data {
    pub(super) bytes: Vec<u8>,
    pub(super) seen: HashMap<Vec<u8>, u32>,
}

impl Data {
    pub(super) fn put(&mut self, b: &[u8], align: usize) -> u32 {
        if let Some(&a) = self.seen.get(b) {
            return a;
        }
        while !self.bytes.len().is_multiple_of(align) {
            self.bytes.push(0);
        }
        let addr = DATA_BASE + self.bytes.len() as u32;
        self.bytes.extend_from_slice(b);
        self.seen.insert(b.to_vec(), addr);
        addr
    }
    pub(super) fn text(&mut self, s: &str) -> (u32, u32) {
        (self.put(s.as_bytes(), 1), s.len() as u32)
    }
}

/// The hash of the module's lookup table (FNV-1a 32 over the kind, then
/// the key's bytes); the module computes the same.
pub(super) fn hash32(kind: u32, bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    h ^= kind;
    h = h.wrapping_mul(16_777_619);
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(16_777_619);
    }
    h
}

impl Emitter<'_> {
    /// Builds the lookup table: the rule index (kinds 1-3) and every name
    /// set (kinds 16 + 2k exact, 17 + 2k wildcard).
    pub(super) fn table(&mut self) {
        let mut keys: Vec<(u32, String, u32, u32)> = Vec::new();
        let (entries, _) = self.p.index.entries();
        for (kind, key, rules) in entries {
            let bytes: Vec<u8> = rules.iter().flat_map(|r| r.to_le_bytes()).collect();
            let list = self.data.put(&bytes, 4);
            keys.push((u32::from(kind), key.to_string(), list, rules.len() as u32));
        }
        for (k, set) in self.p.sets.iter().enumerate() {
            let k = k as u32;
            match set {
                ConstSet::Names(ns) => {
                    let kind = 16 + 2 * k;
                    self.set_kind.insert(k, kind);
                    let mut exact: Vec<&str> = ns.exact.iter().map(|s| &**s).collect();
                    exact.sort_unstable();
                    let mut wild: Vec<&str> = ns.wildcards.iter().map(|s| &**s).collect();
                    wild.sort_unstable();
                    keys.extend(exact.into_iter().map(|n| (kind, n.to_string(), 0, 0)));
                    keys.extend(wild.into_iter().map(|n| (kind + 1, n.to_string(), 0, 0)));
                }
                ConstSet::Cidrs(cs) => {
                    let bytes: Vec<u8> = cs.iter().flat_map(abi::cidr_bytes).collect();
                    let at = self.data.put(&bytes, 4);
                    self.cidr_sets.insert(k, (at, cs.len() as u32));
                }
                ConstSet::Values(_) | ConstSet::Live(_) => {}
            }
        }
        let cap = (keys.len() * 2).max(8).next_power_of_two() as u32;
        let mut slots = vec![0u8; (cap * SLOT) as usize];
        for (kind, key, list, n) in keys {
            let (ptr, len) = self.data.text(&key);
            let h = hash32(kind, key.as_bytes());
            let mut i = h & (cap - 1);
            loop {
                let s = (i * SLOT) as usize;
                if slots[s + 4..s + 8] == [0; 4] {
                    for (j, v) in [h, kind, ptr, len, list, n].into_iter().enumerate() {
                        slots[s + 4 * j..s + 4 * j + 4].copy_from_slice(&v.to_le_bytes());
                    }
                    break;
                }
                i = (i + 1) & (cap - 1);
            }
        }
        // Distinct content, so never deduplicated into another constant.
        self.tbl = self.data.put(&slots, 8);
        self.data.seen.remove(&slots);
        self.tbl_mask = cap - 1;
    }

    pub(super) fn verdict(&mut self, v: &Verdict) -> u32 {
        let json = v.to_json().to_string();
        if let Some(&id) = self.verdict_ids.get(&json) {
            return id;
        }
        let (ptr, len) = self.data.text(&json);
        self.verdicts.push((ptr, len));
        let id = self.verdicts.len() as u32 - 1;
        self.verdict_ids.insert(json, id);
        id
    }
}
