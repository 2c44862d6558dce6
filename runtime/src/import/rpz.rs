//! `dnspolicy import rpz`: Response Policy Zones (the ISC RPZ format that
//! BIND, Unbound, Knot and PowerDNS read) as a dnspolicy policy.
//!
//! Triggers: QNAME (exact `name.ZONE`, wildcard `*.name.ZONE`) and
//! CLIENT-IP (`LEN.reversed-address.rpz-client-ip.ZONE`). Actions: NXDOMAIN
//! (`CNAME .`), NODATA (`CNAME *.`), PASSTHRU (`CNAME rpz-passthru.`),
//! DROP (`CNAME rpz-drop.`), TCP-only (`CNAME rpz-tcp-only.`) and local data
//! (any other records: answered for their type, NODATA for other types; a
//! plain CNAME is a rewrite). Response-IP, NSDNAME and NSIP triggers, and
//! wildcard CNAME targets, cannot be expressed: each is a warning naming
//! the owner, never dropped silently.
//!
//! Precedence maps onto rule priorities: zones in the order given (the
//! first wins), then within a zone CLIENT-IP before QNAME, a longer client
//! prefix before a shorter one, an exact name before wildcards, and a
//! longer wildcard before a shorter one. Triggers with the same action are
//! grouped into one set per precedence step, so a feed of a million names
//! becomes a handful of rules served through the name index.

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a trigger does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Act {
    Nxdomain,
    Nodata,
    Passthru,
    Drop,
    TcpOnly,
}

impl Act {
    fn word(&self) -> &'static str {
        match self {
            Act::Nxdomain => "nxdomain",
            Act::Nodata => "nodata",
            Act::Passthru => "passthru",
            Act::Drop => "drop",
            Act::TcpOnly => "tcp_only",
        }
    }

    fn body(&self) -> &'static str {
        match self {
            Act::Nxdomain => "then nxdomain",
            Act::Nodata => "then nodata",
            Act::Passthru => "then pass",
            Act::Drop => "then drop",
            Act::TcpOnly => "if {query.transport} == \"udp\" { then truncate }\n    then pass",
        }
    }
}

/// One zone's triggers.
#[derive(Default)]
struct Zone {
    origin: String,
    /// (action, exact?) → names; wildcards keyed by depth too.
    names: BTreeMap<(Act, u32), Vec<String>>,
    clients: BTreeMap<(Act, u8), Vec<String>>,
    /// Local data: owner (as written in a set: `x` or `*.x`) → records.
    local: Vec<(String, Vec<Record>)>,
    triggers: usize,
}

/// The result of an import.
#[derive(Debug)]
pub struct Imported {
    /// The policy text.
    pub policy: String,
    /// Triggers and actions that could not be expressed, one line each.
    pub warnings: Vec<String>,
    /// Triggers imported.
    pub triggers: usize,
}

/// Depth in the precedence of an exact QNAME trigger (above any wildcard).
const EXACT: u32 = u32::MAX;

/// Converts RPZ zone files (text, and a name for messages), in precedence
/// order, into one policy.
pub fn import(zones: &[(String, String)]) -> Result<Imported, String> {
    let mut warnings = Vec::new();
    let mut parsed = Vec::new();
    for (name, text) in zones {
        parsed.push(zone(name, text, &mut warnings)?);
    }
    let total: usize = parsed.iter().map(|z| z.triggers).sum();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported by `dnspolicy import rpz` from {} zone(s), {total} trigger(s).",
        zones.len()
    );
    let _ = writeln!(
        out,
        "# Precedence: zones in the order given; in a zone, CLIENT-IP before QNAME,\n\
         # longer client prefixes first, exact names before wildcards, longer\n\
         # wildcards before shorter ones."
    );
    for w in &warnings {
        let _ = writeln!(out, "# not imported: {w}");
    }
    let n = parsed.len() as i64;
    for (zi, z) in parsed.iter().enumerate() {
        let tag = format!("z{}", zi + 1);
        let base = (n - zi as i64) * 1_000_000;
        let _ = writeln!(out, "\n# zone {} ({})", zi + 1, z.origin);
        for ((act, len), nets) in z.clients.iter().rev() {
            let set = format!("{tag}_client_{}_{len}", act.word());
            let _ = writeln!(out, "set {set} = [{}]", nets.join(", "));
            let _ = writeln!(
                out,
                "rule {set} priority {} {{\n    if {{client.ip}} in {set} {{\n        {}\n    }}\n}}",
                base + 900_000 + i64::from(*len),
                act.body().replace('\n', "\n        ")
            );
        }
        for ((act, depth), names) in z.names.iter() {
            let (kind, prio) = if *depth == EXACT {
                ("exact".to_string(), base + 800_000)
            } else {
                (format!("wild_{depth}"), base + 700_000 + i64::from(*depth))
            };
            let set = format!("{tag}_{}_{kind}", act.word());
            let quoted: Vec<String> = names.iter().map(|s| format!("\"{s}\"")).collect();
            let _ = writeln!(out, "set {set} = [{}]", quoted.join(", "));
            let _ = writeln!(
                out,
                "rule {set} priority {prio} when {{query.name}} in {set} {{\n    {}\n}}",
                act.body()
            );
        }
        for (i, (owner, records)) in z.local.iter().enumerate() {
            let (prio, when) = match owner.strip_prefix("*.") {
                Some(base_name) => {
                    let set = format!("{tag}_local_{}_names", i + 1);
                    let _ = writeln!(out, "set {set} = [\"{owner}\"]");
                    let depth = base_name.split('.').count() as i64;
                    (base + 700_000 + depth, format!("{{query.name}} in {set}"))
                }
                None => (base + 800_000, format!("{{query.name}} == \"{owner}\"")),
            };
            let _ = writeln!(
                out,
                "rule {tag}_local_{} priority {prio} when {when} {{\n{}}}",
                i + 1,
                local_body(records)
            );
        }
    }
    Ok(Imported {
        policy: out,
        warnings,
        triggers: total,
    })
}

/// The body answering with local data: the records of the asked type, a
/// plain CNAME as a rewrite, NODATA for any other type.
fn local_body(records: &[Record]) -> String {
    let mut by_type: BTreeMap<u16, (Vec<String>, u32)> = BTreeMap::new();
    let mut body = String::new();
    for r in records {
        if let RData::CNAME(c) = &r.data {
            let t = c.0.to_ascii();
            let _ = writeln!(
                body,
                "    then rewrite \"{}\" ttl {}",
                t.trim_end_matches('.'),
                r.ttl
            );
            return body;
        }
        let t = u16::from(r.record_type());
        let data = match &r.data {
            RData::A(a) => a.0.to_string(),
            RData::AAAA(a) => a.0.to_string(),
            RData::TXT(txt) => {
                let s: Vec<String> = txt
                    .txt_data
                    .iter()
                    .map(|d| String::from_utf8_lossy(d).into_owned())
                    .collect();
                format!(
                    "\"{}\"",
                    s.concat().replace('\\', "\\\\").replace('"', "\\\"")
                )
            }
            other => format!(
                "\"{}\"",
                other.to_string().replace('\\', "\\\\").replace('"', "\\\"")
            ),
        };
        let e = by_type.entry(t).or_insert_with(|| (Vec::new(), r.ttl));
        e.0.push(data);
        e.1 = e.1.min(r.ttl);
    }
    for (t, (data, ttl)) in by_type {
        let mnemonic = RecordType::from(t).to_string();
        let _ = writeln!(
            body,
            "    if {{query.type}} == {mnemonic} {{ then answer {mnemonic} {} ttl {ttl} }}",
            data.join(", ")
        );
    }
    body.push_str("    then nodata\n");
    body
}

/// Reads one RPZ zone.
fn zone(name: &str, text: &str, warnings: &mut Vec<String>) -> Result<Zone, String> {
    let hint = if crate::dns::zone_text::has_origin(text) {
        None
    } else {
        Some(crate::dns::zone_text::origin_from_soa(text).map_err(|e| format!("{name}: {e}"))?)
    };
    let (origin, sets) = Parser::new(text, None, hint)
        .parse()
        .map_err(|e| format!("{name}: {e}"))?;
    let apex = LowerName::from(&origin);
    let mut z = Zone {
        origin: origin.to_ascii(),
        ..Zone::default()
    };
    // Owner → its records (all types), apex excluded.
    let mut owners: BTreeMap<LowerName, Vec<Record>> = BTreeMap::new();
    for (key, set) in sets {
        if key.name == apex {
            continue;
        }
        owners
            .entry(key.name.clone())
            .or_default()
            .extend(set.records_without_rrsigs().cloned());
    }
    let zone_labels = origin.iter().count();
    for (owner, records) in owners {
        let full = Name::from(owner.clone());
        // The owner's labels below the zone apex, leftmost first.
        // (`num_labels` leaves a leading `*` out: count the labels.)
        let all: Vec<String> = full
            .iter()
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .collect();
        let rel = all[..all.len().saturating_sub(zone_labels)].to_vec();
        let shown = full.to_ascii();
        if rel.is_empty() {
            continue;
        }
        let last = rel.last().map(String::as_str).unwrap_or("");
        match last {
            "rpz-ip" | "rpz-nsdname" | "rpz-nsip" => {
                warnings.push(format!("{shown}: {last} triggers are not supported"));
                continue;
            }
            _ => {}
        }
        let action = action_of(&records);
        if last == "rpz-client-ip" {
            let Some(net) = client_net(&rel[..rel.len() - 1]) else {
                warnings.push(format!("{shown}: not a valid CLIENT-IP trigger"));
                continue;
            };
            match action {
                Ok(Some(a)) => {
                    let len = net.1;
                    z.clients
                        .entry((a, len))
                        .or_default()
                        .push(format!("{}/{}", net.0, net.1));
                    z.triggers += 1;
                }
                _ => warnings.push(format!(
                    "{shown}: CLIENT-IP with local data is not supported"
                )),
            }
            continue;
        }
        let wildcard = rel[0] == "*";
        let base = if wildcard { &rel[1..] } else { &rel[..] };
        if base.is_empty()
            || base
                .iter()
                .any(|l| l.is_empty() || l.contains(['"', '\\', ' ']))
        {
            warnings.push(format!("{shown}: not a QNAME trigger this policy can name"));
            continue;
        }
        let qname = base.join(".");
        let written = if wildcard {
            format!("*.{qname}")
        } else {
            qname
        };
        match action {
            Ok(Some(a)) => {
                let depth = if wildcard { base.len() as u32 } else { EXACT };
                z.names.entry((a, depth)).or_default().push(written);
                z.triggers += 1;
            }
            Ok(None) => {
                z.local.push((written, records));
                z.triggers += 1;
            }
            Err(why) => warnings.push(format!("{shown}: {why}")),
        }
    }
    Ok(z)
}

/// The special action of an owner's records; `Ok(None)`: local data.
fn action_of(records: &[Record]) -> Result<Option<Act>, String> {
    let cnames: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.data {
            RData::CNAME(c) => Some(c.0.to_ascii().to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let Some(t) = cnames.first() else {
        return Ok(None);
    };
    Ok(Some(match t.as_str() {
        "." => Act::Nxdomain,
        "*." => Act::Nodata,
        "rpz-passthru." => Act::Passthru,
        "rpz-drop." => Act::Drop,
        "rpz-tcp-only." => Act::TcpOnly,
        t if t.starts_with("*.") => {
            return Err(format!("CNAME {t} (a wildcard target) is not supported"));
        }
        _ => return Ok(None),
    }))
}

/// `LEN.reversed-labels` of a CLIENT-IP trigger (labels leftmost first,
/// without `rpz-client-ip`): the network and its prefix length.
fn client_net(labels: &[String]) -> Option<(IpAddr, u8)> {
    let (len, rest) = labels.split_first()?;
    let len: u8 = len.parse().ok()?;
    if rest.len() == 4 && rest.iter().all(|l| l.parse::<u8>().is_ok()) {
        let o: Vec<u8> = rest.iter().rev().filter_map(|l| l.parse().ok()).collect();
        let ip = Ipv4Addr::new(o[0], o[1], o[2], o[3]);
        if len > 32 || (len < 32 && u32::from(ip) & (u32::MAX >> len) != 0) {
            return None;
        }
        return Some((IpAddr::V4(ip), len));
    }
    // IPv6: reversed 16-bit groups, `zz` standing for the `::` run.
    let groups: Vec<&str> = rest.iter().rev().map(String::as_str).collect();
    let text = groups.join(":").replace("zz", "");
    let text = if text.starts_with(':') && !text.starts_with("::") {
        format!(":{text}")
    } else {
        text
    };
    let text = if text.ends_with(':') && !text.ends_with("::") {
        format!("{text}:")
    } else {
        text
    };
    let ip: Ipv6Addr = text.parse().ok()?;
    if len > 128 || (len < 128 && u128::from(ip) & (u128::MAX >> len) != 0) {
        return None;
    }
    Some((IpAddr::V6(ip), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ip_triggers() {
        let l = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            client_net(&l("32.1.2.0.192")),
            Some(("192.0.2.1".parse().expect("ip"), 32))
        );
        assert_eq!(
            client_net(&l("24.0.2.0.192")),
            Some(("192.0.2.0".parse().expect("ip"), 24))
        );
        assert_eq!(client_net(&l("24.1.2.0.192")), None, "host bits set");
        assert_eq!(
            client_net(&l("48.zz.db8.2001")),
            Some(("2001:db8::".parse().expect("ip"), 48))
        );
        assert_eq!(
            client_net(&l("128.1.zz.db8.2001")),
            Some(("2001:db8::1".parse().expect("ip"), 128))
        );
    }
}

#[cfg(test)]
mod precedence {
    use super::*;
    use dnspolicy_compiler::{check, Context, Field, Value};

    fn zone(body: &str) -> String {
        format!("$ORIGIN rpz.test.\n$TTL 60\n@ SOA localhost. h.localhost. 1 3600 600 86400 60\n  NS localhost.\n{body}")
    }

    fn decide(policy: &str, name: &str, client: &str) -> String {
        let p = check(policy).policy.expect("the import checks");
        let mut ctx = Context::default();
        ctx.set(Field::QueryName, Value::Name(name.into()));
        ctx.set(Field::QueryType, Value::Qtype(1));
        ctx.set(Field::QueryTransport, Value::Str("udp".into()));
        ctx.set(Field::ClientIp, Value::Ip(client.parse().expect("ip")));
        p.eval(&ctx)
            .verdict
            .map_or("none".into(), |v| v.to_json().to_string())
    }

    #[test]
    fn first_zone_wins_then_client_ip_exact_and_longer_wildcards() {
        let first = zone("x.example CNAME rpz-passthru.\n*.deep.example CNAME *.\n");
        let second = zone(
            "x.example CNAME .\n*.example CNAME .\n24.0.2.0.192.rpz-client-ip CNAME rpz-drop.\n\
             25.0.2.0.192.rpz-client-ip CNAME .\n",
        );
        let i = import(&[("first".into(), first), ("second".into(), second)]).expect("imports");
        let p = &i.policy;
        assert_eq!(
            decide(p, "x.example", "198.51.100.1"),
            r#"{"action":"pass"}"#,
            "the first zone's passthru wins"
        );
        assert_eq!(
            decide(p, "a.deep.example", "198.51.100.1"),
            r#"{"action":"nodata"}"#
        );
        assert_eq!(
            decide(p, "b.example", "198.51.100.1"),
            r#"{"action":"nxdomain"}"#,
            "second zone's wildcard"
        );
        assert_eq!(
            decide(p, "example", "198.51.100.1"),
            "none",
            "a wildcard is not its own base"
        );
        // In the second zone, CLIENT-IP beats QNAME and /25 beats /24.
        assert_eq!(
            decide(p, "b.example", "192.0.2.1"),
            r#"{"action":"nxdomain"}"#
        );
        assert_eq!(
            decide(p, "b.example", "192.0.2.200"),
            r#"{"action":"drop"}"#
        );
        // The first zone still wins over the second zone's CLIENT-IP.
        assert_eq!(
            decide(p, "x.example", "192.0.2.200"),
            r#"{"action":"pass"}"#
        );
    }
}
