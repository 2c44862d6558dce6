//! The context of one query, as plugins see it: the wire facts, context
//! fields filled lazily (GeoIP only if a plugin reads it), what the
//! decision depended on (the honest ECS scope), and, for compiled
//! policies, the fields handed over without building any value.

use crate::dns::ecs::Ecs;
use crate::geo::{Geo, GeoInfo};
use dnspolicy_compiler::backend::interp::default_subnet;
use dnspolicy_compiler::backend::jit::{SlotSource, SlotValue};
use dnspolicy_compiler::{Cidr, Context, Field, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// The wire facts of a query the server extracted before asking plugins.
#[derive(Clone, Debug)]
pub struct QueryFacts<'a> {
    /// Source address.
    pub client: IpAddr,
    /// Validated ECS the policy may use, if the query had one.
    pub ecs: Option<Ecs>,
    /// Validated ECS the server does not use for client fields (a
    /// private or reserved address, `ecs.private = "ignore"`): echoed with
    /// scope 0, the source address stands for the client.
    pub ecs_ignored: Option<Ecs>,
    /// Question name, canonical (lowercase, no trailing dot; root is "").
    pub qname: &'a str,
    /// Question type.
    pub qtype: u16,
    /// Question class mnemonic (`IN`, `CH`, ...).
    pub qclass: &'static str,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// EDNS DO bit.
    pub dnssec_ok: bool,
    /// RD flag.
    pub recursion_desired: bool,
    /// UDP queries from the source's prefix this second (`{client.rate}`;
    /// 0 when no rate limit is configured).
    pub rate: u32,
}

impl QueryFacts<'_> {
    /// The ECS option to echo, given the scope the decision needed.
    pub fn ecs_echo(&self, scope: u8) -> Option<(IpAddr, u8, u8)> {
        match (self.ecs, self.ecs_ignored) {
            (Some(e), _) => Some((e.addr, e.source, scope)),
            (None, Some(e)) => Some((e.addr, e.source, 0)),
            (None, None) => None,
        }
    }
}

/// Whether ECS carrying `ip` says nothing about where a client is, so it
/// must not steer it (RFC 7871 §11.1, §12): private (RFC 1918), loopback,
/// link-local, shared address space (CGNAT, RFC 6598), unspecified, IPv6
/// unique-local and link-local, and their IPv4-mapped forms. The
/// documentation ranges are not in the list: examples use them.
pub fn ecs_is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || (o[0] == 100 && (o[1] & 0xC0) == 64)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return ecs_is_private(IpAddr::V4(v4));
            }
            let s0 = a.segments()[0];
            a.is_loopback()
                || a.is_unspecified()
                || (s0 & 0xfe00) == 0xfc00
                || (s0 & 0xffc0) == 0xfe80
        }
    }
}

/// Bits of the fields that depend on the client's address.
pub const CLIENT_FIELDS: u32 = (1 << Field::ClientIp as u32)
    | (1 << Field::ClientSubnet as u32)
    | (1 << Field::ClientCountry as u32)
    | (1 << Field::ClientRegion as u32)
    | (1 << Field::ClientCity as u32)
    | (1 << Field::ClientAsn as u32);

/// Bits of the GeoIP fields.
pub const GEO_FIELDS: u32 = (1 << Field::ClientCountry as u32)
    | (1 << Field::ClientRegion as u32)
    | (1 << Field::ClientCity as u32)
    | (1 << Field::ClientAsn as u32);

/// Per-query state shared by the plugins of the chain: the facts, lazily
/// computed context fields (GeoIP only if some plugin reads it), and what
/// the decision depended on.
pub struct QueryCtx<'a> {
    /// The query's facts.
    pub facts: &'a QueryFacts<'a>,
    geo: &'a Arc<Geo>,
    listener: &'a str,
    node: &'a str,
    ctx: Option<Context>,
    filled: u32,
    geo_info: Option<Arc<GeoInfo>>,
    fields_read: u32,
    missing: u32,
    worker: Option<usize>,
    now: Option<i64>,
    pools: Option<&'a crate::gslb::Pools>,
}

impl<'a> QueryCtx<'a> {
    /// A context for `facts`.
    pub fn new(
        facts: &'a QueryFacts<'a>,
        geo: &'a Arc<Geo>,
        listener: &'a str,
        node: &'a str,
    ) -> Self {
        QueryCtx {
            facts,
            geo,
            listener,
            node,
            ctx: None,
            filled: 0,
            geo_info: None,
            fields_read: 0,
            missing: 0,
            worker: None,
            now: None,
            pools: None,
        }
    }

    /// The same, with the server's answer pools: policies read
    /// `{pool.NAME.healthy}` from them.
    pub fn with_pools(mut self, pools: &'a crate::gslb::Pools) -> Self {
        self.pools = (!pools.is_empty()).then_some(pools);
        self
    }

    /// Where the client is, for `pick nearest`: GeoIP of the ECS address or
    /// the source (looked up once per query). The answer now depends on
    /// GeoIP, so the ECS scope becomes GeoIP's network.
    pub fn client_place(&mut self) -> crate::gslb::Place {
        self.note_fields_read(
            (1 << Field::ClientRegion as u32) | (1 << Field::ClientCountry as u32),
        );
        let g = self.geo_info();
        (g.degrees(), g.region.clone(), g.country.clone())
    }

    /// The same, on UDP worker `worker`: plugins keep per-worker state in
    /// its slot instead of a shared pool.
    pub fn on_worker(mut self, worker: usize) -> Self {
        self.worker = Some(worker);
        self
    }

    /// The UDP worker running this query, if any.
    pub fn worker(&self) -> Option<usize> {
        self.worker
    }

    /// The fields as a compiled policy reads them: straight from the facts,
    /// GeoIP looked up (and cached for the query) only when asked.
    pub fn slots(&mut self) -> Slots<'_, 'a> {
        Slots(self)
    }

    fn geo_info(&mut self) -> &GeoInfo {
        let ip = self.subject_ip();
        let geo = self.geo;
        self.geo_info.get_or_insert_with(|| geo.lookup(ip))
    }

    fn unix_now(&mut self) -> i64 {
        *self.now.get_or_insert_with(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        })
    }

    /// The address GeoIP and policies see: the ECS address if present.
    pub fn subject_ip(&self) -> IpAddr {
        self.facts.ecs.map_or(self.facts.client, |e| e.addr)
    }

    /// `client.subnet`: the ECS prefix, or the source's /24 or /56.
    pub fn subnet(&self) -> Cidr {
        match self.facts.ecs {
            Some(e) => Cidr::containing(e.addr, e.source),
            None => default_subnet(self.facts.client),
        }
    }

    /// Makes sure every field in `mask` is set in the policy context.
    pub fn fill(&mut self, mask: u32) {
        let todo = mask & !self.filled;
        if todo == 0 && (self.ctx.is_some() || self.pools.is_none()) {
            return;
        }
        let f = self.facts;
        let has = |field: Field| todo & (1 << field as u32) != 0;
        // Made on first use: compiled policies never need one.
        let mut ctx = match self.ctx.take() {
            Some(c) => c,
            None => {
                let mut c = Context::default();
                for p in self.pools.map_or(&[][..], |p| &p.pools) {
                    c.set_var(
                        &format!("pool.{}.healthy", p.name),
                        Value::Int(p.healthy() as i64),
                    );
                }
                c
            }
        };
        if has(Field::ClientIp) {
            ctx.set(Field::ClientIp, Value::Ip(f.client));
        }
        if has(Field::ClientSubnet) {
            ctx.set(Field::ClientSubnet, Value::Cidr(self.subnet()));
        }
        if todo & GEO_FIELDS != 0 {
            let ip = self.subject_ip();
            let g = self.geo_info.get_or_insert_with(|| self.geo.lookup(ip));
            ctx.set(Field::ClientCountry, Value::Str(g.country.clone()));
            ctx.set(Field::ClientRegion, Value::Str(g.region.clone()));
            ctx.set(Field::ClientCity, Value::Str(g.city.clone()));
            ctx.set(Field::ClientAsn, Value::Int(g.asn));
        }
        if has(Field::QueryName) {
            ctx.set(Field::QueryName, Value::Name(f.qname.into()));
        }
        if has(Field::QueryType) {
            ctx.set(Field::QueryType, Value::Qtype(f.qtype));
        }
        if has(Field::QueryClass) {
            ctx.set(Field::QueryClass, Value::Str(f.qclass.into()));
        }
        if has(Field::QueryTransport) {
            ctx.set(Field::QueryTransport, Value::Str(f.transport.into()));
        }
        if has(Field::QueryDnssecOk) {
            ctx.set(Field::QueryDnssecOk, Value::Bool(f.dnssec_ok));
        }
        if has(Field::QueryRecursionDesired) {
            ctx.set(
                Field::QueryRecursionDesired,
                Value::Bool(f.recursion_desired),
            );
        }
        if has(Field::ServerListener) {
            ctx.set(Field::ServerListener, Value::Str(self.listener.into()));
        }
        if has(Field::ServerNode) {
            ctx.set(Field::ServerNode, Value::Str(self.node.into()));
        }
        if has(Field::ClientRate) {
            ctx.set(Field::ClientRate, Value::Int(i64::from(f.rate)));
        }
        if todo
            & ((1 << Field::TimeHour as u32)
                | (1 << Field::TimeWeekday as u32)
                | (1 << Field::TimeUnix as u32))
            != 0
        {
            let now = self.unix_now();
            ctx.set_time(now);
        }
        self.ctx = Some(ctx);
        self.filled |= todo;
    }

    /// The GeoIP database itself, for plugins that look up other addresses.
    pub fn geo_db(&self) -> Arc<Geo> {
        self.geo.clone()
    }

    /// The policy context (call [`QueryCtx::fill`] first).
    pub fn policy_ctx(&self) -> &Context {
        static EMPTY: std::sync::OnceLock<Context> = std::sync::OnceLock::new();
        self.ctx
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Context::default))
    }

    /// The fields plugins read so far (bits of `Field`).
    pub fn fields_read(&self) -> u32 {
        self.fields_read
    }

    /// Records fields a plugin read (for the ECS scope).
    pub fn note_fields_read(&mut self, mask: u32) {
        self.fields_read |= mask;
    }

    /// Records reads of missing values.
    pub fn note_missing(&mut self, n: u32) {
        self.missing += n;
    }

    /// Reads of missing values so far.
    pub fn missing(&self) -> u32 {
        self.missing
    }

    /// The ECS SCOPE PREFIX-LENGTH that tells caches the truth about this
    /// answer: 0 if no plugin read anything about the client's address; if
    /// only GeoIP fields were read, the GeoIP network's length, which may be
    /// longer than the source prefix when the decision needed more than the
    /// client sent (RFC 7871 §7.2.1); otherwise the full source prefix.
    pub fn ecs_scope(&self) -> u8 {
        let Some(ecs) = self.facts.ecs else { return 0 };
        if self.fields_read & CLIENT_FIELDS == 0 {
            return 0;
        }
        if self.fields_read & CLIENT_FIELDS & !GEO_FIELDS == 0 {
            if let Some(len) = self.geo_info.as_ref().and_then(|g| g.prefix_len) {
                // GeoIP looks IPv4-mapped addresses up as IPv4; the scope is
                // echoed in the option's own (IPv6) family.
                let mapped = matches!(ecs.addr, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
                let len = if mapped { len.saturating_add(96) } else { len };
                return len;
            }
        }
        ecs.source
    }
}

/// A query's fields for compiled code ([`QueryCtx::slots`]).
pub struct Slots<'q, 'a>(&'q mut QueryCtx<'a>);

impl SlotSource for Slots<'_, '_> {
    fn field(&mut self, field: Field) -> Option<SlotValue<'_>> {
        let q = &mut *self.0;
        let f = q.facts;
        Some(match field {
            Field::ClientIp => SlotValue::Ip(f.client),
            Field::ClientSubnet => SlotValue::Cidr(q.subnet()),
            Field::ClientCountry => SlotValue::Str(&q.geo_info().country),
            Field::ClientRegion => SlotValue::Str(&q.geo_info().region),
            Field::ClientCity => SlotValue::Str(&q.geo_info().city),
            Field::ClientAsn => SlotValue::Int(q.geo_info().asn),
            Field::QueryName => SlotValue::Name(f.qname),
            Field::QueryType => SlotValue::Qtype(f.qtype),
            Field::QueryClass => SlotValue::Str(f.qclass),
            Field::QueryTransport => SlotValue::Str(f.transport),
            Field::QueryDnssecOk => SlotValue::Bool(f.dnssec_ok),
            Field::QueryRecursionDesired => SlotValue::Bool(f.recursion_desired),
            Field::ServerListener => SlotValue::Str(q.listener),
            Field::ServerNode => SlotValue::Str(q.node),
            Field::TimeUnix => SlotValue::Int(q.unix_now()),
            Field::ClientRate => SlotValue::Int(i64::from(f.rate)),
            Field::TimeHour => SlotValue::Int(q.unix_now().rem_euclid(86_400) / 3600),
            Field::TimeWeekday => {
                // 1970-01-01 was a Thursday (4 in ISO numbering).
                SlotValue::Int((q.unix_now().div_euclid(86_400) + 3).rem_euclid(7) + 1)
            }
        })
    }

    fn var(&mut self, path: &str) -> Option<SlotValue<'_>> {
        let name = path.strip_prefix("pool.")?.strip_suffix(".healthy")?;
        Some(SlotValue::Int(self.0.pools?.healthy(name)?))
    }

    fn context(&mut self) -> &Context {
        // Rules the JIT leaves to the interpreter read the whole context.
        self.0.fill(u32::MAX);
        self.0.policy_ctx()
    }
}
