//! The wire fast path: the common query (one question, standard opcode,
//! an optional OPT record with ECS) read straight from the datagram, and
//! its response written straight into the worker's send buffer, with name
//! compression. Nothing here allocates once the buffers have grown.
//!
//! Anything else (a compressed question name, a name with characters that
//! need escaping, EDNS version ≠ 0, extra records, a malformed option) is
//! refused here and decided by the slow path on hickory-proto's `Message`,
//! which also answers every error: the two paths cannot disagree on what
//! is malformed, because only the slow path ever says so.

use crate::dns::ecs::{parse_option, Ecs};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use std::net::IpAddr;

/// A query read by [`parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireQuery {
    /// Message ID.
    pub id: u16,
    /// RD flag.
    pub rd: bool,
    /// CD flag.
    pub cd: bool,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// Where the question section ends (the question is copied from the
    /// query into the response as it was written).
    pub question_end: usize,
    /// The OPT record, when the query has one.
    pub edns: Option<WireEdns>,
}

/// What a query's OPT record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireEdns {
    /// The requestor's UDP payload size.
    pub payload: u16,
    /// DO bit.
    pub dnssec_ok: bool,
    /// A valid ECS option.
    pub ecs: Option<Ecs>,
}

/// Bytes a label character may be and still need no escaping in the
/// canonical text form the slow path produces (hickory's `to_ascii`).
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*'
}

/// Reads `packet` when it is a query the fast path answers, writing its
/// question name in canonical form (lowercase, no trailing dot, `""` for the
/// root) into `qname`. `None`: the slow path decides.
pub fn parse(packet: &[u8], qname: &mut String) -> Option<WireQuery> {
    let h = packet.get(..12)?;
    let flags = u16::from_be_bytes([h[2], h[3]]);
    // QR=0, opcode QUERY, no TC; any Z/AD bits are ignored as the slow path does.
    if flags & 0x8000 != 0 || (flags >> 11) & 0xF != 0 || flags & 0x0200 != 0 {
        return None;
    }
    let count = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
        return None;
    }
    let at = question_name(packet, qname)?;
    let qtype = u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]);
    let qclass = u16::from_be_bytes([*packet.get(at + 2)?, *packet.get(at + 3)?]);
    // Meta and obsolete types go the slow way (AXFR, IXFR, OPT as a qtype).
    if matches!(qtype, 41 | 251 | 252) {
        return None;
    }
    let question_end = at + 4;
    let edns = if count(10) == 1 {
        Some(parse_opt(packet, question_end)?)
    } else {
        if packet.len() != question_end {
            return None;
        }
        None
    };
    Some(WireQuery {
        id: u16::from_be_bytes([h[0], h[1]]),
        rd: flags & 0x0100 != 0,
        cd: flags & 0x0010 != 0,
        qtype,
        qclass,
        question_end,
        edns,
    })
}

/// The question name of `packet` (a query with one question) in canonical
/// form into `qname`, when it is one the fast path reads (no compression,
/// plain label bytes); the offset after it.
pub fn question_name(packet: &[u8], qname: &mut String) -> Option<usize> {
    qname.clear();
    let mut at = 12;
    let mut wire_len = 1;
    loop {
        let len = usize::from(*packet.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        // Compression pointers and extended label types: slow path.
        if len > 63 {
            return None;
        }
        wire_len += len + 1;
        if wire_len > 255 {
            return None;
        }
        let label = packet.get(at..at + len)?;
        if !label.iter().all(|&b| plain(b)) {
            return None;
        }
        if !qname.is_empty() {
            qname.push('.');
        }
        for &b in label {
            qname.push(char::from(b.to_ascii_lowercase()));
        }
        at += len;
    }
    Some(at)
}

/// The OPT record at `at`, which must end the packet.
fn parse_opt(packet: &[u8], at: usize) -> Option<WireEdns> {
    let rr = packet.get(at..at + 11)?;
    // Root owner, type OPT.
    if rr[0] != 0 || u16::from_be_bytes([rr[1], rr[2]]) != 41 {
        return None;
    }
    let payload = u16::from_be_bytes([rr[3], rr[4]]);
    let (ext_rcode, version) = (rr[5], rr[6]);
    if ext_rcode != 0 || version != 0 {
        return None;
    }
    let dnssec_ok = rr[7] & 0x80 != 0;
    let rdlen = usize::from(u16::from_be_bytes([rr[9], rr[10]]));
    let mut o = at + 11;
    let end = o + rdlen;
    if end != packet.len() {
        return None;
    }
    let mut ecs = None;
    while o < end {
        let code = u16::from_be_bytes([*packet.get(o)?, *packet.get(o + 1)?]);
        let len = usize::from(u16::from_be_bytes([
            *packet.get(o + 2)?,
            *packet.get(o + 3)?,
        ]));
        let data = packet.get(o + 4..o + 4 + len)?;
        o += 4 + len;
        if o > end {
            return None;
        }
        // NSID (RFC 5001) is answered by the slow path, which adds it.
        if code == 3 {
            return None;
        }
        if code == 8 {
            // A second ECS or an invalid one is FORMERR: the slow path says so.
            if ecs.is_some() {
                return None;
            }
            ecs = Some(parse_option(data).ok()?);
        }
    }
    Some(WireEdns {
        payload,
        dnssec_ok,
        ecs,
    })
}

/// Whose name a record carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The question name (written as a pointer to it).
    Query,
    /// Another name, in wire form (lowercase labels, root terminated).
    Name(Vec<u8>),
}

/// A record ready to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireRecord {
    owner: Owner,
    rtype: u16,
    class: u16,
    ttl: u32,
    /// A name to compress (CNAME), or the record data as it is.
    data: RecordData,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RecordData {
    Name(Vec<u8>),
    Raw(Vec<u8>),
}

/// A response body that depends only on the decision and the question's
/// type (never on the name): flags, rcode, answer and authority records.
/// Built once per decision and type, written for every query that gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// AA flag.
    pub authoritative: bool,
    /// TC flag (the `truncate` verdict).
    pub truncated: bool,
    /// RCODE (4 bits; every rcode a template carries fits).
    pub rcode: u8,
    answers: Vec<WireRecord>,
    authorities: Vec<WireRecord>,
}

/// The name of `r` in wire form, lowercase.
fn name_wire(n: &hickory_proto::rr::Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(n.len() + 2);
    for label in n.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

impl Template {
    /// The template of a response built by the slow path for a query named
    /// `qname`: records owned by `qname` become [`Owner::Query`]. `None`
    /// when a record cannot be encoded (the slow path answers then).
    pub fn from_message(
        m: &hickory_proto::op::Message,
        qname: &hickory_proto::rr::Name,
    ) -> Option<Template> {
        let rcode = u16::from(m.metadata.response_code);
        if rcode > 15 || !m.additionals.is_empty() {
            return None;
        }
        let rec = |r: &Record| -> Option<WireRecord> {
            let owner = if r.name.eq_ignore_root(qname) {
                Owner::Query
            } else {
                Owner::Name(name_wire(&r.name))
            };
            let data = match &r.data {
                RData::CNAME(c) => RecordData::Name(name_wire(&c.0)),
                other => {
                    let mut buf = Vec::new();
                    let mut enc = BinEncoder::new(&mut buf);
                    // Canonical form: names in record data are not compressed.
                    enc.set_canonical_form(true);
                    other.emit(&mut enc).ok()?;
                    RecordData::Raw(buf)
                }
            };
            Some(WireRecord {
                owner,
                rtype: u16::from(r.record_type()),
                class: u16::from(r.dns_class),
                ttl: r.ttl,
                data,
            })
        };
        Some(Template {
            authoritative: m.metadata.authoritative,
            truncated: m.metadata.truncation,
            rcode: rcode as u8,
            answers: m.answers.iter().map(rec).collect::<Option<_>>()?,
            authorities: m.authorities.iter().map(rec).collect::<Option<_>>()?,
        })
    }

    /// An empty response with `rcode` (REFUSED, SERVFAIL, ...).
    pub fn rcode(rcode: u8) -> Template {
        Template {
            authoritative: false,
            truncated: false,
            rcode,
            answers: Vec::new(),
            authorities: Vec::new(),
        }
    }
}

/// Names written so far in one response, for compression: the wire offset
/// of each suffix that may be pointed at. Fixed size, on the stack.
struct Names {
    at: [u16; 48],
    n: usize,
}

impl Names {
    fn add(&mut self, msg_offset: usize, wire: &[u8]) {
        // Every label boundary of a name written at `msg_offset` is a suffix
        // a later name may point to (offsets must fit 14 bits).
        let mut i = 0;
        while i < wire.len() && wire[i] != 0 && self.n < self.at.len() {
            let off = msg_offset + i;
            if off < 0x3FFF {
                self.at[self.n] = off as u16;
                self.n += 1;
            }
            i += usize::from(wire[i]) + 1;
        }
    }
}

/// The ECS option echoed in a response: address, source and scope.
pub type EcsEcho = Option<(IpAddr, u8, u8)>;

/// How a response is finished.
#[derive(Clone, Copy, Debug)]
pub struct Finish {
    /// RA: recursion is offered through an upstream.
    pub ra: bool,
    /// The largest response allowed (UDP limit, or 65 535 over TCP).
    pub limit: usize,
    /// The ECS option to echo.
    pub ecs: EcsEcho,
}

/// The payload size a response advertises (the DNS flag day 2020 value).
pub const MAX_UDP: u16 = 1232;

/// The UDP size a query allows: its EDNS payload (512 without EDNS, never
/// less), capped at [`MAX_UDP`].
pub fn udp_limit(q: &WireQuery) -> usize {
    let asked = q.edns.map_or(512, |e| e.payload.max(512));
    usize::from(asked.min(MAX_UDP))
}

/// Writes the response to `q` (read from `packet`) with body `t` into
/// `out` (cleared first). Over `finish.limit`, the records are dropped and
/// TC is set, as the slow path does.
pub fn write_response(
    out: &mut Vec<u8>,
    packet: &[u8],
    q: &WireQuery,
    t: &Template,
    finish: Finish,
) {
    out.clear();
    let mut names = Names { at: [0; 48], n: 0 };
    header(out, q, t, finish, t.truncated);
    out.extend_from_slice(&packet[12..q.question_end]);
    // The question name, lowercase, for compression against it.
    let mut n_answers = 0u16;
    let mut n_auth = 0u16;
    names_of_question(&mut names, packet, q);
    for (recs, count) in [(&t.answers, &mut n_answers), (&t.authorities, &mut n_auth)] {
        for r in recs {
            record(out, &mut names, r);
            *count += 1;
        }
    }
    opt(out, q, finish);
    if out.len() > finish.limit {
        // Too large: TC, question and OPT only.
        out.clear();
        header(out, q, t, finish, true);
        out.extend_from_slice(&packet[12..q.question_end]);
        opt(out, q, finish);
        out[6..10].copy_from_slice(&[0, 0, 0, 0]);
        return;
    }
    out[6..8].copy_from_slice(&n_answers.to_be_bytes());
    out[8..10].copy_from_slice(&n_auth.to_be_bytes());
}

fn names_of_question(names: &mut Names, packet: &[u8], q: &WireQuery) {
    names.add(12, &packet[12..q.question_end - 4]);
}

fn header(out: &mut Vec<u8>, q: &WireQuery, t: &Template, finish: Finish, tc: bool) {
    out.extend_from_slice(&q.id.to_be_bytes());
    let b2 = 0x80 | (u8::from(t.authoritative) << 2) | (u8::from(tc) << 1) | u8::from(q.rd);
    let b3 = (u8::from(finish.ra) << 7) | (u8::from(q.cd) << 4) | (t.rcode & 0x0F);
    out.extend_from_slice(&[b2, b3, 0, 1, 0, 0, 0, 0, 0, u8::from(q.edns.is_some())]);
}

fn record(out: &mut Vec<u8>, names: &mut Names, r: &WireRecord) {
    match &r.owner {
        Owner::Query => out.extend_from_slice(&[0xC0, 12]),
        Owner::Name(w) => write_compressed(out, names, w),
    }
    out.extend_from_slice(&r.rtype.to_be_bytes());
    out.extend_from_slice(&r.class.to_be_bytes());
    out.extend_from_slice(&r.ttl.to_be_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    match &r.data {
        RecordData::Name(w) => write_compressed(out, names, w),
        RecordData::Raw(b) => out.extend_from_slice(b),
    }
    let len = (out.len() - len_at - 2) as u16;
    out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
}

/// Writes a wire name, pointing at the longest suffix of it already in
/// `out` (the question or an earlier name).
fn write_compressed(out: &mut Vec<u8>, names: &mut Names, wire: &[u8]) {
    let start = out.len();
    let mut i = 0;
    while i < wire.len() && wire[i] != 0 {
        let suffix = &wire[i..];
        let found = names.at[..names.n]
            .iter()
            .copied()
            .find(|off| same_name(out, usize::from(*off), suffix));
        if let Some(off) = found {
            out.extend_from_slice(&wire[..i]);
            out.extend_from_slice(&(0xC000 | off).to_be_bytes());
            names.add(start, &wire[..i]);
            return;
        }
        i += usize::from(wire[i]) + 1;
    }
    out.extend_from_slice(wire);
    names.add(start, wire);
}

/// Whether the name written at `off` in `msg` (following pointers, at most
/// a few) equals the wire name `want`, ignoring ASCII case.
fn same_name(msg: &[u8], mut off: usize, want: &[u8]) -> bool {
    let mut w = 0;
    for _ in 0..64 {
        let Some(&l) = msg.get(off) else { return false };
        if l & 0xC0 == 0xC0 {
            let Some(&lo) = msg.get(off + 1) else {
                return false;
            };
            off = (usize::from(l & 0x3F) << 8) | usize::from(lo);
            continue;
        }
        let Some(&wl) = want.get(w) else { return false };
        if l != wl {
            return false;
        }
        if l == 0 {
            return true;
        }
        let (Some(a), Some(b)) = (
            msg.get(off + 1..off + 1 + usize::from(l)),
            want.get(w + 1..w + 1 + usize::from(l)),
        ) else {
            return false;
        };
        if !a.eq_ignore_ascii_case(b) {
            return false;
        }
        off += usize::from(l) + 1;
        w += usize::from(l) + 1;
    }
    false
}

fn opt(out: &mut Vec<u8>, q: &WireQuery, finish: Finish) {
    let Some(e) = q.edns else { return };
    out.push(0);
    out.extend_from_slice(&41u16.to_be_bytes());
    out.extend_from_slice(&MAX_UDP.to_be_bytes());
    out.extend_from_slice(&[0, 0, if e.dnssec_ok { 0x80 } else { 0 }, 0]);
    match finish.ecs {
        Some((addr, source, scope)) => {
            let n = usize::from(source).div_ceil(8);
            let (family, bytes): (u16, [u8; 16]) = match addr {
                IpAddr::V4(a) => {
                    let mut b = [0u8; 16];
                    b[..4].copy_from_slice(&a.octets());
                    (1, b)
                }
                IpAddr::V6(a) => (2, a.octets()),
            };
            let n = n.min(if family == 1 { 4 } else { 16 });
            let olen = 4 + n as u16;
            out.extend_from_slice(&(4 + olen).to_be_bytes());
            out.extend_from_slice(&8u16.to_be_bytes());
            out.extend_from_slice(&olen.to_be_bytes());
            out.extend_from_slice(&family.to_be_bytes());
            out.extend_from_slice(&[source, scope]);
            out.extend_from_slice(&bytes[..n]);
        }
        None => out.extend_from_slice(&[0, 0]),
    }
}

/// Writes the answer to `q` with address records `data` of `rtype` (A or
/// AAAA, matching the question's type) owned by the question name: the
/// common static answer, written without a template (a policy of 100 000
/// such answers needs no cache). `false` when the data are not all
/// addresses of that type: the caller builds the answer another way.
pub fn write_addresses(
    out: &mut Vec<u8>,
    packet: &[u8],
    q: &WireQuery,
    rtype: u16,
    ttl: u32,
    data: &[dnspolicy_compiler::Value],
    finish: Finish,
) -> bool {
    use dnspolicy_compiler::Value;
    let fits = |v: &Value| {
        matches!(
            (rtype, v),
            (1, Value::Ip(IpAddr::V4(_))) | (28, Value::Ip(IpAddr::V6(_)))
        )
    };
    if q.qtype != rtype || data.is_empty() || data.len() > 64 || !data.iter().all(fits) {
        return false;
    }
    let ips = data.iter().filter_map(|v| match v {
        Value::Ip(ip) => Some(*ip),
        _ => None,
    });
    write_ips(out, packet, q, rtype, ttl, data.len(), ips, finish)
}

/// [`write_addresses`] for addresses the caller already holds (an answer
/// pool's picks): `n` addresses of `rtype`'s family, checked by the caller.
#[allow(clippy::too_many_arguments)]
pub fn write_ips(
    out: &mut Vec<u8>,
    packet: &[u8],
    q: &WireQuery,
    rtype: u16,
    ttl: u32,
    n: usize,
    ips: impl Iterator<Item = IpAddr>,
    finish: Finish,
) -> bool {
    if q.qtype != rtype || n == 0 || n > 64 {
        return false;
    }
    out.clear();
    let t = Template {
        authoritative: true,
        truncated: false,
        rcode: 0,
        answers: Vec::new(),
        authorities: Vec::new(),
    };
    header(out, q, &t, finish, false);
    out.extend_from_slice(&packet[12..q.question_end]);
    for ip in ips {
        out.extend_from_slice(&[0xC0, 12]);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&q.qclass.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        match ip {
            IpAddr::V4(a) => {
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.extend_from_slice(&16u16.to_be_bytes());
                out.extend_from_slice(&a.octets());
            }
        }
    }
    opt(out, q, finish);
    if out.len() > finish.limit {
        out.clear();
        header(out, q, &t, finish, true);
        out.extend_from_slice(&packet[12..q.question_end]);
        opt(out, q, finish);
        return true;
    }
    out[6..8].copy_from_slice(&(n as u16).to_be_bytes());
    true
}

/// An error reply (`rcode`: FORMERR, NOTIMP) to a packet the fast path and
/// hickory could not read whole: the header's ID, opcode and RD echoed;
/// the question echoed when it can be read (one question, uncompressed);
/// an OPT record (no options, DO echoed) when the packet's additional
/// section starts with a readable one (RFC 6891 §7). `None` for a runt.
pub fn error_echo(packet: &[u8], rcode: u8, payload: u16) -> Option<Vec<u8>> {
    let h = packet.get(..12)?;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&h[..2]);
    let opcode = (h[2] >> 3) & 0x0F;
    out.push(0x80 | (opcode << 3) | (h[2] & 0x01));
    out.push(rcode & 0x0F);
    out.extend_from_slice(&[0; 8]);
    let count = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    if count(4) != 1 {
        return Some(out);
    }
    // The question: plain labels only.
    let mut at = 12;
    loop {
        let Some(&len) = packet.get(at) else {
            return Some(out);
        };
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 || at + usize::from(len) > packet.len() || at > 12 + 255 {
            return Some(out);
        }
        at += usize::from(len);
    }
    if packet.len() < at + 4 {
        return Some(out);
    }
    let q_end = at + 4;
    out.extend_from_slice(&packet[12..q_end]);
    out[5] = 1;
    // The OPT record, if it comes right after the question.
    if count(6) == 0 && count(8) == 0 && count(10) >= 1 {
        if let Some(rr) = packet.get(q_end..q_end + 11) {
            if rr[0] == 0 && u16::from_be_bytes([rr[1], rr[2]]) == 41 {
                let dnssec_ok = rr[7] & 0x80 != 0;
                out.push(0);
                out.extend_from_slice(&41u16.to_be_bytes());
                out.extend_from_slice(&payload.to_be_bytes());
                out.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
                out[11] = 1;
            }
        }
    }
    Some(out)
}

/// Whether `rtype` is a type a template may answer for (not a meta type).
pub fn templatable(rtype: u16) -> bool {
    !matches!(
        RecordType::from(rtype),
        RecordType::OPT | RecordType::AXFR | RecordType::IXFR
    )
}
