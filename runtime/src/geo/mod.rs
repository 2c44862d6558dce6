//! GeoIP: client address → country, region (ISO 3166-2, `CN-BJ`), city,
//! ASN, and the length of the network the answer holds for (what the ECS
//! scope prefix reports). Sources: MaxMind DB files (memory-mapped,
//! verified at load) and operators' own CSV tables (`cidr,country,region`).
//! Several sources can be stacked; the first to know a field wins.
//!
//! Depends on nothing else in the runtime: the query context asks it.

use dnspolicy_compiler::ir::types::CidrError;
use dnspolicy_compiler::Cidr;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What GeoIP knows about an address. Empty strings and 0 mean unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoInfo {
    /// ISO 3166-1 alpha-2 country code.
    pub country: Arc<str>,
    /// ISO 3166-2 region: country + "-" + first subdivision code.
    pub region: Arc<str>,
    /// City name (English).
    pub city: Arc<str>,
    /// Autonomous system number.
    pub asn: i64,
    /// Prefix length of the network this answer covers (the most specific
    /// of the sources that answered); `None` when no source knew the address.
    pub prefix_len: Option<u8>,
    /// Latitude and longitude in micro-degrees (a MaxMind City database's
    /// `location`), for `pick nearest`; integers keep the type `Eq`.
    pub location: Option<(i32, i32)>,
}

impl GeoInfo {
    /// [`GeoInfo::location`] in degrees.
    pub fn degrees(&self) -> Option<(f64, f64)> {
        self.location
            .map(|(la, lo)| (f64::from(la) / 1e6, f64::from(lo) / 1e6))
    }
}

/// A GeoIP source failed to load.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The MaxMind DB is invalid or corrupt.
    #[error("{path} is not a valid MaxMind DB: {reason}")]
    BadMmdb {
        /// The file.
        path: PathBuf,
        /// The reader's complaint.
        reason: String,
    },
    /// A CSV line is malformed.
    #[error("{path}:{line}: {reason}")]
    BadCsv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A prefix → (country, region) table from a CSV file, longest match wins.
#[derive(Debug, Default)]
pub struct CsvTable {
    // One map per prefix length, searched longest first: lookups cost at most
    // 33 (or 129) hash probes and usually a handful, whatever the table size.
    v4: BTreeMap<u8, std::collections::HashMap<u32, (String, String)>>,
    v6: BTreeMap<u8, std::collections::HashMap<u128, (String, String)>>,
}

impl CsvTable {
    /// Parses `cidr,country,region` lines; `#` starts a comment, blank lines
    /// are skipped, and a header line starting with `cidr` is allowed.
    pub fn parse(text: &str, path: &Path) -> Result<CsvTable, GeoError> {
        let mut t = CsvTable::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() || (i == 0 && line.starts_with("cidr")) {
                continue;
            }
            let bad = |reason: String| GeoError::BadCsv {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let mut parts = line.split(',').map(str::trim);
            let (Some(cidr), Some(country)) = (parts.next(), parts.next()) else {
                return Err(bad("expected `cidr,country,region`".into()));
            };
            let region = parts.next().unwrap_or("").to_string();
            let c: Cidr = cidr.parse().map_err(|e: CidrError| bad(e.to_string()))?;
            let val = (country.to_string(), region);
            match c.addr {
                IpAddr::V4(a) => {
                    t.v4.entry(c.len).or_default().insert(u32::from(a), val);
                }
                IpAddr::V6(a) => {
                    t.v6.entry(c.len).or_default().insert(u128::from(a), val);
                }
            }
        }
        Ok(t)
    }

    /// The longest prefix length in the table for one address family.
    pub fn longest(&self, v4: bool) -> Option<u8> {
        if v4 {
            self.v4.keys().next_back().copied()
        } else {
            self.v6.keys().next_back().copied()
        }
    }

    /// The longest prefix containing `ip`: (country, region, prefix length).
    pub fn lookup(&self, ip: IpAddr) -> Option<(&str, &str, u8)> {
        match ip {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                for (len, map) in self.v4.iter().rev() {
                    let key = if *len == 0 {
                        0
                    } else {
                        bits & (u32::MAX << (32 - u32::from(*len)))
                    };
                    if let Some((c, r)) = map.get(&key) {
                        return Some((c, r, *len));
                    }
                }
                None
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                for (len, map) in self.v6.iter().rev() {
                    let key = if *len == 0 {
                        0
                    } else {
                        bits & (u128::MAX << (128 - u32::from(*len)))
                    };
                    if let Some((c, r)) = map.get(&key) {
                        return Some((c, r, *len));
                    }
                }
                None
            }
        }
    }
}

#[derive(Deserialize, Default)]
struct MmdbRecord<'a> {
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    subdivisions: Option<Vec<IsoCode<'a>>>,
    #[serde(borrow, default)]
    city: Option<CityNames<'a>>,
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(default)]
    location: Option<Location>,
}

#[derive(Deserialize, Default)]
struct Location {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

#[derive(Deserialize, Default)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct CityNames<'a> {
    #[serde(borrow, default)]
    names: Option<BTreeMap<&'a str, &'a str>>,
}

enum Source {
    Mmdb(maxminddb::Reader<maxminddb::Mmap>),
    Csv(CsvTable),
}

/// Stacked GeoIP sources with a small lookup cache.
pub struct Geo {
    sources: Vec<(PathBuf, Source)>,
    cache: Box<[CacheSlot]>,
}

/// One cache entry: the address and what GeoIP said about it.
type CacheSlot = Mutex<Option<(IpAddr, Arc<GeoInfo>)>>;

/// Slots of the direct-mapped cache keyed by address: clients repeat, and
/// a MaxMind lookup plus decode costs far more than a hash and a compare.
/// One lock per slot, so workers on different cores rarely meet.
const CACHE_SLOTS: usize = 4096;

impl Geo {
    /// No sources: every lookup is unknown.
    pub fn empty() -> Geo {
        Geo {
            sources: Vec::new(),
            cache: (0..CACHE_SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Loads sources in order; `.mmdb` files as MaxMind DBs, anything else
    /// as a CSV table.
    pub fn open(paths: &[PathBuf]) -> Result<Geo, GeoError> {
        let mut g = Geo::empty();
        for p in paths {
            g.add_file(p)?;
        }
        Ok(g)
    }

    /// Adds a CSV table from text (used for the embedded example).
    pub fn add_csv_text(&mut self, text: &str, name: &Path) -> Result<(), GeoError> {
        let t = CsvTable::parse(text, name)?;
        self.sources.push((name.to_path_buf(), Source::Csv(t)));
        Ok(())
    }

    /// Adds one source file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), GeoError> {
        let is_mmdb = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("mmdb"));
        if is_mmdb {
            let reader = open_mmdb(path)?;
            self.sources
                .push((path.to_path_buf(), Source::Mmdb(reader)));
        } else {
            let text = std::fs::read_to_string(path).map_err(|source| GeoError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            self.add_csv_text(&text, path)?;
        }
        Ok(())
    }

    /// Number of sources.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether there are no sources.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Looks `ip` up in every source (IPv4-mapped IPv6 addresses are looked
    /// up as IPv4).
    pub fn lookup(&self, ip: IpAddr) -> Arc<GeoInfo> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.sources.is_empty() {
            return Arc::new(GeoInfo::default());
        }
        let slot = &self.cache[slot_of(&ip)];
        if let Ok(c) = slot.lock() {
            if let Some((k, v)) = &*c {
                if *k == ip {
                    return v.clone();
                }
            }
        }
        let info = Arc::new(self.lookup_uncached(ip));
        if let Ok(mut c) = slot.lock() {
            *c = Some((ip, info.clone()));
        }
        info
    }

    fn lookup_uncached(&self, ip: IpAddr) -> GeoInfo {
        let mut info = GeoInfo::default();
        let narrow = |len: u8, info: &mut GeoInfo| {
            info.prefix_len = Some(info.prefix_len.map_or(len, |l| l.max(len)));
        };
        for (_, src) in &self.sources {
            match src {
                Source::Csv(t) => match t.lookup(ip) {
                    Some((country, region, len)) => {
                        if info.country.is_empty() {
                            info.country = country.into();
                        }
                        if info.region.is_empty() {
                            info.region = region.into();
                        }
                        // A longer entry may sit inside this prefix (a /24
                        // inside a /16): the answer holds only down to the
                        // table's finest prefix.
                        narrow(t.longest(ip.is_ipv4()).unwrap_or(len).max(len), &mut info);
                    }
                    // A miss holds only down to the table's finest prefix.
                    None => {
                        if let Some(len) = t.longest(ip.is_ipv4()) {
                            narrow(len, &mut info);
                        }
                    }
                },
                Source::Mmdb(r) => {
                    let Ok(res) = r.lookup(ip) else { continue };
                    // Even a miss has a network: the empty subtree the
                    // address fell into, over which "unknown" holds.
                    if let Ok(net) = res.network() {
                        // The database may store IPv4 inside IPv6; report the IPv4 length.
                        let len = net.prefix();
                        let len = if ip.is_ipv4() && net.ip().is_ipv6() {
                            len.saturating_sub(96)
                        } else {
                            len
                        };
                        narrow(len, &mut info);
                    }
                    if !res.has_data() {
                        continue;
                    }
                    let Ok(Some(rec)) = res.decode::<MmdbRecord<'_>>() else {
                        continue;
                    };
                    let country = rec.country.and_then(|c| c.iso_code).unwrap_or("");
                    if info.country.is_empty() && !country.is_empty() {
                        info.country = country.into();
                    }
                    if info.region.is_empty() && !country.is_empty() {
                        let sub = rec
                            .subdivisions
                            .as_ref()
                            .and_then(|s| s.first())
                            .and_then(|s| s.iso_code);
                        if let Some(sub) = sub {
                            info.region = format!("{country}-{sub}").into();
                        }
                    }
                    if info.city.is_empty() {
                        if let Some(name) = rec
                            .city
                            .and_then(|c| c.names)
                            .and_then(|n| n.get("en").copied())
                        {
                            info.city = name.into();
                        }
                    }
                    if info.asn == 0 {
                        info.asn = i64::from(rec.autonomous_system_number.unwrap_or(0));
                    }
                    if info.location.is_none() {
                        if let Some(Location {
                            latitude: Some(la),
                            longitude: Some(lo),
                        }) = rec.location
                        {
                            info.location = Some(((la * 1e6) as i32, (lo * 1e6) as i32));
                        }
                    }
                }
            }
        }
        info
    }
}

fn slot_of(ip: &IpAddr) -> usize {
    let h = match ip {
        IpAddr::V4(a) => u64::from(u32::from(*a)),
        IpAddr::V6(a) => {
            let b = u128::from(*a);
            (b as u64) ^ ((b >> 64) as u64)
        }
    };
    (dnspolicy_compiler::ir::hash::fmix64(h) as usize) % CACHE_SLOTS
}

/// Opens and fully verifies a MaxMind DB, so a corrupt file is refused at
/// load rather than failing lookups later.
#[allow(unsafe_code)]
fn open_mmdb(path: &Path) -> Result<maxminddb::Reader<maxminddb::Mmap>, GeoError> {
    std::fs::metadata(path).map_err(|source| GeoError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // SAFETY: the mapping is read-only and lives as long as the reader.
    // Replacing the file with a rename (how databases are updated) leaves the
    // mapped inode intact; truncating it in place while mapped is the one
    // misuse this cannot guard against, as with every mmdb reader.
    let reader = unsafe { maxminddb::Reader::open_mmap(path) }.map_err(|e| GeoError::BadMmdb {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    reader.verify().map_err(|e| GeoError::BadMmdb {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(p: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/geoip")
            .join(p)
    }

    #[test]
    fn csv_longest_prefix() {
        let t = CsvTable::parse(
            "cidr,country,region\n198.51.100.0/24,CN,CN-BJ\n198.51.0.0/16,CN,\n2001:db8::/32,US,US-CA # v6\n",
            Path::new("t.csv"),
        )
        .expect("valid csv");
        assert_eq!(
            t.lookup("198.51.100.7".parse().expect("ip")),
            Some(("CN", "CN-BJ", 24))
        );
        assert_eq!(
            t.lookup("198.51.7.1".parse().expect("ip")),
            Some(("CN", "", 16))
        );
        assert_eq!(
            t.lookup("2001:db8::1".parse().expect("ip")),
            Some(("US", "US-CA", 32))
        );
        assert_eq!(t.lookup("192.0.2.1".parse().expect("ip")), None);
        assert!(CsvTable::parse("10.0.0.1/8,X,Y", Path::new("b.csv")).is_err());
    }

    #[test]
    fn nested_csv_prefixes_report_the_finest_length() {
        let mut g = Geo::empty();
        g.add_csv_text(
            "198.51.0.0/16,CN,\n198.51.100.0/24,CN,CN-BJ\n",
            Path::new("n.csv"),
        )
        .expect("csv");
        let outer = g.lookup("198.51.7.1".parse().expect("ip"));
        assert_eq!((&*outer.region, outer.prefix_len), ("", Some(24)));
        let inner = g.lookup("198.51.100.1".parse().expect("ip"));
        assert_eq!((&*inner.region, inner.prefix_len), ("CN-BJ", Some(24)));
    }

    #[test]
    fn mmdb_city_and_asn() {
        let g = Geo::open(&[
            shared("GeoIP2-City-Test.mmdb"),
            shared("GeoLite2-ASN-Test.mmdb"),
        ])
        .expect("test dbs load");
        let i = g.lookup("81.2.69.142".parse().expect("ip"));
        assert_eq!(
            (&*i.country, &*i.region, &*i.city),
            ("GB", "GB-ENG", "London")
        );
        assert_eq!(i.prefix_len, Some(31));
        let i = g.lookup("216.160.83.56".parse().expect("ip"));
        assert_eq!((&*i.country, &*i.region, i.asn), ("US", "US-WA", 209));
        let i = g.lookup("2001:480:10::1".parse().expect("ip"));
        assert_eq!(&*i.region, "US-CA");
        let i = g.lookup("::ffff:81.2.69.142".parse().expect("ip"));
        assert_eq!(&*i.country, "GB");
        let miss = g.lookup("127.0.0.1".parse().expect("ip"));
        assert_eq!((&*miss.country, &*miss.region, miss.asn), ("", "", 0));
        assert_eq!(miss.prefix_len, Some(8), "a miss still has a network");
    }

    #[test]
    fn corrupt_databases_never_panic() {
        let dir = shared("bad-data");
        let mut refused = 0;
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("bad-data")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.retain(|p| p.extension().is_some_and(|e| e == "mmdb"));
        assert!(files.len() >= 20);
        for f in files {
            match Geo::open(std::slice::from_ref(&f)) {
                Err(e) => {
                    assert!(e.to_string().contains("not a valid MaxMind DB"), "{e}");
                    refused += 1;
                }
                // Whatever verify lets through must still answer without panicking.
                Ok(g) => {
                    for ip in ["81.2.69.142", "1.1.1.1", "::1", "2001:480:10::1"] {
                        let _ = g.lookup(ip.parse().expect("ip"));
                    }
                }
            }
        }
        assert!(
            refused >= 10,
            "only {refused} corrupt databases were refused"
        );
    }
}
