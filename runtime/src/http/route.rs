//! What a request gets from the chain's HTTP policies, shared by the two
//! ways a request comes in: the HTTP/1 fast path (`h1`) and hyper's
//! (`proxy`: HTTP/2, request bodies, upgrades). Each reads the request in
//! its own form through [`RequestParts`]; the decision is made here once.

use super::HttpState;
use crate::server::Shared;
use dnspolicy_compiler::backend::interp::default_subnet;
use dnspolicy_compiler::ir::http::RequestParts;
use dnspolicy_compiler::{Context, Field, Value, Verdict};
use hyper::header::HeaderValue;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A connection's client as the forwarding headers write it, made once per
/// connection rather than per request.
pub(super) struct Peer {
    /// The connection's peer.
    pub addr: SocketAddr,
    /// The address as text.
    pub ip: String,
    /// `X-Forwarded-For` when the request has none.
    pub xff: HeaderValue,
    /// `Forwarded`'s `for=` value (IPv6 quoted, in brackets: RFC 7239 §6).
    pub for_: String,
    /// Whether the peer is a trusted proxy (its `X-Forwarded-*` believed).
    pub trusted: bool,
}

impl Peer {
    pub(super) fn new(addr: SocketAddr, http: &HttpState) -> Peer {
        let ip = addr.ip().to_string();
        let for_ = match addr.ip() {
            IpAddr::V6(_) => format!("\"[{ip}]\""),
            IpAddr::V4(_) => ip.clone(),
        };
        let xff =
            HeaderValue::from_str(&ip).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Peer {
            addr,
            trusted: http.trusts(addr.ip().to_canonical()),
            ip,
            xff,
            for_,
        }
    }
}

/// The client: the connection's peer, or from a trusted proxy the last
/// address in `X-Forwarded-For` (its field values, in order) that is not
/// itself a trusted proxy.
pub(super) fn client_ip<'a>(
    http: &HttpState,
    xff: impl Iterator<Item = &'a str>,
    peer: &Peer,
) -> IpAddr {
    let ip = peer.addr.ip().to_canonical();
    if !peer.trusted {
        return ip;
    }
    let hops: Vec<&str> = xff.flat_map(|v| v.split(',')).collect();
    // From the nearest hop back; an entry that is not an address stops the
    // walk (what lies before it was written by someone unknown).
    for hop in hops.iter().rev() {
        let Ok(hop) = hop.trim().parse::<IpAddr>() else {
            return ip;
        };
        let hop = hop.to_canonical();
        if !http.trusts(hop) {
            return hop;
        }
    }
    ip
}

/// The verdict for one request: the first HTTP policy that decides (a
/// route, a local answer or a redirect), else the default pool; `None`
/// when neither applies (the caller answers 404). Counts the deciding
/// policy and rule.
pub(super) fn decide(
    shared: &Shared,
    http: &HttpState,
    view: &dyn RequestParts,
    client: IpAddr,
) -> Option<Verdict> {
    let chain = shared.chain.load();
    let reads = chain
        .plugins
        .iter()
        .filter(|p| p.http)
        .fold(0u32, |a, p| a | p.plugin.fields_used());
    let geo_fields = [
        Field::ClientCountry,
        Field::ClientRegion,
        Field::ClientCity,
        Field::ClientAsn,
    ];
    let mut base = Context::default();
    base.set(Field::ClientIp, Value::Ip(client));
    base.set(Field::ClientSubnet, Value::Cidr(default_subnet(client)));
    // GeoIP only for policies that read it.
    if !shared.geo.is_empty() && geo_fields.iter().any(|f| reads & (1 << *f as u32) != 0) {
        let g = shared.geo.lookup(client);
        base.set(Field::ClientCountry, Value::Str(g.country.clone()));
        base.set(Field::ClientRegion, Value::Str(g.region.clone()));
        base.set(Field::ClientCity, Value::Str(g.city.clone()));
        base.set(Field::ClientAsn, Value::Int(g.asn));
    }
    let node = http
        .node
        .get_or_init(|| Value::Str(shared.node.as_str().into()));
    base.set(Field::ServerNode, node.clone());
    base.set_time(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    );
    for p in chain.plugins.iter().filter(|p| p.http) {
        let Some((verdict, rule)) = p.plugin.decide_http(view, &mut base, &http.bindings) else {
            continue;
        };
        // A value names a pool, or does not apply here (the next policy decides).
        let verdict = match verdict {
            Verdict::Value(Value::Str(s)) if http.pools.contains_key(&*s) => Verdict::Route {
                pool: s.as_ref().into(),
                headers: Arc::from([]),
            },
            v @ (Verdict::Route { .. } | Verdict::Respond { .. } | Verdict::Redirect { .. }) => v,
            _ => continue,
        };
        p.stats.count(rule);
        return Some(verdict);
    }
    http.config.default_pool.as_ref().map(|d| Verdict::Route {
        pool: d.as_str().into(),
        headers: Arc::from([]),
    })
}

/// Every value of one header field joined as `RequestParts::header`
/// reads them: with `", "` (`"; "` for `cookie`), borrowed when there is one.
pub(super) fn join_fields<'a>(
    lower_name: &str,
    mut values: impl Iterator<Item = &'a str>,
) -> Option<std::borrow::Cow<'a, str>> {
    let first = values.next()?;
    let sep = if lower_name == "cookie" { "; " } else { ", " };
    let mut joined: Option<String> = None;
    for v in values {
        let j = joined.get_or_insert_with(|| first.to_string());
        j.push_str(sep);
        j.push_str(v);
    }
    Some(joined.map_or(std::borrow::Cow::Borrowed(first), std::borrow::Cow::Owned))
}

/// Whether `b` is a header value hyper's `to_str` reads (visible ASCII,
/// space and tab): the policies see the same values on either path.
pub(super) fn visible(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b'\t' || (b' '..=b'~').contains(&c))
}
