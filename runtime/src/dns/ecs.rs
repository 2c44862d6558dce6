//! EDNS Client Subnet (RFC 7871), read from the raw query.
//!
//! hickory-proto rejects an unknown FAMILY, a SOURCE PREFIX-LENGTH longer
//! than the address and a short ADDRESS (the message then fails to parse and
//! gets FORMERR), but accepts too many ADDRESS octets, bits set beyond the
//! prefix, and a non-zero SCOPE in a query, which RFC 7871 says SHOULD get
//! FORMERR too. So the OPT record is found and checked again here, on the
//! wire bytes, with every read bounds-checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A validated ECS option from a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecs {
    /// The client network address (host bits zero).
    pub addr: IpAddr,
    /// SOURCE PREFIX-LENGTH.
    pub source: u8,
}

/// Why an ECS option is malformed (the query gets FORMERR).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EcsError {
    /// FAMILY is neither 1 (IPv4) nor 2 (IPv6).
    #[error("unknown address family")]
    Family,
    /// SOURCE PREFIX-LENGTH longer than the family's address.
    #[error("source prefix too long")]
    SourceTooLong,
    /// SCOPE PREFIX-LENGTH is not 0 in a query.
    #[error("scope prefix set in a query")]
    ScopeInQuery,
    /// ADDRESS has more or fewer octets than SOURCE PREFIX-LENGTH needs.
    #[error("address length does not match the source prefix")]
    AddressLength,
    /// ADDRESS has bits set beyond SOURCE PREFIX-LENGTH.
    #[error("address bits set beyond the source prefix")]
    StrayBits,
    /// More than one ECS option.
    #[error("more than one client subnet option")]
    Duplicate,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }

    fn u16(&mut self) -> Option<u16> {
        let v = u16::from_be_bytes([*self.b.get(self.at)?, *self.b.get(self.at + 1)?]);
        self.at += 2;
        Some(v)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        if self.at + n > self.b.len() {
            return None;
        }
        self.at += n;
        Some(())
    }

    /// Skips a (possibly compressed) name without following pointers.
    fn skip_name(&mut self) -> Option<()> {
        for _ in 0..128 {
            let len = self.u8()?;
            match len {
                0 => return Some(()),
                l if l & 0xC0 == 0xC0 => return self.skip(1),
                l if l & 0xC0 == 0 => self.skip(usize::from(l))?,
                _ => return None,
            }
        }
        None
    }
}

/// Finds and validates the ECS option of a query. `Ok(None)` when there is
/// none (or the packet has no OPT record); the packet itself has already
/// been parsed successfully, so a structural problem here also means "none".
pub fn query_ecs(packet: &[u8]) -> Result<Option<Ecs>, EcsError> {
    let mut r = Reader { b: packet, at: 12 };
    let count = |i: usize| {
        packet
            .get(i..i + 2)
            .map_or(0, |s| u16::from_be_bytes([s[0], s[1]]))
    };
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    let mut found = None;
    let walk = |r: &mut Reader<'_>, found: &mut Option<Ecs>| -> Option<Result<(), EcsError>> {
        for _ in 0..qd {
            r.skip_name()?;
            r.skip(4)?;
        }
        for _ in 0..(u32::from(an) + u32::from(ns)) {
            r.skip_name()?;
            r.skip(8)?;
            let len = r.u16()?;
            r.skip(usize::from(len))?;
        }
        for _ in 0..ar {
            r.skip_name()?;
            let rtype = r.u16()?;
            r.skip(6)?;
            let len = usize::from(r.u16()?);
            let end = r.at + len;
            if rtype != 41 {
                r.skip(len)?;
                continue;
            }
            while r.at + 4 <= end {
                let code = r.u16()?;
                let olen = usize::from(r.u16()?);
                if r.at + olen > end {
                    return None;
                }
                let data = packet.get(r.at..r.at + olen)?;
                r.at += olen;
                if code == 8 {
                    if found.is_some() {
                        return Some(Err(EcsError::Duplicate));
                    }
                    match parse_option(data) {
                        Ok(e) => *found = Some(e),
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
            r.at = end;
        }
        Some(Ok(()))
    };
    match walk(&mut r, &mut found) {
        Some(Err(e)) => Err(e),
        _ => Ok(found),
    }
}

/// Validates one ECS option body (RFC 7871 §6 and §7.1.1).
pub fn parse_option(data: &[u8]) -> Result<Ecs, EcsError> {
    if data.len() < 4 {
        return Err(EcsError::AddressLength);
    }
    let family = u16::from_be_bytes([data[0], data[1]]);
    let (source, scope) = (data[2], data[3]);
    let addr = &data[4..];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return Err(EcsError::Family),
    };
    if source > max {
        return Err(EcsError::SourceTooLong);
    }
    if scope != 0 {
        return Err(EcsError::ScopeInQuery);
    }
    let need = usize::from(source).div_ceil(8);
    if addr.len() != need {
        return Err(EcsError::AddressLength);
    }
    if source % 8 != 0 {
        let last = addr[need - 1];
        let mask = 0xFFu8 >> (source % 8);
        if last & mask != 0 {
            return Err(EcsError::StrayBits);
        }
    }
    let ip = if family == 1 {
        let mut o = [0u8; 4];
        o[..need].copy_from_slice(addr);
        IpAddr::V4(Ipv4Addr::from(o))
    } else {
        let mut o = [0u8; 16];
        o[..need].copy_from_slice(addr);
        IpAddr::V6(Ipv6Addr::from(o))
    };
    Ok(Ecs { addr: ip, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_validation() {
        assert_eq!(
            parse_option(&[0, 1, 24, 0, 198, 51, 100]),
            Ok(Ecs {
                addr: "198.51.100.0".parse().expect("ip"),
                source: 24
            })
        );
        assert_eq!(
            parse_option(&[0, 1, 0, 0]),
            Ok(Ecs {
                addr: "0.0.0.0".parse().expect("ip"),
                source: 0
            })
        );
        assert_eq!(
            parse_option(&[0, 1, 24, 0, 198, 51, 100, 7]),
            Err(EcsError::AddressLength)
        );
        assert_eq!(
            parse_option(&[0, 1, 24, 0, 198, 51]),
            Err(EcsError::AddressLength)
        );
        assert_eq!(
            parse_option(&[0, 1, 20, 0, 198, 51, 0x6F]),
            Err(EcsError::StrayBits)
        );
        assert_eq!(parse_option(&[0, 1, 33, 0]), Err(EcsError::SourceTooLong));
        assert_eq!(parse_option(&[0, 3, 0, 0]), Err(EcsError::Family));
        assert_eq!(
            parse_option(&[0, 1, 24, 8, 198, 51, 100]),
            Err(EcsError::ScopeInQuery)
        );
        assert_eq!(
            parse_option(&[0, 2, 48, 0, 0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00]),
            Ok(Ecs {
                addr: "2001:db8:100::".parse().expect("ip"),
                source: 48
            })
        );
    }
}
