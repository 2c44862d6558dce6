//! Answer-level expectations of `dnspolicy test`: a case with `answer = {
//! … }` sends its query through the server's own path (`Worker::handle`,
//! the function the UDP loop calls) with the file's zone and GeoIP, and
//! checks the DNS response: RCODE (or `"none"`: no response), the answer
//! records as text, TC and the ECS scope.

use anyhow::{anyhow, Context as _};
use dnspolicy_runtime::server::Worker;
use dnspolicy_runtime::{Config, Shared};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::str::FromStr;

/// What the response must be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerExpect {
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`, ... or `none` (no response).
    pub rcode: Option<String>,
    /// The answer section, one record per string as `NAME TTL CLASS TYPE
    /// DATA` (`www.example.com. 300 IN CNAME cdn-bj.example.com.`), in order.
    pub records: Option<Vec<String>>,
    /// The ECS scope prefix length echoed (the query must carry `ecs`).
    pub ecs_scope: Option<u8>,
    /// The TC bit.
    pub truncated: Option<bool>,
}

/// The server state a test file's answer cases share.
pub struct AnswerServer {
    shared: Shared,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl AnswerServer {
    /// The policy as the only plugin, the zone and GeoIP given (the
    /// embedded examples when absent), as `serve` would load them.
    pub fn new(
        policy: &Path,
        zone: Option<&Path>,
        geoip: &[std::path::PathBuf],
    ) -> anyhow::Result<AnswerServer> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("dnspolicy-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let name = policy
            .file_name()
            .ok_or_else(|| anyhow!("no policy file name"))?;
        std::fs::copy(policy, dir.join(name))
            .with_context(|| format!("cannot copy {}", policy.display()))?;
        let config = Config {
            plugin_dir: Some(dir.clone()),
            zone: zone.map(Path::to_path_buf),
            geoip: geoip.to_vec(),
            workers: 1,
            ..Config::default()
        };
        let shared =
            Shared::from_config(&config).map_err(|e| anyhow!("the server does not start: {e}"))?;
        Ok(AnswerServer {
            shared,
            _dir: TempDir(dir),
        })
    }

    /// Sends one query; the failures against `want`.
    pub fn check(
        &self,
        query: &str,
        qtype: Option<&str>,
        transport: Option<&str>,
        client: Option<&str>,
        ecs: Option<&str>,
        want: &AnswerExpect,
    ) -> anyhow::Result<Vec<String>> {
        let qtype = RecordType::from_str(&qtype.unwrap_or("A").to_ascii_uppercase())
            .map_err(|_| anyhow!("unknown type"))?;
        let mut m = Message::query();
        m.metadata.id = 0x5151;
        m.metadata.recursion_desired = true;
        let name = Name::from_ascii(query).map_err(|e| anyhow!("query `{query}`: {e}"))?;
        m.add_query(Query::query(name, qtype));
        let mut e = Edns::new();
        e.set_max_payload(1232);
        if let Some(ecs) = ecs {
            let (a, l) = ecs
                .split_once('/')
                .ok_or_else(|| anyhow!("ecs `{ecs}`: ADDR/LEN"))?;
            let addr: IpAddr = a.parse().map_err(|_| anyhow!("ecs `{ecs}`: ADDR/LEN"))?;
            let len: u8 = l.parse().map_err(|_| anyhow!("ecs `{ecs}`: ADDR/LEN"))?;
            e.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(addr, len, 0)));
        }
        m.set_edns(e);
        let packet = m.to_vec()?;
        let from_ip: IpAddr = client
            .unwrap_or("127.0.0.1")
            .parse()
            .map_err(|_| anyhow!("client: not an address"))?;
        let tcp = transport == Some("tcp");
        let mut w = Worker::new(Some(0), "127.0.0.1:53".into());
        let mut out = Vec::new();
        let sent = w.handle(
            &self.shared,
            &packet,
            SocketAddr::new(from_ip, 40000),
            tcp,
            &mut out,
        );
        let mut failures = Vec::new();
        let want_rcode = want.rcode.as_deref().map(str::to_ascii_uppercase);
        if !sent {
            if want_rcode.as_deref() != Some("NONE") {
                failures.push("expected a response, got none".into());
            }
            return Ok(failures);
        }
        if want_rcode.as_deref() == Some("NONE") {
            failures.push("expected no response, got one".into());
            return Ok(failures);
        }
        let r = Message::from_vec(&out).map_err(|e| anyhow!("the response does not parse: {e}"))?;
        let rcode = dnspolicy_runtime::admin::metrics::rcode_name(usize::from(u16::from(
            r.metadata.response_code,
        )));
        if let Some(w) = &want_rcode {
            if *w != rcode {
                failures.push(format!("expected RCODE {w}, got {rcode}"));
            }
        }
        if let Some(want_recs) = &want.records {
            let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            let got: Vec<String> = r.answers.iter().map(|a| norm(&a.to_string())).collect();
            let want_n: Vec<String> = want_recs.iter().map(|s| norm(s)).collect();
            if got != want_n {
                failures.push(format!("expected records {want_n:?}, got {got:?}"));
            }
        }
        if let Some(t) = want.truncated {
            if r.metadata.truncation != t {
                failures.push(format!("expected TC {t}, got {}", r.metadata.truncation));
            }
        }
        if let Some(scope) = want.ecs_scope {
            let got = r
                .edns
                .as_ref()
                .and_then(|e| match e.option(EdnsCode::Subnet) {
                    Some(EdnsOption::Subnet(c)) => Some(c.scope_prefix()),
                    _ => None,
                });
            if got != Some(scope) {
                failures.push(format!("expected ECS scope {scope}, got {got:?}"));
            }
        }
        Ok(failures)
    }
}
