//! The rule index's name keys in one flat table: a query looks up its name
//! and each suffix of it, and with 100 000 keys every lookup of a
//! `HashMap<Arc<str>, _>` costs a cache miss on the control bytes, one on
//! the bucket and one on the key's own allocation. Here a lookup reads one
//! 32-byte slot: the full 64-bit hash rejects every other key without
//! reading it, and keys of up to 16 bytes (`s004720.example`) sit in the
//! slot itself. Longer keys live in one shared byte arena. Most lookups
//! are of names that are no key (the query name itself, say); a bit per
//! hash in a filter of 16 bits per key (256 KiB for 100 000 keys, 1/16 of
//! the slots) answers ~94 % of those without touching a slot, and a kind
//! with no keys at all is answered without hashing.

use rustc_hash::FxHasher;
use std::hash::Hasher;

/// Keys of up to this many bytes are kept in their slot.
const INLINE: usize = 16;
/// Set in [`Slot::rules`] when it is an offset into [`NameTable::many`].
const MANY: u32 = 1 << 31;

/// One key: its hash (0 = an empty slot), its rules, kind and length, and
/// the key's bytes (or their offset into the arena).
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Slot {
    hash: u64,
    /// A rule number, or `MANY | offset` of `[count, rules...]` in `many`.
    rules: u32,
    /// Kind in the top byte, length in the low 24 bits.
    meta: u32,
    /// The key, or (when longer than [`INLINE`]) its offset in `long`.
    key: [u8; INLINE],
}

/// Name keys of three kinds (1 exact, 2 suffix, 3 wildcard) and the rules
/// each leads to, in evaluation order.
#[derive(Default)]
pub struct NameTable {
    slots: Vec<Slot>,
    /// Bits of the hash that pick the home slot (`slots.len() == 1 << bits`).
    bits: u32,
    long: Vec<u8>,
    many: Vec<u32>,
    /// One bit per key hash (bits 1.. of the hash, masked).
    filter: Vec<u64>,
    /// Keys per kind: a lookup of a kind with no keys is skipped.
    counts: [usize; 4],
}

impl std::fmt::Debug for NameTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameTable")
            .field("keys", &self.counts.iter().sum::<usize>())
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// Asks the CPU to start loading the cache line of `v` (a hint: no effect
/// on the program's results; nothing on targets without the instruction).
#[inline]
#[allow(unsafe_code)]
pub fn prefetch<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and writes nothing; the address is a
    // live reference. (`unused_unsafe`: the intrinsic is safe on newer
    // toolchains.)
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((v as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

fn hash(kind: u8, key: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write_u8(kind);
    h.write(key);
    // Fx mixes the low bits weakly and the home slot comes from the top
    // bits: one more multiply spreads them. Never 0 (the empty mark).
    let h = h.finish();
    (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1
}

impl NameTable {
    /// Builds the table from `n` keys `(kind, key, rules)`; each key
    /// appears once.
    pub fn build<'a>(n: usize, keys: impl Iterator<Item = (u8, &'a str, &'a [u32])>) -> NameTable {
        // At most half full: a miss usually ends at its home slot.
        let bits = (n.max(4) * 2).next_power_of_two().trailing_zeros();
        let filter_words = (n * 16).next_power_of_two().max(64) / 64;
        let mut t = NameTable {
            slots: vec![Slot::default(); 1 << bits],
            bits,
            filter: vec![0; filter_words],
            ..NameTable::default()
        };
        for (kind, key, rules) in keys {
            t.insert(kind, key, rules);
        }
        t.long.shrink_to_fit();
        t.many.shrink_to_fit();
        t
    }

    fn insert(&mut self, kind: u8, key: &str, rules: &[u32]) {
        let bytes = key.as_bytes();
        assert!(bytes.len() < 1 << 24, "a name key longer than 16 MiB");
        let mut slot = Slot {
            hash: hash(kind, bytes),
            rules: 0,
            meta: u32::from(kind) << 24 | bytes.len() as u32,
            key: [0; INLINE],
        };
        if bytes.len() <= INLINE {
            slot.key[..bytes.len()].copy_from_slice(bytes);
        } else {
            let off = u32::try_from(self.long.len()).expect("name keys over 4 GiB");
            slot.key[..4].copy_from_slice(&off.to_le_bytes());
            self.long.extend_from_slice(bytes);
        }
        slot.rules = match rules {
            [one] if one & MANY == 0 => *one,
            _ => {
                let off = u32::try_from(self.many.len()).expect("rule lists over 2^31");
                assert!(off & MANY == 0, "rule lists over 2^31");
                self.many.push(rules.len() as u32);
                self.many.extend_from_slice(rules);
                MANY | off
            }
        };
        let (w, b) = self.filter_bit(slot.hash);
        self.filter[w] |= b;
        let mask = self.slots.len() - 1;
        let mut i = self.home(slot.hash);
        while self.slots[i].hash != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
        self.counts[usize::from(kind & 3)] += 1;
    }

    fn home(&self, hash: u64) -> usize {
        (hash >> (64 - self.bits)) as usize
    }

    /// The filter word and bit of a hash: bits other than the home slot's.
    fn filter_bit(&self, hash: u64) -> (usize, u64) {
        let bit = (hash >> 1) as usize & (self.filter.len() * 64 - 1);
        (bit / 64, 1 << (bit % 64))
    }

    fn key_of<'a>(&'a self, s: &'a Slot) -> &'a [u8] {
        let len = (s.meta & 0xff_ffff) as usize;
        if len <= INLINE {
            &s.key[..len]
        } else {
            let off = u32::from_le_bytes([s.key[0], s.key[1], s.key[2], s.key[3]]) as usize;
            &self.long[off..off + len]
        }
    }

    fn rules_of<'a>(&'a self, s: &'a Slot) -> &'a [u32] {
        if s.rules & MANY == 0 {
            std::slice::from_ref(&s.rules)
        } else {
            let off = (s.rules & !MANY) as usize;
            &self.many[off + 1..off + 1 + self.many[off] as usize]
        }
    }

    /// How many keys the table holds.
    pub fn keys(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Starts loading the filter word and the slot a lookup of `key` of
    /// `kind` reads first, without reading either (a read would wait for
    /// the miss this is meant to overlap): a hint for a batch of queries,
    /// no effect on any result.
    #[inline]
    pub fn prefetch(&self, kind: u8, key: &str) {
        if self.counts[usize::from(kind & 3)] == 0 {
            return;
        }
        let h = hash(kind, key.as_bytes());
        let (w, _) = self.filter_bit(h);
        prefetch(&self.filter[w]);
        prefetch(&self.slots[self.home(h)]);
    }

    /// The rules of `key` of `kind` (empty when there is no such key).
    pub fn get(&self, kind: u8, key: &str) -> &[u32] {
        // Also covers the empty table (no slots, no filter).
        if self.counts[usize::from(kind & 3)] == 0 {
            return &[];
        }
        let bytes = key.as_bytes();
        let h = hash(kind, bytes);
        let (w, b) = self.filter_bit(h);
        if self.filter[w] & b == 0 {
            return &[];
        }
        let meta = u32::from(kind) << 24 | bytes.len() as u32;
        let mask = self.slots.len() - 1;
        let mut i = self.home(h);
        loop {
            let s = &self.slots[i];
            if s.hash == 0 {
                return &[];
            }
            if s.hash == h && s.meta == meta && self.key_of(s) == bytes {
                return self.rules_of(s);
            }
            i = (i + 1) & mask;
        }
    }

    /// Every key: `(kind, key, rules)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &str, &[u32])> {
        self.slots.iter().filter(|s| s.hash != 0).map(|s| {
            // Keys went in as `&str`: their bytes are UTF-8.
            let key = std::str::from_utf8(self.key_of(s)).unwrap_or_default();
            ((s.meta >> 24) as u8, key, self.rules_of(s))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_key_and_nothing_else() {
        let long = "a-rather-long-label.below-another-one.example";
        let keys: Vec<(u8, String, Vec<u32>)> = (0..5000u32)
            .map(|i| (2, format!("s{i:06}.example"), vec![i]))
            .chain([
                (1, long.to_string(), vec![7, 9, 11]),
                (3, "example".into(), vec![1]),
            ])
            .chain([(2, String::new(), vec![42, MANY + 1])])
            .collect();
        let t = NameTable::build(
            keys.len(),
            keys.iter().map(|(k, n, r)| (*k, n.as_str(), r.as_slice())),
        );
        for (k, n, r) in &keys {
            assert_eq!(t.get(*k, n), r.as_slice(), "{k} {n}");
        }
        // Same text, other kind; a longer or shorter key; a near miss.
        assert!(t.get(1, "s000001.example").is_empty());
        assert!(t.get(2, long).is_empty());
        assert!(t.get(2, "s000001.exampl").is_empty());
        assert!(t.get(2, "x.s000001.example").is_empty());
        assert!(t.get(1, &long[1..]).is_empty());
        let mut all: Vec<_> = t
            .iter()
            .map(|(k, n, r)| (k, n.to_string(), r.to_vec()))
            .collect();
        all.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(all, want);
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let t = NameTable::default();
        assert!(t.get(2, "example").is_empty());
        assert_eq!(t.iter().count(), 0);
    }
}
