//! The language's static types and the scalar value types that need more
//! than a Rust primitive: [`Cidr`], DNS names and record types.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A static type of the language.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// `true` / `false`.
    Bool,
    /// A signed 64-bit integer.
    Int,
    /// A UTF-8 string.
    String,
    /// A DNS name: case-insensitive, canonical lowercase, no trailing dot.
    Name,
    /// An IPv4 or IPv6 address.
    Ip,
    /// An address prefix.
    Cidr,
    /// A DNS record type (`A`, `AAAA`, ...).
    Qtype,
    /// A list or set of values of one type.
    List(Box<Type>),
    /// Stands for a type not yet known (an injected variable before its first
    /// typed use) or the type of an erroneous expression, so one error does
    /// not cause a cascade.
    Unknown,
}

impl Type {
    /// The type named by `name` in an `input` declaration.
    pub fn from_name(name: &str) -> Option<Type> {
        Some(match name {
            "bool" => Type::Bool,
            "int" => Type::Int,
            "string" => Type::String,
            "name" => Type::Name,
            "ip" => Type::Ip,
            "cidr" => Type::Cidr,
            "qtype" => Type::Qtype,
            _ => return None,
        })
    }

    /// Names accepted by [`Type::from_name`], for "did you mean" help.
    pub const NAMES: &'static [&'static str] =
        &["bool", "int", "string", "name", "ip", "cidr", "qtype"];

    /// Whether values of this type may be compared with `<`, `>`, ...
    pub fn is_ordered(&self) -> bool {
        matches!(self, Type::Int)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::String => f.write_str("string"),
            Type::Name => f.write_str("name"),
            Type::Ip => f.write_str("ip"),
            Type::Cidr => f.write_str("cidr"),
            Type::Qtype => f.write_str("qtype"),
            Type::List(t) => write!(f, "[{t}]"),
            Type::Unknown => f.write_str("_"),
        }
    }
}

/// An address prefix, `network/len`, with no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The network address (host bits zero).
    pub addr: IpAddr,
    /// The prefix length (0..=32 for IPv4, 0..=128 for IPv6).
    pub len: u8,
}

impl Default for Cidr {
    fn default() -> Self {
        Cidr {
            addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            len: 0,
        }
    }
}

impl Cidr {
    /// The prefix of length `len` that contains `addr` (host bits cleared).
    pub fn containing(addr: IpAddr, len: u8) -> Cidr {
        let len = len.min(max_len(&addr));
        Cidr {
            addr: mask(addr, len),
            len,
        }
    }

    /// Whether `ip` lies inside this prefix. An IPv4 address is never inside
    /// an IPv6 prefix and vice versa (no implicit v4-mapped matching).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        same_family(&self.addr, ip) && mask(*ip, self.len) == self.addr
    }

    /// Whether `other` is this prefix or a more specific one inside it.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.len >= self.len && self.contains(&other.addr)
    }
}

fn same_family(a: &IpAddr, b: &IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// The longest prefix length of `addr`'s family.
pub fn max_len(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// Text that is not a prefix (`addr/len`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/len`.
    #[error("`{0}` has no /prefix length")]
    NoLength(String),
    /// The address part does not parse.
    #[error("`{0}` is not an IP address")]
    NotAnAddress(String),
    /// The length is not a number in range for the family.
    #[error("prefix length /{len} is out of range for `{addr}` (0..={max})")]
    Length {
        /// The length as written.
        len: String,
        /// The address as written.
        addr: String,
        /// The family's longest prefix.
        max: u8,
    },
    /// Bits set after the prefix: usually a typo.
    #[error("{text} has host bits set (did you mean {suggestion}?)")]
    HostBits {
        /// The prefix as written.
        text: String,
        /// The prefix it probably means.
        suggestion: Cidr,
    },
}

/// A DNS name that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Over 253 characters.
    #[error("`{0}` is longer than 253 characters")]
    TooLong(String),
    /// Two dots in a row, or a leading dot.
    #[error("`{0}` has an empty label")]
    EmptyLabel(String),
    /// A label over 63 characters.
    #[error("`{0}` has a label longer than 63 characters")]
    LongLabel(String),
    /// Space, a control character, a backslash or non-ASCII.
    #[error("`{0}` has a character that is not allowed in a DNS name")]
    BadCharacter(String),
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Parses `addr/len`. Host bits must be zero: `10.0.0.1/8` is refused
    /// with a suggestion, because it usually hides a typo.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| CidrError::NoLength(s.to_string()))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| CidrError::NotAnAddress(a.to_string()))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|l| *l <= max_len(&addr))
            .ok_or_else(|| CidrError::Length {
                len: l.to_string(),
                addr: a.to_string(),
                max: max_len(&addr),
            })?;
        let c = Cidr::containing(addr, len);
        if c.addr != addr {
            return Err(CidrError::HostBits {
                text: s.to_string(),
                suggestion: c,
            });
        }
        Ok(c)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Record type mnemonics and their numbers (RFC 1035 and successors).
pub const QTYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("PTR", 12),
    ("HINFO", 13),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("LOC", 29),
    ("SRV", 33),
    ("NAPTR", 35),
    ("DS", 43),
    ("SSHFP", 44),
    ("RRSIG", 46),
    ("NSEC", 47),
    ("DNSKEY", 48),
    ("TLSA", 52),
    ("SVCB", 64),
    ("HTTPS", 65),
    ("CAA", 257),
    ("ANY", 255),
];

/// The number of a record type written as a mnemonic (`AAAA`) or as
/// `TYPEnnn` (RFC 3597). Case-insensitive.
pub fn qtype_from_str(s: &str) -> Option<u16> {
    let up = s.to_ascii_uppercase();
    if let Some(&(_, n)) = QTYPES.iter().find(|(m, _)| *m == up) {
        return Some(n);
    }
    up.strip_prefix("TYPE").and_then(|n| n.parse().ok())
}

/// The presentation form of a record type number.
pub fn qtype_to_string(n: u16) -> String {
    match QTYPES.iter().find(|(_, v)| *v == n) {
        Some((m, _)) => (*m).to_string(),
        None => format!("TYPE{n}"),
    }
}

/// Canonicalises a DNS name: lowercase, no trailing dot; `.` alone is the
/// root (empty string). Refuses an empty label, a label over 63 bytes, a
/// name over 253 bytes, and characters outside printable ASCII.
pub fn canonical_name(s: &str) -> Result<String, NameError> {
    let t = s.strip_suffix('.').unwrap_or(s);
    if t.is_empty() {
        return Ok(String::new());
    }
    if t.len() > 253 {
        return Err(NameError::TooLong(s.to_string()));
    }
    for label in t.split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel(s.to_string()));
        }
        if label.len() > 63 {
            return Err(NameError::LongLabel(s.to_string()));
        }
        if !label.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
            return Err(NameError::BadCharacter(s.to_string()));
        }
    }
    Ok(t.to_ascii_lowercase())
}

/// Whether `name` equals `suffix` or ends with `.suffix` (label-wise).
/// Both must be canonical. The root (empty) is a suffix of every name.
pub fn name_has_suffix(name: &str, suffix: &str) -> bool {
    if suffix.is_empty() {
        return true;
    }
    name == suffix
        || (name.len() > suffix.len()
            && name.ends_with(suffix)
            && name.as_bytes()[name.len() - suffix.len() - 1] == b'.')
}

/// Whether `name` equals `prefix` or starts with `prefix.` (label-wise).
pub fn name_has_prefix(name: &str, prefix: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    name == prefix
        || (name.len() > prefix.len()
            && name.starts_with(prefix)
            && name.as_bytes()[prefix.len()] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing_and_containment() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(&"10.1.255.3".parse().unwrap()));
        assert!(!c.contains(&"10.2.0.1".parse().unwrap()));
        assert!(!c.contains(&"::1".parse().unwrap()));
        assert!("10.1.0.1/16"
            .parse::<Cidr>()
            .unwrap_err()
            .to_string()
            .contains("10.1.0.0/16"));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(&"1.2.3.4".parse().unwrap()));
        assert!(c.covers(&"10.1.2.0/24".parse().unwrap()));
        assert!(!c.covers(&"10.0.0.0/8".parse().unwrap()));
    }

    #[test]
    fn names() {
        assert_eq!(
            canonical_name("WWW.Example.com.").unwrap(),
            "www.example.com"
        );
        assert!(canonical_name("a..b").is_err());
        assert!(name_has_suffix("www.example.com", "example.com"));
        assert!(!name_has_suffix("badexample.com", "example.com"));
        assert!(name_has_prefix("www.example.com", "www"));
        assert!(!name_has_prefix("wwwx.example.com", "www"));
    }

    #[test]
    fn qtypes() {
        assert_eq!(qtype_from_str("aaaa"), Some(28));
        assert_eq!(qtype_from_str("TYPE65534"), Some(65534));
        assert_eq!(qtype_to_string(65534), "TYPE65534");
        assert_eq!(qtype_from_str("BOGUS"), None);
    }
}
