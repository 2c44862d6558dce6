//! Live named data sets: `set blocklist = file("blocklist.txt")`. The
//! policy refers to the set by slot ([`crate::ir::ConstSet::Live`]); its
//! members (one name, `*.` wildcard, address or CIDR per line) are swapped
//! in whole by whoever reads the file (the server watches it; `eval`
//! reads it once), without recompiling the policy. The compiler does no
//! I/O: it only parses text handed to it, all or nothing.

use crate::ir::types::{canonical_name, max_len, Cidr};
use crate::ir::NameSet;
use arc_swap::ArcSwap;
use rustc_hash::FxHashSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// The members of a live set at one moment.
#[derive(Debug, Default)]
pub struct LiveData {
    names: NameSet,
    /// Prefixes, looked up by masking an address to each length present.
    cidrs: FxHashSet<Cidr>,
    lens: Vec<(bool, u8)>,
    entries: usize,
}

/// A line of a set file that is not a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSetError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for LiveSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for LiveSetError {}

impl LiveData {
    /// Parses a set file: one member per line; blank lines and `#`
    /// comments (whole-line or trailing) are skipped. The first bad line
    /// fails the whole file.
    pub fn parse(text: &str) -> Result<LiveData, LiveSetError> {
        let mut d = LiveData::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |message: String| LiveSetError {
                line: i + 1,
                message,
            };
            if line.contains(char::is_whitespace) {
                return Err(bad(format!("`{line}`: one member per line")));
            }
            if let Some((addr, len)) = line.split_once('/') {
                let addr: IpAddr = addr
                    .parse()
                    .map_err(|_| bad(format!("`{line}` is not a CIDR prefix")))?;
                let len: u8 = len
                    .parse()
                    .ok()
                    .filter(|l| *l <= max_len(&addr))
                    .ok_or_else(|| bad(format!("`{line}`: bad prefix length")))?;
                let c = Cidr::containing(addr, len);
                if c.addr != addr {
                    return Err(bad(format!(
                        "`{line}` has host bits set (did you mean `{}/{len}`?)",
                        c.addr
                    )));
                }
                d.cidrs.insert(c);
            } else if let Ok(ip) = line.parse::<IpAddr>() {
                d.cidrs.insert(Cidr::containing(ip, max_len(&ip)));
            } else if let Some(suffix) = line.strip_prefix("*.") {
                let n = canonical_name(suffix)
                    .map_err(|e| bad(format!("`{line}` is not a name pattern: {e}")))?;
                d.names.wildcards.insert(n.into());
            } else {
                let n = canonical_name(line)
                    .map_err(|e| bad(format!("`{line}` is not a name: {e}")))?;
                d.names.exact.insert(n.into());
            }
            d.entries += 1;
        }
        let mut lens: Vec<(bool, u8)> = d.cidrs.iter().map(|c| (c.addr.is_ipv4(), c.len)).collect();
        lens.sort_unstable();
        lens.dedup();
        d.lens = lens;
        Ok(d)
    }

    /// Members read (duplicates included).
    pub fn entries(&self) -> usize {
        self.entries
    }

    fn has_name(&self, n: &str) -> bool {
        self.names.contains(n)
    }

    fn has_ip(&self, ip: &IpAddr) -> bool {
        self.lens.iter().any(|&(v4, len)| {
            v4 == ip.is_ipv4() && self.cidrs.contains(&Cidr::containing(*ip, len))
        })
    }

    fn covers(&self, inner: &Cidr) -> bool {
        self.lens.iter().any(|&(v4, len)| {
            v4 == inner.addr.is_ipv4()
                && len <= inner.len
                && self.cidrs.contains(&Cidr::containing(inner.addr, len))
        })
    }
}

/// A set whose members come from a file, shared by the policy's slot and
/// the reader that swaps them.
pub struct LiveSet {
    /// The set's name in the policy.
    pub name: String,
    /// The path as written in `file("...")` (relative paths are the
    /// reader's business: the server resolves them beside the policy).
    pub path: String,
    data: ArcSwap<LiveData>,
}

impl fmt::Debug for LiveSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSet")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("entries", &self.data.load().entries)
            .finish()
    }
}

impl LiveSet {
    /// An empty set (nothing matches until data is loaded).
    pub fn new(name: &str, path: &str) -> LiveSet {
        LiveSet {
            name: name.to_string(),
            path: path.to_string(),
            data: ArcSwap::from_pointee(LiveData::default()),
        }
    }

    /// Replaces the members with the file's text, all or nothing: on an
    /// error the old members stay. Returns the number of members.
    pub fn load_text(&self, text: &str) -> Result<usize, LiveSetError> {
        let d = LiveData::parse(text)?;
        let n = d.entries;
        self.data.store(Arc::new(d));
        Ok(n)
    }

    /// Members now.
    pub fn entries(&self) -> usize {
        self.data.load().entries
    }

    /// Whether a canonical name is a member (exactly or under a wildcard).
    pub fn contains_name(&self, n: &str) -> bool {
        self.data.load().has_name(n)
    }

    /// Whether an address is in one of the prefixes (or is a listed address).
    pub fn contains_ip(&self, ip: &IpAddr) -> bool {
        self.data.load().has_ip(ip)
    }

    /// Whether a prefix lies inside one of the prefixes.
    pub fn covers(&self, c: &Cidr) -> bool {
        self.data.load().covers(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_wildcards_addresses_and_prefixes() {
        let s = LiveSet::new("b", "b.txt");
        let n = s
            .load_text("# blocklist\nAds.Example.com.\n*.tracker.example\n\n192.0.2.7\n10.0.0.0/8  # office\n2001:db8::/32\n")
            .expect("parses");
        assert_eq!(n, 5);
        assert!(s.contains_name("ads.example.com"));
        assert!(s.contains_name("a.tracker.example"));
        assert!(!s.contains_name("tracker.example"));
        assert!(s.contains_ip(&"192.0.2.7".parse().unwrap()));
        assert!(!s.contains_ip(&"192.0.2.8".parse().unwrap()));
        assert!(s.contains_ip(&"10.9.8.7".parse().unwrap()));
        assert!(s.contains_ip(&"2001:db8::1".parse().unwrap()));
        assert!(s.covers(&Cidr::containing("10.1.0.0".parse().unwrap(), 16)));
        assert!(!s.covers(&Cidr::containing("10.0.0.0".parse().unwrap(), 7)));
    }

    #[test]
    fn a_bad_line_keeps_the_old_members() {
        let s = LiveSet::new("b", "b.txt");
        s.load_text("a.example\n").expect("parses");
        for (text, line) in [
            ("b.example\nnot a name\n", 2),
            ("b.example\n\n10.0.0.1/8\n", 3),
            ("10.0.0.0/33\n", 1),
            ("bad..name\n", 1),
        ] {
            let e = s.load_text(text).expect_err(text);
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(s.contains_name("a.example"));
            assert!(!s.contains_name("b.example"));
        }
    }
}
