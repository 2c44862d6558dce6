//! The local zone: records in standard master-file format (RFC 1035), for
//! rewrite targets and static names. Parsed with hickory-proto's zone parser.

use crate::dns::zone_text;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;
use std::collections::HashMap;

/// A zone failed to load.
#[derive(Debug, thiserror::Error)]
#[error("zone {name}: {reason}")]
pub struct ZoneError {
    /// The file (or "embedded").
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

/// What the zone says about a name and type.
#[derive(Debug, PartialEq)]
pub enum Lookup<'z> {
    /// Records of the asked type.
    Records(&'z [Record]),
    /// The name is an alias: its CNAME record.
    Cname(&'z Record),
    /// The name exists with other types only.
    NoData,
    /// The name does not exist in the zone.
    NxDomain,
    /// The name is outside the zone.
    NotInZone,
}

/// An authoritative zone held in memory.
#[derive(Debug, Default)]
pub struct Zone {
    origin: Option<LowerName>,
    /// The origin in the language's canonical text (no trailing dot).
    origin_text: Option<String>,
    records: HashMap<(LowerName, RecordType), Vec<Record>>,
    names: HashMap<LowerName, ()>,
    soa: Option<Record>,
}

impl Zone {
    /// An empty zone (no origin): every name is outside it.
    pub fn empty() -> Zone {
        Zone::default()
    }

    /// Parses a master file. `name` is used in errors.
    pub fn parse(text: &str, name: &str) -> Result<Zone, ZoneError> {
        let err = |reason: String| ZoneError {
            name: name.to_string(),
            reason,
        };
        // Without $ORIGIN, the SOA owner names the zone.
        let hint = if zone_text::has_origin(text) {
            None
        } else {
            Some(zone_text::origin_from_soa(text).map_err(err)?)
        };
        let (origin, sets) = Parser::new(text, None, hint.clone()).parse().map_err(|e| {
            let msg = e.to_string();
            match zone_text::error_line(text, hint.as_ref(), &msg) {
                Some(l) => ZoneError {
                    name: format!("{name}:{l}"),
                    reason: format!("{msg} (in `{}`)", zone_text::line_text(text, l)),
                },
                None => err(msg),
            }
        })?;
        let apex = LowerName::from(&origin);
        // A record outside the zone would never be served: refuse it.
        for key in sets.keys() {
            if !apex.zone_of(&key.name) {
                let owner = Name::from(key.name.clone());
                let at = zone_text::owner_line(text, &owner);
                return Err(ZoneError {
                    name: at.map_or_else(|| name.to_string(), |(l, _)| format!("{name}:{l}")),
                    reason: format!(
                        "record {owner} {} is outside the zone {origin}{}",
                        key.record_type,
                        at.map_or_else(String::new, |(_, t)| format!(" (in `{t}`)"))
                    ),
                });
            }
        }
        let text = origin.to_lowercase().to_ascii();
        let mut z = Zone {
            origin: Some(LowerName::from(&origin)),
            origin_text: Some(text.strip_suffix('.').unwrap_or(&text).to_string()),
            ..Zone::default()
        };
        for (key, set) in sets {
            let recs: Vec<Record> = set.records_without_rrsigs().cloned().collect();
            // The zone's own SOA, not a child's.
            if key.record_type == RecordType::SOA && key.name == LowerName::from(&origin) {
                z.soa = recs.first().cloned();
            }
            z.names.insert(key.name.clone(), ());
            // Empty non-terminals exist too (RFC 4592): a.b.example. makes b.example. exist.
            let mut parent = Name::from(key.name.clone());
            while parent.num_labels() > origin.num_labels() {
                parent = parent.base_name();
                z.names.insert(LowerName::from(&parent), ());
            }
            z.records.insert((key.name, key.record_type), recs);
        }
        if z.soa.is_none() {
            return Err(err("the zone has no SOA record".into()));
        }
        Ok(z)
    }

    /// The zone's origin, if any.
    pub fn origin(&self) -> Option<&LowerName> {
        self.origin.as_ref()
    }

    /// Whether a canonical name (lowercase, no trailing dot) is at or under
    /// the origin: a string test, for the query path.
    pub fn contains_name(&self, name: &str) -> bool {
        match self.origin_text.as_deref() {
            None => false,
            Some("") => true,
            Some(o) => {
                name == o
                    || (name.len() > o.len()
                        && name.ends_with(o)
                        && name.as_bytes()[name.len() - o.len() - 1] == b'.')
            }
        }
    }

    /// The SOA record (for negative answers).
    pub fn soa(&self) -> Option<&Record> {
        self.soa.as_ref()
    }

    /// Number of record sets.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the zone holds no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Looks a name and type up.
    pub fn lookup(&self, name: &LowerName, rtype: RecordType) -> Lookup<'_> {
        let Some(origin) = &self.origin else {
            return Lookup::NotInZone;
        };
        if !origin.zone_of(name) {
            return Lookup::NotInZone;
        }
        if let Some(recs) = self.records.get(&(name.clone(), rtype)) {
            return Lookup::Records(recs);
        }
        if rtype != RecordType::CNAME {
            if let Some(c) = self
                .records
                .get(&(name.clone(), RecordType::CNAME))
                .and_then(|v| v.first())
            {
                return Lookup::Cname(c);
            }
        }
        if self.names.contains_key(name) {
            Lookup::NoData
        } else {
            Lookup::NxDomain
        }
    }
}

/// The target of a CNAME record, if `r` is one.
pub fn cname_target(r: &Record) -> Option<&Name> {
    match &r.data {
        RData::CNAME(c) => Some(&c.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "$ORIGIN example.com.\n$TTL 300\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\nns1 A 192.0.2.1\ncdn-bj A 192.0.2.10\nalias CNAME cdn-bj\nx.deep A 192.0.2.99\n";

    fn name(s: &str) -> LowerName {
        LowerName::from(Name::from_ascii(s).expect("name"))
    }

    #[test]
    fn lookups() {
        let z = Zone::parse(ZONE, "t").expect("zone parses");
        assert!(
            matches!(z.lookup(&name("CDN-BJ.example.com."), RecordType::A), Lookup::Records(r) if r.len() == 1)
        );
        assert_eq!(
            z.lookup(&name("cdn-bj.example.com."), RecordType::AAAA),
            Lookup::NoData
        );
        assert!(matches!(
            z.lookup(&name("alias.example.com."), RecordType::A),
            Lookup::Cname(_)
        ));
        assert_eq!(
            z.lookup(&name("nope.example.com."), RecordType::A),
            Lookup::NxDomain
        );
        assert_eq!(
            z.lookup(&name("deep.example.com."), RecordType::A),
            Lookup::NoData
        );
        assert_eq!(
            z.lookup(&name("example.org."), RecordType::A),
            Lookup::NotInZone
        );
        assert!(z.soa().is_some());
        assert!(z.contains_name("example.com"));
        assert!(z.contains_name("a.b.example.com"));
        assert!(!z.contains_name("badexample.com"));
        assert!(!z.contains_name("example.org"));
    }

    #[test]
    fn errors() {
        assert!(Zone::parse("$ORIGIN x.\n@ A 1.2.3.4\n", "t").is_err());
        assert!(Zone::parse("$ORIGIN x.\n@ SOA a b c\n", "t").is_err());
    }

    fn error_of(text: &str) -> String {
        Zone::parse(text, "z.zone")
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn errors_name_the_line_and_token() {
        let bad_type = format!("{ZONE}www A 192.0.2.7\nwww AAA 2001:db8::1\nlast A 192.0.2.8\n");
        let e = error_of(&bad_type);
        assert!(e.starts_with("zone z.zone:10: "), "{e}");
        assert!(
            e.contains("AAA") && e.contains("(in `www AAA 2001:db8::1`)"),
            "{e}"
        );

        let unclosed = format!("{ZONE}mail MX (10\n  mx1\nlast A 192.0.2.8\n");
        let e = error_of(&unclosed);
        assert!(e.starts_with("zone z.zone:9: "), "{e}");

        let e = error_of(&format!("{ZONE}www.example.org. A 192.0.2.9\n"));
        assert!(e.starts_with("zone z.zone:9: "), "{e}");
        assert!(e.contains("outside the zone example.com."), "{e}");
    }

    #[test]
    fn origin_from_the_soa_owner() {
        let z = Zone::parse(
            "$TTL 60\nexample.net. SOA ns1.example.net. h.example.net. 1 2 3 4 5\nwww.example.net. A 192.0.2.1\n",
            "t",
        )
        .expect("origin from the SOA owner");
        assert!(z.contains_name("www.example.net"));
        let e = error_of("$TTL 60\n@ SOA ns1 h 1 2 3 4 5\nwww A 192.0.2.1\n");
        assert!(e.contains("line 2") && e.contains("$ORIGIN"), "{e}");
        let e = error_of("$TTL 60\nwww A 192.0.2.1\n");
        assert!(e.contains("neither $ORIGIN nor an SOA"), "{e}");
    }
}
