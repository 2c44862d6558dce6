//! What script and module plugins (Lua, WASM) share: the per-call view of a
//! query that their host API reads and decides through, the limits of the
//! metadata file, and failure counters.
//!
//! Both hosts expose the same calls (`get_client_ip`, `lookup_geo_region`,
//! `set_answer`, `add_record`, ...); the checks and the decisions they make
//! live here once, so a Lua and a WASM plugin that make the same calls get
//! the same answer.

use crate::dns::query::{QueryCtx, CLIENT_FIELDS, GEO_FIELDS};
use crate::plugin::metadata::MetadataError;
use crate::plugin::Decision;
use dnspolicy_compiler::ir::types::{canonical_name, qtype_from_str, NameError};
use dnspolicy_compiler::{Value as PValue, Verdict};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Per-plugin limits, from the `limits` of the metadata file.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Bytes a Lua state or a WASM instance may hold (default 16 MiB).
    pub memory: usize,
    /// Lua VM instructions one `apply` may run (default 1 000 000). WASM
    /// calls are bounded by `deadline` only.
    pub instructions: u64,
    /// Wall-clock time one call may take (default 50 ms): it also bounds
    /// work the instruction count does not see, such as long C calls.
    pub deadline: std::time::Duration,
    /// On a failure, answer SERVFAIL instead of passing to the next plugin.
    pub fail_closed: bool,
    /// Largest WASM module file accepted (default 16 MiB).
    pub module_bytes: usize,
    /// Host functions the plugin may call (`capabilities` in NAME.yaml).
    pub grants: Grants,
}

/// A group of host functions a plugin must be granted to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// `forward(pool)`: send the query to an upstream pool.
    Forward = 1,
    /// `log(level, msg)`: write to the server log.
    Log = 2,
    /// `lookup_geo_*` / `geo_*`: GeoIP lookups.
    Geo = 4,
}

impl Capability {
    /// Every capability, by name.
    pub const ALL: [Capability; 3] = [Capability::Forward, Capability::Log, Capability::Geo];

    /// Its name in NAME.yaml.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Forward => "forward",
            Capability::Log => "log",
            Capability::Geo => "geo",
        }
    }
}

/// The capabilities granted to one plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grants(u8);

impl Default for Grants {
    /// Everything but `forward`: a plugin sends queries elsewhere only when
    /// its metadata says so.
    fn default() -> Self {
        Grants(Capability::Log as u8 | Capability::Geo as u8)
    }
}

impl Grants {
    /// Exactly the capabilities named.
    pub fn from_names(names: &[String]) -> Result<Grants, MetadataError> {
        let mut g = 0;
        for n in names {
            let c = Capability::ALL
                .iter()
                .find(|c| c.name() == n)
                .ok_or_else(|| {
                    MetadataError::Limit(format!("unknown capability `{n}` (forward, log, geo)"))
                })?;
            g |= *c as u8;
        }
        Ok(Grants(g))
    }

    /// Whether `c` is granted.
    pub fn has(self, c: Capability) -> bool {
        self.0 & c as u8 != 0
    }

    /// The granted names, for `/plugins`.
    pub fn names(self) -> Vec<&'static str> {
        Capability::ALL
            .iter()
            .filter(|c| self.has(**c))
            .map(|c| c.name())
            .collect()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 16 << 20,
            instructions: 1_000_000,
            deadline: std::time::Duration::from_millis(50),
            fail_closed: false,
            module_bytes: 16 << 20,
            grants: Grants::default(),
        }
    }
}

impl Limits {
    /// Reads `memory` (bytes), `instructions`, `deadline_ms`, `on_error`
    /// (`pass` | `servfail`) and `module_bytes` from a metadata `limits` value.
    pub fn from_metadata(v: &serde_json::Value) -> Result<Limits, MetadataError> {
        let mut l = Limits::default();
        if v.is_null() {
            return Ok(l);
        }
        let bad = |m: &str| MetadataError::Limit(m.to_string());
        let obj = v
            .as_object()
            .ok_or_else(|| bad("`limits` must be a mapping"))?;
        for (k, val) in obj {
            match k.as_str() {
                "memory" => {
                    l.memory = val
                        .as_u64()
                        .filter(|m| (1 << 20..=1 << 30).contains(m))
                        .ok_or_else(|| bad("`limits.memory` is a byte count from 1048576 to 1073741824"))?
                        as usize
                }
                "instructions" => {
                    l.instructions = val
                        .as_u64()
                        .filter(|n| (1..=1_000_000_000).contains(n))
                        .ok_or_else(|| bad("`limits.instructions` is 1 to 1000000000"))?
                }
                "deadline_ms" => {
                    let ms = val
                        .as_u64()
                        .filter(|n| (1..=10_000).contains(n))
                        .ok_or_else(|| bad("`limits.deadline_ms` is 1 to 10000"))?;
                    l.deadline = std::time::Duration::from_millis(ms);
                }
                "module_bytes" => {
                    l.module_bytes = val
                        .as_u64()
                        .filter(|n| (1024..=256 << 20).contains(n))
                        .ok_or_else(|| bad("`limits.module_bytes` is 1024 to 268435456"))?
                        as usize
                }
                "on_error" => {
                    l.fail_closed = match val.as_str() {
                        Some("pass") => false,
                        Some("servfail") => true,
                        _ => return Err(bad("`limits.on_error` is `pass` or `servfail`")),
                    }
                }
                other => {
                    return Err(MetadataError::Limit(format!(
                        "unknown limit `{other}` (memory, instructions, deadline_ms, on_error, module_bytes)"
                    )))
                }
            }
        }
        Ok(l)
    }

    /// These limits with the capabilities of a metadata file's
    /// `capabilities` list (`None`: the default).
    pub fn granting(mut self, names: Option<&[String]>) -> Result<Limits, MetadataError> {
        if let Some(names) = names {
            self.grants = Grants::from_names(names)?;
        }
        Ok(self)
    }

    /// What a failed call decides: pass on, or SERVFAIL when the plugin
    /// fails closed.
    pub fn on_failure(&self) -> Decision<'static> {
        if self.fail_closed {
            Decision::Decide {
                verdict: Cow::Owned(Verdict::Servfail),
                rule: None,
            }
        } else {
            Decision::Pass
        }
    }
}

/// Failure counters of one plugin, by reason.
#[derive(Debug, Default)]
pub struct Failures {
    /// The plugin raised an error, returned one, or misused the host API.
    pub error: AtomicU64,
    /// Instruction budget or deadline spent.
    pub budget: AtomicU64,
    /// Memory cap reached.
    pub memory: AtomicU64,
    /// A WASM trap (unreachable, out-of-bounds access, stack overflow).
    pub trap: AtomicU64,
}

impl Failures {
    /// The counters for `/metrics`; `trap` only where the kind can trap.
    pub fn report(&self, with_trap: bool) -> Vec<(&'static str, u64)> {
        let mut v = vec![
            ("error", self.error.load(Ordering::Relaxed)),
            ("budget", self.budget.load(Ordering::Relaxed)),
            ("memory", self.memory.load(Ordering::Relaxed)),
        ];
        if with_trap {
            v.push(("trap", self.trap.load(Ordering::Relaxed)));
        }
        v
    }
}

/// Lines per second a plugin may write to the server log (its `log` calls,
/// WASI stdout/stderr and host refusals together).
pub const LOG_LINES_PER_SEC: u64 = 100;

/// What a plugin may do through the host, shared by all its states and
/// instances: its log rate limit and its granted capabilities.
#[derive(Debug)]
pub struct LogGate {
    second: AtomicU64,
    lines: AtomicU64,
    /// Lines dropped by the limit so far.
    pub dropped: AtomicU64,
    /// Capabilities granted.
    pub grants: Grants,
    /// Calls refused for want of a capability.
    pub denied: AtomicU64,
}

impl LogGate {
    /// A gate with nothing written yet and the default capabilities.
    pub fn new() -> Arc<LogGate> {
        LogGate::granting(Grants::default())
    }

    /// A gate with nothing written yet and `grants`.
    pub fn granting(grants: Grants) -> Arc<LogGate> {
        Arc::new(LogGate {
            second: AtomicU64::new(0),
            lines: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            grants,
            denied: AtomicU64::new(0),
        })
    }

    /// Whether one more line may be written now (counts it).
    pub fn allow(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.second.swap(now, Ordering::Relaxed) != now {
            self.lines.store(0, Ordering::Relaxed);
        }
        if self.lines.fetch_add(1, Ordering::Relaxed) >= LOG_LINES_PER_SEC {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// A value in the binary form of `dnspolicy_compiler::abi::encode_value`,
/// without allocating: text is shared, scalars and addresses inline.
pub enum FieldBytes {
    /// Up to 18 bytes.
    Inline([u8; 18], usize),
    /// A string or name.
    Text(Arc<str>),
}

impl FieldBytes {
    fn of(v: &PValue) -> Option<FieldBytes> {
        Some(match v {
            PValue::Str(s) | PValue::Name(s) => FieldBytes::Text(s.clone()),
            PValue::List(_) => return None,
            other => {
                let b = dnspolicy_compiler::abi::encode_value(other)?;
                let mut a = [0u8; 18];
                let n = b.len().min(18);
                a[..n].copy_from_slice(&b[..n]);
                FieldBytes::Inline(a, n)
            }
        })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            FieldBytes::Inline(a, n) => &a[..*n],
            FieldBytes::Text(s) => s.as_bytes(),
        }
    }
}

/// Records one call may add.
pub const MAX_RECORDS: usize = 64;
/// Log lines one call may write.
pub const MAX_LOG_LINES: u32 = 16;

/// What one plugin call sees and decides: owned copies of the query's
/// facts, so plugin code never holds a reference into the server.
pub struct Call {
    /// Source address.
    pub client: IpAddr,
    /// The address the answer is for: the ECS address if any, else the source.
    pub subject: IpAddr,
    /// The ECS option's address and source prefix.
    pub ecs: Option<(IpAddr, u8)>,
    /// Canonical question name.
    pub qname: Arc<str>,
    /// Question type.
    pub qtype: u16,
    geo: Arc<crate::geo::Geo>,
    decision: Option<Decision<'static>>,
    records: Vec<Record>,
    /// Context fields the call read (bits of `Field`), for the ECS scope.
    pub read: u32,
    logged: u32,
    /// The plugin's name, for its log lines.
    plugin: Arc<str>,
    gate: Arc<LogGate>,
    /// The context fields of a compiled policy (filled by the host).
    pub policy: Option<Box<dnspolicy_compiler::Context>>,
    /// The injected variables a compiled policy declares (path, type).
    pub inputs: Arc<[(String, dnspolicy_compiler::Type)]>,
    /// The last whole verdict set (`set_verdict`, `set_value`), kept as it
    /// was for `eval`, where `pass` differs from no decision.
    pub verdict: Option<(Verdict, Option<usize>)>,
    /// A sticky key handed over before its `pool` verdict (`set_value`
    /// with `abi::POOL_KEY_CODE`).
    pub pool_key: Option<i64>,
}

impl Call {
    /// A call on `ctx` for the plugin `plugin`.
    pub fn new(ctx: &QueryCtx<'_>, plugin: Arc<str>, gate: Arc<LogGate>) -> Call {
        let f = ctx.facts;
        Call {
            client: f.client,
            subject: ctx.subject_ip(),
            ecs: f.ecs.map(|_| {
                let net = ctx.subnet();
                (net.addr, net.len)
            }),
            qname: f.qname.into(),
            qtype: f.qtype,
            geo: ctx.geo_db(),
            decision: None,
            records: Vec::new(),
            read: 0,
            logged: 0,
            plugin,
            gate,
            policy: None,
            inputs: no_inputs(),
            verdict: None,
            pool_key: None,
        }
    }

    /// A call that sees `ctx` as its context (`dnspolicy eval --backend
    /// wasm`): no packet, no GeoIP; the context's fields stand for both.
    pub fn from_context(
        ctx: &dnspolicy_compiler::Context,
        plugin: Arc<str>,
        gate: Arc<LogGate>,
    ) -> Call {
        use dnspolicy_compiler::{Field, Value};
        let ip = match ctx.get(Field::ClientIp) {
            Some(Value::Ip(ip)) => *ip,
            _ => IpAddr::from([0, 0, 0, 0]),
        };
        Call {
            client: ip,
            subject: ip,
            ecs: None,
            qname: match ctx.get(Field::QueryName) {
                Some(Value::Name(n)) => n.clone(),
                _ => "".into(),
            },
            qtype: match ctx.get(Field::QueryType) {
                Some(Value::Qtype(q)) => *q,
                _ => 0,
            },
            geo: no_geo(),
            decision: None,
            records: Vec::new(),
            read: 0,
            logged: 0,
            plugin,
            gate,
            policy: Some(Box::new(ctx.clone())),
            inputs: Arc::from(Vec::new()),
            verdict: None,
            pool_key: None,
        }
    }

    /// A context field (`id` < 1000) or injected variable (1000 + its
    /// index) in the binary form of `dnspolicy_compiler::backend::wasm`, or `None`
    /// when it is missing. Reading a field marks it read (the ECS scope).
    pub fn field(&mut self, id: u32) -> Option<FieldBytes> {
        use dnspolicy_compiler::abi::INPUT_BASE;
        let ctx = self.policy.as_ref()?;
        let v = if id >= INPUT_BASE {
            let (path, ty) = self.inputs.get((id - INPUT_BASE) as usize)?;
            // A value of the wrong type is missing, never trusted.
            ctx.var(path)
                .filter(|v| dnspolicy_compiler::backend::interp::value_fits(v, ty))?
        } else {
            let field = dnspolicy_compiler::ir::context::FIELDS
                .get(id as usize)?
                .field;
            self.read |= 1 << id;
            ctx.get(field)?
        };
        FieldBytes::of(v)
    }

    /// The client address the answer is for (marks the client as read).
    pub fn client_ip(&mut self) -> IpAddr {
        self.read |= CLIENT_FIELDS & !GEO_FIELDS;
        self.subject
    }

    /// The ECS option, if any (marks the client as read).
    pub fn ecs(&mut self) -> Option<(IpAddr, u8)> {
        self.read |= CLIENT_FIELDS & !GEO_FIELDS;
        self.ecs
    }

    /// Whether the plugin was granted `c`; a refusal is counted and says
    /// how to grant it.
    pub fn grant(&mut self, c: Capability) -> Result<(), Refused> {
        if self.gate.grants.has(c) {
            return Ok(());
        }
        self.gate.denied.fetch_add(1, Ordering::Relaxed);
        Err(Refused::NotGranted {
            capability: c.name(),
            plugin: self.plugin.to_string(),
        })
    }

    /// GeoIP of `ip`, or of the client when `None` (capability `geo`).
    pub fn geo_of(&mut self, ip: Option<IpAddr>) -> Result<Arc<crate::geo::GeoInfo>, Refused> {
        self.grant(Capability::Geo)?;
        // The answer now depends on the client's address: the ECS scope says so.
        self.read |= CLIENT_FIELDS;
        Ok(self.geo.lookup(ip.unwrap_or(self.subject)))
    }

    fn decide(&mut self, verdict: Verdict) {
        self.decision = Some(Decision::Decide {
            verdict: Cow::Owned(verdict),
            rule: None,
        });
    }

    /// Decides a whole verdict (compiled policies), with the index of the
    /// rule that decided.
    pub fn set_verdict(&mut self, mut verdict: Verdict, rule: Option<usize>) {
        if let Verdict::Pool {
            key: key @ None, ..
        } = &mut verdict
        {
            *key = self.pool_key.take();
        }
        self.verdict = Some((verdict.clone(), rule));
        self.decision = Some(match verdict {
            Verdict::Pass => Decision::Pass,
            verdict => Decision::Decide {
                verdict: Cow::Owned(verdict),
                rule,
            },
        });
    }

    /// `set_answer(target, type, ttl)`: an address answers directly; a name
    /// is a rewrite (CNAME plus the target's records).
    pub fn set_answer(
        &mut self,
        target: &str,
        rtype: Option<u16>,
        ttl: u32,
    ) -> Result<(), Refused> {
        check_ttl(ttl)?;
        if let Ok(ip) = target.parse::<IpAddr>() {
            let want = if ip.is_ipv4() { 1 } else { 28 };
            if rtype.is_some_and(|t| t != want) {
                return Err(Refused::WrongFamily(target.to_string()));
            }
            self.decide(Verdict::Answer {
                rtype: want,
                data: [PValue::Ip(ip)].into_iter().collect(),
                ttl,
            });
        } else {
            let canon = canonical_name(target)?;
            self.decide(Verdict::Rewrite { target: canon, ttl });
        }
        Ok(())
    }

    /// `add_record(name, type, rdata, ttl)`: the call answers with exactly
    /// the records it added.
    pub fn add_record(
        &mut self,
        name: &str,
        rtype: u16,
        rdata: &str,
        ttl: u32,
    ) -> Result<(), Refused> {
        // Bounds first: parsing is the expensive part.
        if self.records.len() >= MAX_RECORDS || rdata.len() > 4096 {
            return Err(Refused::TooManyRecords);
        }
        check_ttl(ttl)?;
        let rt = RecordType::from(rtype);
        let data = RData::try_from_str(rt, rdata).map_err(|e| Refused::RecordData {
            rtype: rt.to_string(),
            rdata: rdata.to_string(),
            reason: e.to_string(),
        })?;
        self.records
            .push(Record::from_rdata(owner(name)?, ttl, data));
        // A marker: the records are handed over once, after the call.
        self.decision = Some(Decision::Records(Vec::new()));
        Ok(())
    }

    /// `set_rcode(NAME)`: NXDOMAIN, NOERROR (no data), REFUSED or SERVFAIL.
    pub fn set_rcode(&mut self, rcode: &str) -> Result<(), Refused> {
        let v = match rcode.to_ascii_uppercase().as_str() {
            "NXDOMAIN" => Verdict::Nxdomain,
            "NOERROR" | "NODATA" => Verdict::Nodata,
            "REFUSED" => Verdict::Refuse,
            "SERVFAIL" => Verdict::Servfail,
            other => return Err(Refused::Rcode(other.to_string())),
        };
        self.decide(v);
        Ok(())
    }

    /// No response at all.
    pub fn drop_query(&mut self) {
        self.decide(Verdict::Drop);
    }

    /// An empty response with TC set.
    pub fn truncate(&mut self) {
        self.decide(Verdict::Truncate);
    }

    /// Forward to the upstream pool `pool` (capability `forward`).
    pub fn forward(&mut self, pool: &str) -> Result<(), Refused> {
        self.grant(Capability::Forward)?;
        self.decide(Verdict::Forward {
            pool: pool.to_string(),
        });
        Ok(())
    }

    /// A log line the plugin asked for (capability `log`).
    pub fn log(&mut self, kind: &str, level: &str, msg: &str) -> Result<(), Refused> {
        self.grant(Capability::Log)?;
        self.note(kind, level, msg);
        Ok(())
    }

    /// A log line about the plugin (the plugin's own, or the host's note
    /// on a refused call), at most [`MAX_LOG_LINES`] per call and 512
    /// characters each, so a plugin cannot flood the server log.
    pub fn note(&mut self, kind: &str, level: &str, msg: &str) {
        self.logged += 1;
        if self.logged > MAX_LOG_LINES || !self.gate.allow() {
            return;
        }
        let msg: String = msg.chars().take(512).collect();
        let (plugin, qname) = (&*self.plugin, &self.qname);
        match level {
            "error" => tracing::error!(%plugin, %qname, "{kind}: {msg}"),
            "warn" | "warning" => tracing::warn!(%plugin, %qname, "{kind}: {msg}"),
            "debug" => tracing::debug!(%plugin, %qname, "{kind}: {msg}"),
            _ => tracing::info!(%plugin, %qname, "{kind}: {msg}"),
        }
    }

    /// What the call decided (records handed over once).
    pub fn finish(&mut self) -> Decision<'static> {
        match self.decision.take() {
            Some(Decision::Records(_)) => Decision::Records(std::mem::take(&mut self.records)),
            Some(d) => d,
            None => Decision::Pass,
        }
    }
}

/// TTLs are 0 to 2^31 - 1 seconds (RFC 2181), as in the language.
fn check_ttl(ttl: u32) -> Result<(), Refused> {
    if ttl > i32::MAX as u32 {
        return Err(Refused::Ttl(ttl));
    }
    Ok(())
}

/// A host call that refuses its arguments: the plugin gets an error value
/// (Lua) or `-1` (WASM) and the call goes on; nothing is decided by it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A TTL over 2^31 - 1.
    #[error("TTL {0} is out of range (0 to 2147483647)")]
    Ttl(u32),
    /// An IPv4 answer to AAAA or the reverse.
    #[error("`{0}` is not an address of the type asked for")]
    WrongFamily(String),
    /// Not a DNS name.
    #[error("{0}")]
    Name(#[from] NameError),
    /// A name that cannot be an owner name.
    #[error("`{0}` is not a DNS name")]
    Owner(String),
    /// Over the record bound.
    #[error("add_record: at most {MAX_RECORDS} records of 4096 bytes of data")]
    TooManyRecords,
    /// Record data that does not parse for its type.
    #[error("{rtype} `{rdata}`: {reason}")]
    RecordData {
        /// The record type.
        rtype: String,
        /// The data as given.
        rdata: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A host function the plugin's metadata does not grant.
    #[error("capability `{capability}` is not granted to plugin {plugin}: add it to `capabilities:` in its NAME.yaml")]
    NotGranted {
        /// The capability.
        capability: &'static str,
        /// The plugin.
        plugin: String,
    },
    /// An rcode the call does not set.
    #[error("unknown rcode `{0}` (NXDOMAIN, NOERROR, REFUSED, SERVFAIL)")]
    Rcode(String),
    /// A record type name that is not one.
    #[error("`{0}` is not a record type")]
    RecordType(String),
}

/// The GeoIP of an evaluation without a server: no sources (one, shared:
/// its cache is large).
/// No injected variables: one empty list per thread, shared by its calls
/// (an empty `Arc` slice is still an allocation).
fn no_inputs() -> Arc<[(String, dnspolicy_compiler::Type)]> {
    thread_local! {
        static NONE: Arc<[(String, dnspolicy_compiler::Type)]> = Arc::from(Vec::new());
    }
    NONE.with(Arc::clone)
}

fn no_geo() -> Arc<crate::geo::Geo> {
    static NONE: std::sync::OnceLock<Arc<crate::geo::Geo>> = std::sync::OnceLock::new();
    NONE.get_or_init(|| Arc::new(crate::geo::Geo::empty()))
        .clone()
}

fn owner(name: &str) -> Result<Name, Refused> {
    let canon = canonical_name(name)?;
    crate::dns::answer::fqdn(&canon).ok_or_else(|| Refused::Owner(name.to_string()))
}

/// A record type by name (`A`, `AAAA`, `TXT`, `TYPE65`, ...).
pub fn rtype(t: &str) -> Result<u16, Refused> {
    qtype_from_str(t).ok_or_else(|| Refused::RecordType(t.to_string()))
}
