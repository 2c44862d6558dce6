//! The DNS access list: which source addresses get answers at all.

use std::net::IpAddr;

/// Sources answered when no ACL is configured: loopback and the private,
/// shared and link-local ranges, as dnsdist does, so a server with an
/// upstream pool is never an open resolver by accident.
pub const DEFAULT_ACL: &[&str] = &[
    "127.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

/// One network: the address and mask as 128-bit numbers (IPv4 in the low
/// 32 bits, kept apart by `v4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    v4: bool,
    addr: u128,
    mask: u128,
}

/// An ordered list of networks; a source matching any of them is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    nets: Vec<Net>,
    /// The networks as written, for logs and `/metrics`' help.
    text: Vec<String>,
}

/// An ACL entry that is not `ADDR` or `ADDR/LEN`.
#[derive(Debug, thiserror::Error)]
#[error("ACL entry `{0}`: expected ADDR or ADDR/LEN (e.g. 192.0.2.0/24, 2001:db8::/32)")]
pub struct AclError(pub String);

fn bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (true, u128::from(u32::from(a))),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => (true, u128::from(u32::from(v4))),
            None => (false, u128::from(a)),
        },
    }
}

impl Acl {
    /// Parses `ADDR[/LEN]` entries. A bare address is a host (/32, /128).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Acl, AclError> {
        let mut nets = Vec::with_capacity(entries.len());
        for e in entries {
            let e = e.as_ref().trim();
            let bad = || AclError(e.to_string());
            let (addr, len) = match e.split_once('/') {
                Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
                None => (e, None),
            };
            let ip: IpAddr = addr.parse().map_err(|_| bad())?;
            let (v4, value) = bits(ip);
            let width = if v4 { 32 } else { 128 };
            let len = u32::from(len.unwrap_or(width as u8));
            if len > width {
                return Err(bad());
            }
            let mask = if len == 0 {
                0
            } else {
                (u128::MAX << (128 - len)) >> (128 - width)
            };
            nets.push(Net {
                v4,
                addr: value & mask,
                mask,
            });
        }
        Ok(Acl {
            nets,
            text: entries.iter().map(|e| e.as_ref().to_string()).collect(),
        })
    }

    /// The default ([`DEFAULT_ACL`]).
    pub fn default_acl() -> Acl {
        Acl::parse(DEFAULT_ACL).unwrap_or(Acl {
            nets: Vec::new(),
            text: Vec::new(),
        })
    }

    /// Whether `ip` may be answered.
    #[inline]
    pub fn allows(&self, ip: IpAddr) -> bool {
        let (v4, value) = bits(ip);
        self.nets
            .iter()
            .any(|n| n.v4 == v4 && value & n.mask == n.addr)
    }

    /// The entries as configured.
    pub fn entries(&self) -> &[String] {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn default_is_loopback_and_private() {
        let acl = Acl::default_acl();
        for ok in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.31.0.1",
            "::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(acl.allows(ip(ok)), "{ok}");
        }
        for no in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "198.51.100.1"] {
            assert!(!acl.allows(ip(no)), "{no}");
        }
    }

    #[test]
    fn narrowed_and_bad_entries() {
        let acl = Acl::parse(&["127.0.0.1", "2001:db8::/32", "0.0.0.0/0"]).expect("acl");
        assert!(acl.allows(ip("127.0.0.2")), "0.0.0.0/0 allows all IPv4");
        assert!(acl.allows(ip("2001:db8:1::1")));
        assert!(!acl.allows(ip("::1")));
        let host = Acl::parse(&["127.0.0.1/32"]).expect("acl");
        assert!(host.allows(ip("127.0.0.1")));
        assert!(!host.allows(ip("127.0.0.2")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(Acl::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
