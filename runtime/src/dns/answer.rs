//! From a decision to a DNS response: synthesised records, CNAME rewrites
//! resolved from the local zone, negative answers with the zone's SOA, and
//! the finishing touches every response gets (EDNS OPT with the ECS scope,
//! the UDP size limit).

use crate::dns::zone::{cname_target, Lookup, Zone};
use dnspolicy_compiler::{Value, Verdict};
use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::rdata::tsig::{make_tsig_record, TsigError};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, TSIG, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use std::net::IpAddr;

/// The largest UDP response we send (the DNS flag day 2020 value).
pub const MAX_UDP: u16 = 1232;

/// A response skeleton for `req`: same ID and opcode, RD/CD echoed, the
/// question copied.
pub fn skeleton(req: &Message) -> Message {
    let mut r = Message::response(req.metadata.id, req.metadata.op_code);
    r.metadata.recursion_desired = req.metadata.recursion_desired;
    r.metadata.checking_disabled = req.metadata.checking_disabled;
    r.queries = req.queries.clone();
    r
}

/// An error response with `rcode`.
pub fn error(req: &Message, rcode: ResponseCode) -> Message {
    let mut r = skeleton(req);
    r.metadata.response_code = rcode;
    r
}

/// The answer to a query signed with a key this server does not hold
/// (RFC 8945 §5.2): NOTAUTH, and a TSIG record with error BADKEY, the
/// request's key name, algorithm, time and original ID, and no MAC (the
/// response cannot be signed).
pub fn badkey(req: &Message, key: &Name, t: &TSIG) -> Message {
    let mut r = error(req, ResponseCode::NotAuth);
    let rdata = TSIG::new(
        t.algorithm.clone(),
        t.time,
        t.fudge,
        Vec::new(),
        t.oid,
        Some(TsigError::BadKey),
        Vec::new(),
    );
    r.signature = Some(Box::new(make_tsig_record(key.clone(), rdata)));
    r
}

/// The TSIG record of a request: its key name and data. hickory-proto
/// moves it to `signature` only with its DNSSEC features; without them it
/// stays the last additional record.
pub fn tsig_of(req: &Message) -> Option<(Name, TSIG)> {
    if let Some(s) = req.signature() {
        return Some((s.name.clone(), s.data.clone()));
    }
    req.additionals.iter().find_map(|r| match &r.data {
        RData::TSIG(t) => Some((r.name.clone(), t.clone())),
        _ => None,
    })
}

/// FORMERR for a packet that did not parse: built from the raw header
/// alone (ID, opcode and RD echoed; no question).
pub fn formerr_raw(packet: &[u8]) -> Option<Vec<u8>> {
    let h = packet.get(..12)?;
    let opcode = (h[2] >> 3) & 0x0F;
    let rd = h[2] & 0x01;
    let mut out = vec![0u8; 12];
    out[0] = h[0];
    out[1] = h[1];
    out[2] = 0x80 | (opcode << 3) | rd;
    out[3] = ResponseCode::FormErr.low();
    Some(out)
}

/// Builds record data for `answer TYPE DATA`.
pub fn rdata(rtype: u16, v: &Value) -> Option<RData> {
    let rt = RecordType::from(rtype);
    Some(match (rt, v) {
        (RecordType::A, Value::Ip(IpAddr::V4(a))) => RData::A(A(*a)),
        (RecordType::AAAA, Value::Ip(IpAddr::V6(a))) => RData::AAAA(AAAA(*a)),
        (RecordType::CNAME, Value::Name(n)) => RData::CNAME(CNAME(fqdn(n)?)),
        (RecordType::TXT, Value::Str(s)) => RData::TXT(TXT::new(vec![s.to_string()])),
        (_, v) => RData::try_from_str(rt, &v.to_string()).ok()?,
    })
}

/// A canonical dnspolicy name (no trailing dot) as a fully qualified Name.
pub fn fqdn(n: &str) -> Option<Name> {
    let mut name = Name::from_ascii(if n.is_empty() { "." } else { n }).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// The result of following a name through the local zone.
pub enum Chase {
    /// Done: the records (possibly after CNAMEs) were found.
    Done,
    /// The last name of the chain exists in the zone without data of that
    /// type: NODATA, whose negative answer carries the zone's SOA.
    NoData,
    /// The chain left the zone at this name: ask upstream.
    Outside(Name),
    /// The chain ended in a name the zone says does not exist.
    NxDomain,
}

/// Appends `name`'s records of `rtype` (following CNAMEs, at most 8) from
/// the zone to `answers`.
pub fn chase(zone: &Zone, mut name: Name, rtype: RecordType, answers: &mut Vec<Record>) -> Chase {
    for _ in 0..8 {
        match zone.lookup(&LowerName::from(&name), rtype) {
            Lookup::Records(rs) => {
                answers.extend(rs.iter().cloned());
                return Chase::Done;
            }
            Lookup::Cname(c) => {
                answers.push(c.clone());
                match cname_target(c) {
                    Some(t) => name = t.clone(),
                    None => return Chase::Done,
                }
            }
            Lookup::NoData => return Chase::NoData,
            Lookup::NxDomain => return Chase::NxDomain,
            Lookup::NotInZone => return Chase::Outside(name),
        }
    }
    Chase::Done
}

/// A negative answer (`rcode` NXDOMAIN or NOERROR/NODATA) with the zone's
/// SOA in the authority section when the zone has one.
pub fn negative(req: &Message, zone: &Zone, rcode: ResponseCode) -> Message {
    let mut r = skeleton(req);
    r.metadata.response_code = rcode;
    r.metadata.authoritative = true;
    let in_zone = req
        .queries
        .first()
        .zip(zone.origin())
        .is_some_and(|(q, origin)| origin.zone_of(&LowerName::from(&q.name)));
    // The SOA goes only with names of the zone (a resolver discards an
    // out-of-bailiwick SOA), with the negative-caching TTL of RFC 2308.
    if in_zone {
        if let Some(soa) = zone.soa() {
            r.authorities.push(negative_soa(soa));
        }
    }
    r
}

/// The SOA for a negative answer: its TTL is min(SOA TTL, MINIMUM).
fn negative_soa(soa: &Record) -> Record {
    let mut s = soa.clone();
    if let RData::SOA(d) = &soa.data {
        s.ttl = s.ttl.min(d.minimum);
    }
    s
}

/// What a verdict becomes before any upstream work.
pub enum Built {
    /// A finished response.
    Reply(Message),
    /// Send nothing.
    Drop,
    /// Forward the query to a pool and relay its answer.
    Forward(String),
    /// A rewrite whose target lies outside the zone: `partial` holds the
    /// CNAME chain so far; the target's records come from the default pool.
    ResolveOutside {
        /// The response built so far.
        partial: Message,
        /// The name to resolve upstream.
        target: Name,
    },
    /// The verdict does not apply here; let the next plugin decide.
    Skip,
}

/// Turns a verdict into a response (or upstream work).
pub fn build(
    req: &Message,
    verdict: &Verdict,
    zone: &Zone,
    tcp: bool,
    pools: &dyn Fn(&str) -> bool,
) -> Built {
    let Some(q) = req.queries.first() else {
        return Built::Reply(error(req, ResponseCode::FormErr));
    };
    let qtype = q.query_type;
    match verdict {
        Verdict::Answer { rtype, data, ttl } => {
            let rt = RecordType::from(*rtype);
            let mut r = skeleton(req);
            r.metadata.authoritative = true;
            if rt != qtype && qtype != RecordType::ANY && rt != RecordType::CNAME {
                // An A record is no answer to an AAAA question: NODATA.
                if let Some(soa) = zone.soa() {
                    r.authorities.push(soa.clone());
                }
                return Built::Reply(r);
            }
            for d in data {
                match rdata(*rtype, d) {
                    Some(rd) => r.answers.push(Record::from_rdata(q.name.clone(), *ttl, rd)),
                    None => return Built::Reply(error(req, ResponseCode::ServFail)),
                }
            }
            if rt == RecordType::CNAME && qtype != RecordType::CNAME {
                if let Some(t) = r.answers.first().and_then(cname_target).cloned() {
                    return follow(r, zone, t, qtype);
                }
            }
            Built::Reply(r)
        }
        Verdict::Rewrite { target, ttl } => {
            let Some(t) = fqdn(target) else {
                return Built::Reply(error(req, ResponseCode::ServFail));
            };
            let mut r = skeleton(req);
            r.metadata.authoritative = true;
            r.answers.push(Record::from_rdata(
                q.name.clone(),
                *ttl,
                RData::CNAME(CNAME(t.clone())),
            ));
            if qtype == RecordType::CNAME {
                return Built::Reply(r);
            }
            follow(r, zone, t, qtype)
        }
        Verdict::Forward { pool } => Built::Forward(pool.clone()),
        // The server picks a pool's members before building (`gslb`); one
        // that reaches here had no pool to pick from.
        Verdict::Pool { .. } => Built::Reply(error(req, ResponseCode::ServFail)),
        Verdict::Value(Value::Str(s)) if pools(s) => Built::Forward(s.to_string()),
        Verdict::Value(_) => Built::Skip,
        Verdict::Nxdomain => Built::Reply(negative(req, zone, ResponseCode::NXDomain)),
        Verdict::Nodata => Built::Reply(negative(req, zone, ResponseCode::NoError)),
        Verdict::Refuse => Built::Reply(error(req, ResponseCode::Refused)),
        Verdict::Servfail => Built::Reply(error(req, ResponseCode::ServFail)),
        Verdict::Drop => Built::Drop,
        Verdict::Truncate if tcp => Built::Skip,
        Verdict::Truncate => {
            let mut r = skeleton(req);
            r.metadata.truncation = true;
            Built::Reply(r)
        }
        // HTTP verdicts do not apply to a DNS query (a Lua or WASM plugin
        // could hand one back): the next plugin decides.
        Verdict::Pass
        | Verdict::Route { .. }
        | Verdict::Respond { .. }
        | Verdict::Redirect { .. } => Built::Skip,
    }
}

fn follow(mut r: Message, zone: &Zone, target: Name, qtype: RecordType) -> Built {
    match chase(zone, target, qtype, &mut r.answers) {
        Chase::Done => Built::Reply(r),
        // RFC 2308 §2.2: a NODATA answer after a CNAME carries the SOA of
        // the target's zone, so caches can store the negative part.
        Chase::NoData => {
            if let Some(soa) = zone.soa() {
                r.authorities.push(negative_soa(soa));
            }
            Built::Reply(r)
        }
        // RFC 6604: the RCODE is that of the last name in the chain.
        Chase::NxDomain => {
            r.metadata.response_code = ResponseCode::NXDomain;
            if let Some(soa) = zone.soa() {
                r.authorities.push(negative_soa(soa));
            }
            Built::Reply(r)
        }
        Chase::Outside(name) => Built::ResolveOutside {
            partial: r,
            target: name,
        },
    }
}

/// An authoritative answer with exactly `records` (a script's own).
pub fn records(req: &Message, records: Vec<Record>) -> Message {
    let mut r = skeleton(req);
    r.metadata.authoritative = true;
    r.answers = records;
    r
}

/// The local zone's own answer for a query no plugin decided; `None` when
/// the name is outside the zone.
pub fn from_zone(req: &Message, zone: &Zone) -> Option<Built> {
    let q = req.queries.first()?;
    let name = LowerName::from(&q.name);
    match zone.lookup(&name, q.query_type) {
        Lookup::NotInZone => None,
        Lookup::NxDomain => Some(Built::Reply(negative(req, zone, ResponseCode::NXDomain))),
        Lookup::NoData => Some(Built::Reply(negative(req, zone, ResponseCode::NoError))),
        Lookup::Records(rs) => {
            let mut r = skeleton(req);
            r.metadata.authoritative = true;
            r.answers.extend(rs.iter().cloned());
            Some(Built::Reply(r))
        }
        Lookup::Cname(c) => {
            let mut r = skeleton(req);
            r.metadata.authoritative = true;
            r.answers.push(c.clone());
            match cname_target(c).cloned() {
                Some(t) => Some(follow(r, zone, t, q.query_type)),
                None => Some(Built::Reply(r)),
            }
        }
    }
}

/// Final touches: the EDNS OPT record when the query had one (DO echoed,
/// ECS echoed with `scope`), RA when recursion is offered through an
/// upstream, and the UDP size limit (TC=1 with the records dropped when the
/// response does not fit). Returns the wire bytes.
pub fn finish(
    mut r: Message,
    req: &Message,
    ecs: Option<(IpAddr, u8, u8)>,
    tcp: bool,
    ra: bool,
    nsid: Option<&[u8]>,
) -> Option<Vec<u8>> {
    r.metadata.recursion_available |= ra;
    if let Some(qe) = &req.edns {
        let mut e = Edns::new();
        e.set_max_payload(MAX_UDP);
        e.set_dnssec_ok(qe.flags().dnssec_ok);
        if let Some((addr, source, scope)) = ecs {
            e.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(addr, source, scope)));
        }
        r.set_edns(e);
        set_nsid(&mut r, req, nsid);
    } else {
        r.edns = None;
    }
    let bytes = r.to_vec().ok()?;
    let limit = if tcp {
        usize::from(u16::MAX)
    } else {
        udp_limit(req)
    };
    if bytes.len() <= limit {
        return Some(bytes);
    }
    r.truncate().to_vec().ok()
}

/// Answers an NSID request (RFC 5001 §2.2): when the query carried the
/// (empty) NSID option and this server has an identifier, the response's
/// OPT record carries it; otherwise nothing changes.
pub fn set_nsid(resp: &mut Message, req: &Message, nsid: Option<&[u8]>) {
    use hickory_proto::rr::rdata::opt::{EdnsCode, NSIDPayload};
    let (Some(id), Some(qe)) = (nsid, &req.edns) else {
        return;
    };
    if qe.option(EdnsCode::NSID).is_none() {
        return;
    }
    let (Some(e), Ok(payload)) = (resp.edns.as_mut(), NSIDPayload::new(id.to_vec())) else {
        return;
    };
    e.options_mut().remove(EdnsCode::NSID);
    e.options_mut().insert(EdnsOption::NSID(payload));
}

/// Makes a relayed upstream answer tell caches the truth: its ECS scope
/// becomes the longer of the upstream's and what our own decision to
/// forward depended on (`ecs` = address, source, our scope), and the option
/// is added if the upstream left it out. Nothing changes when the query had
/// no ECS.
pub fn merge_ecs_scope(resp: &mut Message, ecs: Option<(IpAddr, u8, u8)>) {
    let Some((addr, source, ours)) = ecs else {
        return;
    };
    let theirs = resp
        .edns
        .as_ref()
        .and_then(
            |e| match e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet) {
                Some(EdnsOption::Subnet(c)) => Some(c.scope_prefix()),
                _ => None,
            },
        )
        .unwrap_or(0);
    let edns = resp.edns.get_or_insert_with(|| {
        let mut e = Edns::new();
        e.set_max_payload(MAX_UDP);
        e
    });
    edns.options_mut()
        .remove(hickory_proto::rr::rdata::opt::EdnsCode::Subnet);
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            addr,
            source,
            theirs.max(ours),
        )));
}

/// The largest UDP response `req` may get: its EDNS payload size (512
/// without EDNS, never less), capped at [`MAX_UDP`].
pub fn udp_limit(req: &Message) -> usize {
    let asked = req.edns.as_ref().map_or(512, |e| e.max_payload().max(512));
    usize::from(asked.min(MAX_UDP))
}

/// Whether `req` is a standard query we answer, or the error to send.
pub fn precheck(req: &Message) -> Result<(), ResponseCode> {
    if req.metadata.op_code != OpCode::Query {
        return Err(ResponseCode::NotImp);
    }
    if req.queries.len() != 1 {
        return Err(ResponseCode::FormErr);
    }
    if req.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return Err(ResponseCode::BADVERS);
    }
    Ok(())
}
