//! The context of one query, as plugins see it.

use crate::dns::ecs::Ecs;
use crate::geo::{Geo, GeoInfo};
use dnspolicy_compiler::backend::interp::default_subnet;
use dnspolicy_compiler::{Cidr, Context, Field, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// The wire facts of a query the server extracted before asking plugins.
#[derive(Clone, Debug)]
pub struct QueryFacts {
    /// Source address.
    pub client: IpAddr,
    /// Validated ECS, if the query had one.
    pub ecs: Option<Ecs>,
    /// Question name, canonical (lowercase, no trailing dot; root is "").
    pub qname: Arc<str>,
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
    pub facts: &'a QueryFacts,
    geo: &'a Arc<Geo>,
    listener: &'a str,
    node: &'a str,
    ctx: Context,
    filled: u32,
    geo_info: Option<Arc<GeoInfo>>,
    fields_read: u32,
    missing: u32,
}

impl<'a> QueryCtx<'a> {
    /// A context for `facts`.
    pub fn new(facts: &'a QueryFacts, geo: &'a Arc<Geo>, listener: &'a str, node: &'a str) -> Self {
        QueryCtx {
            facts,
            geo,
            listener,
            node,
            ctx: Context::default(),
            filled: 0,
            geo_info: None,
            fields_read: 0,
            missing: 0,
        }
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
        if todo == 0 {
            return;
        }
        let f = self.facts;
        let has = |field: Field| todo & (1 << field as u32) != 0;
        if has(Field::ClientIp) {
            self.ctx.set(Field::ClientIp, Value::Ip(f.client));
        }
        if has(Field::ClientSubnet) {
            self.ctx
                .set(Field::ClientSubnet, Value::Cidr(self.subnet()));
        }
        if todo & GEO_FIELDS != 0 {
            let ip = self.subject_ip();
            let g = self.geo_info.get_or_insert_with(|| self.geo.lookup(ip));
            self.ctx
                .set(Field::ClientCountry, Value::Str(g.country.clone()));
            self.ctx
                .set(Field::ClientRegion, Value::Str(g.region.clone()));
            self.ctx.set(Field::ClientCity, Value::Str(g.city.clone()));
            self.ctx.set(Field::ClientAsn, Value::Int(g.asn));
        }
        if has(Field::QueryName) {
            self.ctx.set(Field::QueryName, Value::Name(f.qname.clone()));
        }
        if has(Field::QueryType) {
            self.ctx.set(Field::QueryType, Value::Qtype(f.qtype));
        }
        if has(Field::QueryClass) {
            self.ctx.set(Field::QueryClass, Value::Str(f.qclass.into()));
        }
        if has(Field::QueryTransport) {
            self.ctx
                .set(Field::QueryTransport, Value::Str(f.transport.into()));
        }
        if has(Field::QueryDnssecOk) {
            self.ctx.set(Field::QueryDnssecOk, Value::Bool(f.dnssec_ok));
        }
        if has(Field::QueryRecursionDesired) {
            self.ctx.set(
                Field::QueryRecursionDesired,
                Value::Bool(f.recursion_desired),
            );
        }
        if has(Field::ServerListener) {
            self.ctx
                .set(Field::ServerListener, Value::Str(self.listener.into()));
        }
        if has(Field::ServerNode) {
            self.ctx
                .set(Field::ServerNode, Value::Str(self.node.into()));
        }
        if todo
            & ((1 << Field::TimeHour as u32)
                | (1 << Field::TimeWeekday as u32)
                | (1 << Field::TimeUnix as u32))
            != 0
        {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            self.ctx.set_time(now);
        }
        self.filled |= todo;
    }

    /// The GeoIP database itself, for plugins that look up other addresses.
    pub fn geo_db(&self) -> Arc<Geo> {
        self.geo.clone()
    }

    /// The policy context (call [`QueryCtx::fill`] first).
    pub fn policy_ctx(&self) -> &Context {
        &self.ctx
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
    /// only GeoIP fields were read, the GeoIP network's length (capped at
    /// the source prefix); otherwise the full source prefix.
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
                return len.min(ecs.source);
            }
        }
        ecs.source
    }
}
