//! The local zone: records in standard master-file format (RFC 1035), for
//! rewrite targets and static names. Parsed with hickory-proto's zone parser.

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
        let (origin, sets) = Parser::new(text, None, None)
            .parse()
            .map_err(|e| err(e.to_string()))?;
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
}
