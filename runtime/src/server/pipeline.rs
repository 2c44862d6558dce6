//! The synchronous query pipeline: parse, check, decide, build.
//!
//! Two ways in, one decision. The common query is read straight from the
//! datagram ([`wire::parse`]); anything else is parsed by hickory-proto,
//! which also answers every malformed or unusual query. Either way the
//! plugin chain decides once, and the answer is built once: a static
//! verdict's response body is a [`Template`] made the first time a worker
//! sees that verdict for that question type, then written for every query
//! that gets it; everything else goes through hickory's `Message`, parsed
//! from the packet only then.

use super::upstream_job::{Job, JobKind};
use super::*;
use crate::access::rate::Admit;
use crate::dns::ecs::Ecs;
use crate::dns::query::ecs_is_private;
use crate::dns::wire::{self, Finish, Template, WireQuery};
use crate::gslb::Picked;
use dnspolicy_compiler::{Value, Verdict};
use rustc_hash::FxHashMap;
use std::borrow::Cow;

/// The outcome of the synchronous part of the pipeline.
pub(super) enum Step {
    /// The reply is in the output buffer (`true`), or there is none.
    Done(bool),
    /// Needs an upstream exchange first (boxed: rare, and large).
    Upstream(Box<Job>),
}

/// What a template is the body for: the verdict, the question's type and
/// class, whether the name is in the local zone (negative answers carry its
/// SOA then), and TCP. A compiled policy's verdict is known by its address
/// in the policy's table; a verdict a Lua or WASM plugin made on this call
/// by its value (hashed, then compared).
type TemplateKey = (usize, u16, u16, bool, bool);

/// The question-dependent part of a key.
type Question = (u16, u16, bool, bool);

/// Templates of verdicts made at run time, by hash of verdict and question.
type ByValue = FxHashMap<u64, Vec<(Verdict, Question, Template)>>;

/// Which template a query needs.
enum Key<'v> {
    Static(TemplateKey, &'v Verdict),
    Value(u64, &'v Verdict, Question),
}

/// One worker's reusable state. Nothing in it is shared: a UDP worker
/// thread owns one, a TCP connection another.
pub struct Worker {
    /// The UDP worker's number (its plugin slots), `None` for TCP.
    pub(super) id: Option<usize>,
    /// The listener's address, for `server.listener`.
    pub(super) listener: Arc<str>,
    qname: String,
    templates: FxHashMap<TemplateKey, Template>,
    by_value: ByValue,
    generation: u64,
    /// Queries seen, for the samplings (decision log, traces, timing).
    sampled: super::sampled::Counters,
}

/// Templates a worker keeps at most (one per static verdict and type in
/// practice; the bound only matters for pathological policies).
const MAX_TEMPLATES: usize = 4096;

impl Worker {
    /// A worker for `listener`; `id` is the UDP worker number.
    pub fn new(id: Option<usize>, listener: Arc<str>) -> Worker {
        Worker {
            id,
            listener,
            qname: String::with_capacity(256),
            templates: FxHashMap::default(),
            by_value: FxHashMap::default(),
            generation: 0,
            sampled: super::sampled::Counters::default(),
        }
    }

    /// Answers one packet from `from`, writing the reply (if any) into
    /// `out`. The entry point tests drive without sockets.
    pub fn handle(
        &mut self,
        shared: &Shared,
        packet: &[u8],
        from: SocketAddr,
        tcp: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        match process(self, shared, packet, from, tcp, out) {
            Step::Done(sent) => sent,
            // Tests of the synchronous path do not configure upstreams.
            Step::Upstream(job) => match job.servfail(shared, tcp) {
                Some(b) => {
                    out.clear();
                    out.extend_from_slice(&b);
                    true
                }
                None => false,
            },
        }
    }
}

/// Writes `bytes` as the reply.
fn put(out: &mut Vec<u8>, bytes: Option<Vec<u8>>) -> Step {
    out.clear();
    match bytes {
        Some(b) => {
            out.extend_from_slice(&b);
            Step::Done(true)
        }
        None => Step::Done(false),
    }
}

pub(super) fn reply(
    shared: &Shared,
    r: Message,
    req: &Message,
    ecs: Option<(std::net::IpAddr, u8, u8)>,
    tcp: bool,
) -> Option<Vec<u8>> {
    shared.metrics.rcode(u16::from(r.metadata.response_code));
    answer::finish(r, req, ecs, tcp, shared.has_default, shared.nsid.as_deref())
}

/// One query, from the packet to the reply in `out`.
pub(super) fn process(
    w: &mut Worker,
    shared: &Shared,
    packet: &[u8],
    from: SocketAddr,
    tcp: bool,
    out: &mut Vec<u8>,
) -> Step {
    let m = shared.metrics.shard(w.id);
    // Never answer a response (reflection loops) or a runt.
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        m.malformed.fetch_add(1, Relaxed);
        return Step::Done(false);
    }
    // Who may ask, then how much: before anything is parsed.
    if !shared.acl.allows(from.ip()) {
        shared.access.acl_refused.fetch_add(1, Relaxed);
        m.rcode(u16::from(ResponseCode::Refused.low()));
        return put(
            out,
            wire::error_echo(packet, ResponseCode::Refused.low(), wire::MAX_UDP),
        );
    }
    let rate = match &shared.rate {
        None => 0,
        // TCP proves the source address: counted, never limited.
        Some(r) if tcp => r.peek(from.ip()),
        Some(r) => match r.admit(from.ip()) {
            Admit::Pass(n) => n,
            Admit::Drop => {
                shared.access.rate_dropped.fetch_add(1, Relaxed);
                return Step::Done(false);
            }
            Admit::Slip => {
                // An empty truncated answer: a real client retries over TCP.
                shared.access.rate_slipped.fetch_add(1, Relaxed);
                let mut b = wire::error_echo(packet, 0, wire::MAX_UDP);
                if let Some(b) = b.as_mut() {
                    b[2] |= 0x02;
                }
                return put(out, b);
            }
        },
    };
    let mut qname = std::mem::take(&mut w.qname);
    let parsed = if shared.fast_path {
        wire::parse(packet, &mut qname)
    } else {
        None
    };
    let step = match parsed {
        Some(q) => {
            let (ecs, ecs_ignored) = split_ecs(shared, q.edns.and_then(|e| e.ecs));
            let facts = QueryFacts {
                client: from.ip(),
                ecs,
                ecs_ignored,
                qname: &qname,
                qtype: q.qtype,
                qclass: class_name(q.qclass),
                transport: if tcp { "tcp" } else { "udp" },
                dnssec_ok: q.edns.is_some_and(|e| e.dnssec_ok),
                recursion_desired: q.rd,
                rate,
            };
            let mut req = Req::Lazy(packet);
            decide(w, shared, &facts, &mut req, Some((&q, packet)), tcp, out)
        }
        None => slow(w, shared, packet, from, tcp, rate, out),
    };
    w.qname = qname;
    step
}

/// The request as hickory-proto's `Message`, parsed only when needed.
enum Req<'p> {
    Lazy(&'p [u8]),
    Parsed(Message),
}

impl Req<'_> {
    fn get(&mut self) -> Option<&Message> {
        if let Req::Lazy(p) = self {
            *self = Req::Parsed(Message::from_vec(p).ok()?);
        }
        match self {
            Req::Parsed(m) => Some(m),
            Req::Lazy(_) => None,
        }
    }

    fn take(self) -> Option<Message> {
        match self {
            Req::Parsed(m) => Some(m),
            Req::Lazy(p) => Message::from_vec(p).ok(),
        }
    }
}

/// The slow path: hickory parses, and answers what is malformed.
fn slow(
    w: &mut Worker,
    shared: &Shared,
    packet: &[u8],
    from: SocketAddr,
    tcp: bool,
    rate: u32,
    out: &mut Vec<u8>,
) -> Step {
    let m = shared.metrics.shard(w.id);
    // An opcode we do not implement is NOTIMP whatever else the message
    // holds (RFC 1035 §4.1.1, RFC 6895 §2.2): checked before the counts.
    let opcode = (packet[2] >> 3) & 0x0F;
    if opcode != 0 {
        m.rcode(u16::from(ResponseCode::NotImp.low()));
        return put(
            out,
            wire::error_echo(packet, ResponseCode::NotImp.low(), wire::MAX_UDP),
        );
    }
    // Exactly one question: checked on the raw header first, so a packet
    // claiming 65 535 questions costs nothing to refuse.
    if packet[4..6] != [0, 1] {
        m.malformed.fetch_add(1, Relaxed);
        m.rcode(u16::from(ResponseCode::FormErr.low()));
        return put(out, answer::formerr_raw(packet));
    }
    let req = match Message::from_vec(packet) {
        Ok(r) => r,
        Err(_) => {
            // Whatever of the question and the OPT record can be read is
            // echoed (RFC 6891 §7), without the option that broke it.
            m.malformed.fetch_add(1, Relaxed);
            m.rcode(u16::from(ResponseCode::FormErr.low()));
            return put(
                out,
                wire::error_echo(packet, ResponseCode::FormErr.low(), wire::MAX_UDP),
            );
        }
    };
    if req.metadata.message_type != MessageType::Query {
        return Step::Done(false);
    }
    if let Err(rcode) = answer::precheck(&req) {
        let r = reply(shared, answer::error(&req, rcode), &req, None, tcp);
        return put(out, r);
    }
    // This server holds no TSIG keys: a signed query is answered NOTAUTH
    // with TSIG error BADKEY, unsigned (RFC 8945 §5.2).
    if let Some((key, tsig)) = answer::tsig_of(&req) {
        shared.access.tsig_badkey.fetch_add(1, Relaxed);
        tracing::debug!(client = %from, %key, "TSIG key unknown");
        let r = answer::badkey(&req, &key, &tsig);
        return put(out, reply(shared, r, &req, None, tcp));
    }
    // ECS lives in the OPT record: without one there is nothing to walk.
    let ecs_option = if req.edns.is_some() {
        crate::dns::ecs::query_ecs(packet)
    } else {
        Ok(None)
    };
    let ecs = match ecs_option {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!(client = %from, error = %e, "malformed client subnet");
            m.malformed.fetch_add(1, Relaxed);
            let r = reply(
                shared,
                answer::error(&req, ResponseCode::FormErr),
                &req,
                None,
                tcp,
            );
            return put(out, r);
        }
    };
    let Some(q) = req.queries.first() else {
        return Step::Done(false);
    };
    let ascii = q.name.to_lowercase().to_ascii();
    let qname = ascii.strip_suffix('.').unwrap_or(&ascii).to_string();
    let (ecs, ecs_ignored) = split_ecs(shared, ecs);
    let facts = QueryFacts {
        client: from.ip(),
        ecs,
        ecs_ignored,
        qname: &qname,
        qtype: u16::from(q.query_type),
        qclass: class_name(u16::from(q.query_class)),
        transport: if tcp { "tcp" } else { "udp" },
        dnssec_ok: req.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
        recursion_desired: req.metadata.recursion_desired,
        rate,
    };
    let mut req = Req::Parsed(req);
    decide(w, shared, &facts, &mut req, None, tcp, out)
}

/// ECS the policy may use, and ECS only echoed (a private address that
/// says nothing about where the client is, unless `ecs.private = "use"`).
fn split_ecs(shared: &Shared, ecs: Option<Ecs>) -> (Option<Ecs>, Option<Ecs>) {
    match ecs {
        Some(e) if shared.ecs_ignore_private && ecs_is_private(e.addr) => (None, Some(e)),
        other => (other, None),
    }
}

/// Whether a verdict does not apply here and the next plugin decides:
/// a value that names no pool, `truncate` over TCP, `pass`, an HTTP verdict.
fn skips(v: &Verdict, tcp: bool, shared: &Shared) -> bool {
    match v {
        Verdict::Value(Value::Str(s)) => !shared.upstreams.contains_key(&**s),
        Verdict::Value(_) | Verdict::Pass => true,
        Verdict::Truncate => tcp,
        Verdict::Route { .. } | Verdict::Respond { .. } | Verdict::Redirect { .. } => true,
        _ => false,
    }
}

/// Whether a verdict's response is the same for every query of one type:
/// it can become a [`Template`].
fn templatable(v: &Verdict) -> bool {
    matches!(
        v,
        Verdict::Answer { .. }
            | Verdict::Rewrite { .. }
            | Verdict::Nxdomain
            | Verdict::Nodata
            | Verdict::Refuse
            | Verdict::Servfail
            | Verdict::Truncate
    )
}

/// The chain decides; the answer is built.
fn decide(
    w: &mut Worker,
    shared: &Shared,
    facts: &QueryFacts<'_>,
    req: &mut Req<'_>,
    wire: Option<(&WireQuery, &[u8])>,
    tcp: bool,
    out: &mut Vec<u8>,
) -> Step {
    let m = shared.metrics.shard(w.id);
    let chain = shared.chain.load();
    if w.generation != chain.generation
        || w.templates.len() >= MAX_TEMPLATES
        || w.by_value.len() >= MAX_TEMPLATES
    {
        w.templates.clear();
        w.by_value.clear();
        w.generation = chain.generation;
    }
    let t0 = super::sampled::Sampled::of(shared, &mut w.sampled);
    let mut ctx =
        QueryCtx::new(facts, &shared.geo, &w.listener, &shared.node).with_pools(&shared.pools);
    if let Some(id) = w.id {
        ctx = ctx.on_worker(id);
    }
    let pools = |p: &str| shared.upstreams.contains_key(p);
    let mut start = 0;
    let built = loop {
        match chain.decide_from(start, &mut ctx) {
            Some((i, Decision::Records(records))) => {
                m.verdicts[verdict_index("answer")].fetch_add(1, Relaxed);
                super::sampled::note(shared, &chain, &ctx, t0, Some((i, None)), "records");
                let Some(r) = req.get() else {
                    return Step::Done(false);
                };
                break Built::Reply(answer::records(r, records));
            }
            Some((i, Decision::Decide { verdict, rule })) => {
                if skips(&verdict, tcp, shared) {
                    start = i + 1;
                    continue;
                }
                m.verdicts[verdict_index(verdict.action())].fetch_add(1, Relaxed);
                super::sampled::note(shared, &chain, &ctx, t0, Some((i, rule)), verdict.action());
                // An answer pool's members are picked now, among the healthy.
                let verdict = if let Verdict::Pool { .. } = &*verdict {
                    let picked = shared
                        .pools
                        .pick(&verdict, facts.qtype, &mut || ctx.client_place());
                    if let (Some(Picked::Addrs { rtype, ips, ttl }), Some((q, packet))) =
                        (&picked, wire)
                    {
                        // Written straight from the picks: nothing allocated.
                        let ecs = facts.ecs_echo(ctx.ecs_scope());
                        let f = finish(shared, q, ecs, tcp);
                        let it = ips.iter().copied();
                        if q.qclass == 1
                            && wire::write_ips(out, packet, q, *rtype, *ttl, ips.len(), it, f)
                        {
                            m.missing_reads.fetch_add(u64::from(ctx.missing()), Relaxed);
                            m.rcode(0);
                            return Step::Done(true);
                        }
                    }
                    // A pool the config does not have: counted, SERVFAIL.
                    Cow::Owned(picked.map_or(Verdict::Servfail, Picked::into_verdict))
                } else {
                    verdict
                };
                if let Some((q, packet)) = wire {
                    // Addresses answering their own type: written as they are.
                    if let Verdict::Answer { rtype, data, ttl } = &*verdict {
                        let ecs = facts.ecs_echo(ctx.ecs_scope());
                        let f = finish(shared, q, ecs, tcp);
                        if q.qclass == 1
                            && wire::write_addresses(out, packet, q, *rtype, *ttl, data, f)
                        {
                            m.missing_reads.fetch_add(u64::from(ctx.missing()), Relaxed);
                            m.rcode(0);
                            return Step::Done(true);
                        }
                    }
                    if templatable(&verdict) {
                        let in_zone = shared.zone.contains_name(facts.qname);
                        let question = (q.qtype, q.qclass, in_zone, tcp);
                        let key = match &verdict {
                            Cow::Borrowed(v) => Key::Static(
                                (
                                    std::ptr::from_ref::<Verdict>(v) as usize,
                                    q.qtype,
                                    q.qclass,
                                    in_zone,
                                    tcp,
                                ),
                                v,
                            ),
                            Cow::Owned(v) => {
                                use std::hash::{BuildHasher, Hash, Hasher};
                                let mut h = rustc_hash::FxBuildHasher.build_hasher();
                                v.hash(&mut h);
                                question.hash(&mut h);
                                Key::Value(h.finish(), v, question)
                            }
                        };
                        m.missing_reads.fetch_add(u64::from(ctx.missing()), Relaxed);
                        let ecs = facts.ecs_echo(ctx.ecs_scope());
                        return templated(w, shared, key, req, q, packet, ecs, tcp, out);
                    }
                }
                let Some(r) = req.get() else {
                    return Step::Done(false);
                };
                break answer::build(r, &verdict, &shared.zone, tcp, &pools);
            }
            _ => {
                // No plugin decided: the zone answers its own names, then
                // the default pool, else REFUSED.
                if shared.zone.contains_name(facts.qname) {
                    let Some(r) = req.get() else {
                        return Step::Done(false);
                    };
                    if let Some(b) = answer::from_zone(r, &shared.zone) {
                        m.verdicts[verdict_index("default_zone")].fetch_add(1, Relaxed);
                        super::sampled::note(shared, &chain, &ctx, t0, None, "default_zone");
                        break b;
                    }
                }
                if shared.has_default {
                    m.verdicts[verdict_index("default_forward")].fetch_add(1, Relaxed);
                    super::sampled::note(shared, &chain, &ctx, t0, None, "default_forward");
                    break Built::Forward("default".into());
                }
                m.verdicts[verdict_index("default_refuse")].fetch_add(1, Relaxed);
                super::sampled::note(shared, &chain, &ctx, t0, None, "default_refuse");
                if let Some((q, packet)) = wire {
                    m.missing_reads.fetch_add(u64::from(ctx.missing()), Relaxed);
                    let ecs = facts.ecs_echo(ctx.ecs_scope());
                    m.rcode(u16::from(ResponseCode::Refused.low()));
                    let t = Template::rcode(ResponseCode::Refused.low());
                    wire::write_response(out, packet, q, &t, finish(shared, q, ecs, tcp));
                    return Step::Done(true);
                }
                let Some(r) = req.get() else {
                    return Step::Done(false);
                };
                break Built::Reply(answer::error(r, ResponseCode::Refused));
            }
        }
    };
    m.missing_reads.fetch_add(u64::from(ctx.missing()), Relaxed);
    let ecs_echo = facts.ecs_echo(ctx.ecs_scope());
    drop(ctx);
    finish_built(
        shared,
        built,
        std::mem::replace(req, Req::Lazy(&[])),
        ecs_echo,
        tcp,
        out,
    )
}

fn finish(
    shared: &Shared,
    q: &WireQuery,
    ecs: Option<(std::net::IpAddr, u8, u8)>,
    tcp: bool,
) -> Finish {
    Finish {
        ra: shared.has_default,
        limit: if tcp {
            usize::from(u16::MAX)
        } else {
            wire::udp_limit(q)
        },
        ecs,
    }
}

/// A static verdict's answer: its template (made on the first query of
/// this kind) written for this query.
#[allow(clippy::too_many_arguments)]
fn templated(
    w: &mut Worker,
    shared: &Shared,
    key: Key<'_>,
    req: &mut Req<'_>,
    q: &WireQuery,
    packet: &[u8],
    ecs: Option<(std::net::IpAddr, u8, u8)>,
    tcp: bool,
    out: &mut Vec<u8>,
) -> Step {
    let m = shared.metrics.shard(w.id);
    let hit = match &key {
        Key::Static(k, _) => w.templates.get(k),
        Key::Value(h, v, question) => w.by_value.get(h).and_then(|bucket| {
            bucket
                .iter()
                .find(|(bv, bq, _)| bv == *v && bq == question)
                .map(|(_, _, t)| t)
        }),
    };
    if let Some(t) = hit {
        m.rcode(u16::from(t.rcode));
        wire::write_response(out, packet, q, t, finish(shared, q, ecs, tcp));
        return Step::Done(true);
    }
    let v: &Verdict = match &key {
        Key::Static(_, v) | Key::Value(_, v, _) => v,
    };
    let pools = |p: &str| shared.upstreams.contains_key(p);
    let Some(r) = req.get() else {
        return Step::Done(false);
    };
    let built = answer::build(r, v, &shared.zone, tcp, &pools);
    let template = match &built {
        Built::Reply(msg) => r
            .queries
            .first()
            .and_then(|qq| Template::from_message(msg, &qq.name)),
        // A rewrite leaving the zone with no pool to complete it: the
        // partial answer is the whole answer, the same every time.
        Built::ResolveOutside { partial, .. } if !shared.has_default => r
            .queries
            .first()
            .and_then(|qq| Template::from_message(partial, &qq.name)),
        _ => None,
    };
    match template {
        Some(t) => {
            m.rcode(u16::from(t.rcode));
            wire::write_response(out, packet, q, &t, finish(shared, q, ecs, tcp));
            match key {
                Key::Static(k, _) => {
                    w.templates.insert(k, t);
                }
                Key::Value(h, v, question) => {
                    w.by_value
                        .entry(h)
                        .or_default()
                        .push((v.clone(), question, t));
                }
            }
            Step::Done(true)
        }
        None => finish_built(
            shared,
            built,
            std::mem::replace(req, Req::Lazy(&[])),
            ecs,
            tcp,
            out,
        ),
    }
}

/// A response built on hickory's `Message` (or upstream work) to bytes.
fn finish_built(
    shared: &Shared,
    built: Built,
    req: Req<'_>,
    ecs_echo: Option<(std::net::IpAddr, u8, u8)>,
    tcp: bool,
    out: &mut Vec<u8>,
) -> Step {
    let m = &shared.metrics;
    let Some(req) = req.take() else {
        return Step::Done(false);
    };
    match built {
        Built::Reply(r) => put(out, reply(shared, r, &req, ecs_echo, tcp)),
        Built::Drop => {
            m.dropped.fetch_add(1, Relaxed);
            Step::Done(false)
        }
        Built::Forward(pool) => Step::Upstream(Box::new(Job {
            req,
            kind: JobKind::Forward(pool, ecs_echo),
        })),
        Built::ResolveOutside { partial, target } => {
            if shared.has_default {
                Step::Upstream(Box::new(Job {
                    req,
                    kind: JobKind::Resolve {
                        partial: Box::new(partial),
                        target,
                        ecs: ecs_echo,
                    },
                }))
            } else {
                put(out, reply(shared, partial, &req, ecs_echo, tcp))
            }
        }
        Built::Skip => Step::Done(false),
    }
}

pub(super) fn class_name(c: u16) -> &'static str {
    match c {
        1 => "IN",
        3 => "CH",
        4 => "HS",
        254 => "NONE",
        255 => "ANY",
        _ => "OTHER",
    }
}
