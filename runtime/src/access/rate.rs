//! The per-source-prefix query rate limit (what operators reach for in
//! dnsdist's `MaxQPSIPRule` and BIND's RRL): queries are counted per
//! source prefix (IPv4 /24, IPv6 /56 by default) over one-second windows;
//! past the limit a UDP query is dropped, or answered truncated now and
//! then (`slip`) so a real client behind a spoofed flood retries over TCP.
//!
//! The counters live in a fixed table of atomics, allocated once: a flood
//! from many prefixes costs no memory, and workers never lock. Two prefixes
//! that hash to the same slot in the same second share a count (they are
//! limited a little early, never late).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Slots in the table (a power of two): 512 KiB.
const SLOTS: usize = 1 << 16;

/// What happens to a query over the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverLimit {
    /// No answer (the default).
    #[default]
    Drop,
    /// Every `slip`-th query over the limit gets an empty truncated answer
    /// (TC=1), the others none.
    Slip,
}

/// What the limiter says about one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Under the limit: the prefix's queries in this second, this one
    /// included (`{client.rate}`).
    Pass(u32),
    /// Over the limit: no answer.
    Drop,
    /// Over the limit: an empty truncated answer.
    Slip,
}

/// The limiter.
#[derive(Debug)]
pub struct RateLimiter {
    slots: Box<[AtomicU64]>,
    start: Instant,
    limit: u32,
    v4_prefix: u32,
    v6_prefix: u32,
    action: OverLimit,
    slip: u64,
    over: AtomicU64,
}

impl RateLimiter {
    /// A limiter of `limit` queries per second per prefix.
    pub fn new(limit: u32, v4_prefix: u8, v6_prefix: u8, action: OverLimit, slip: u32) -> Self {
        RateLimiter {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            start: Instant::now(),
            limit,
            v4_prefix: u32::from(v4_prefix.min(32)),
            v6_prefix: u32::from(v6_prefix.min(128)),
            action,
            slip: u64::from(slip.max(1)),
            over: AtomicU64::new(0),
        }
    }

    /// The source's prefix as a number, tagged by family.
    fn key(&self, ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(a) => {
                let p = self.v4_prefix;
                let v = u128::from(u32::from(a));
                (if p == 0 { 0 } else { v >> (32 - p) }) | (1 << 127)
            }
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.key(IpAddr::V4(v4)),
                None => {
                    let p = self.v6_prefix;
                    let v = u128::from(a);
                    (if p == 0 { 0 } else { v >> (128 - p) }) & !(1 << 127)
                }
            },
        }
    }

    /// The slot of `ip`'s prefix.
    fn slot(&self, ip: IpAddr) -> &AtomicU64 {
        let key = self.key(ip);
        let h = ((key as u64) ^ ((key >> 64) as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.slots[(h >> 48) as usize & (SLOTS - 1)]
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_secs() & 0xFFFF_FFFF
    }

    /// The queries `ip`'s prefix sent this second, without counting one.
    pub fn peek(&self, ip: IpAddr) -> u32 {
        let cur = self.slot(ip).load(Relaxed);
        if cur >> 32 == self.now() {
            u32::try_from(cur & 0xFFFF_FFFF).unwrap_or(u32::MAX)
        } else {
            0
        }
    }

    /// Counts a query from `ip` and says what to do with it.
    pub fn admit(&self, ip: IpAddr) -> Admit {
        let slot = self.slot(ip);
        let now = self.now();
        let mut cur = slot.load(Relaxed);
        let count = loop {
            if cur >> 32 != now {
                // A new second for this slot: restart its count.
                match slot.compare_exchange_weak(cur, (now << 32) | 1, Relaxed, Relaxed) {
                    Ok(_) => break 1,
                    Err(seen) => cur = seen,
                }
            } else {
                let before = slot.fetch_add(1, Relaxed);
                break (before & 0xFFFF_FFFF).saturating_add(1);
            }
        };
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        if count <= self.limit {
            return Admit::Pass(count);
        }
        match self.action {
            OverLimit::Drop => Admit::Drop,
            OverLimit::Slip => {
                if self.over.fetch_add(1, Relaxed).is_multiple_of(self.slip) {
                    Admit::Slip
                } else {
                    Admit::Drop
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn counts_per_prefix() {
        let r = RateLimiter::new(3, 24, 56, OverLimit::Drop, 2);
        assert_eq!(r.admit(ip("192.0.2.1")), Admit::Pass(1));
        assert_eq!(r.admit(ip("192.0.2.200")), Admit::Pass(2), "same /24");
        assert_eq!(r.admit(ip("192.0.2.3")), Admit::Pass(3));
        assert_eq!(r.admit(ip("192.0.2.4")), Admit::Drop);
        assert_eq!(r.peek(ip("192.0.2.9")), 4, "peek counts nothing");
        assert_eq!(r.admit(ip("192.0.3.1")), Admit::Pass(1), "another /24");
        assert_eq!(r.admit(ip("2001:db8:0:1::1")), Admit::Pass(1));
        assert_eq!(r.admit(ip("2001:db8:0:ff::1")), Admit::Pass(2), "same /56");
        assert_eq!(
            r.admit(ip("2001:db8:0:100::1")),
            Admit::Pass(1),
            "another /56"
        );
    }

    #[test]
    fn slip_truncates_every_nth() {
        let r = RateLimiter::new(1, 32, 128, OverLimit::Slip, 2);
        assert_eq!(r.admit(ip("198.51.100.1")), Admit::Pass(1));
        let over: Vec<Admit> = (0..4).map(|_| r.admit(ip("198.51.100.1"))).collect();
        assert_eq!(over, [Admit::Slip, Admit::Drop, Admit::Slip, Admit::Drop]);
        assert_eq!(r.admit(ip("198.51.100.2")), Admit::Pass(1), "/32 prefixes");
    }
}
