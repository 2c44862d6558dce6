//! Active health checks: one task per checked member probes it (TCP
//! connect, HTTP GET, DNS query) every interval; `fall` failures in a row
//! take it out, `rise` successes bring it back. The state is one atomic per
//! member that every worker reads; each change is logged and counted.

use super::{Member, Pool, Pools};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a member's `check` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `tcp://HOST:PORT`: the connection is accepted.
    Tcp(SocketAddr),
    /// `http://HOST:PORT/PATH`: a GET answers with the expected status.
    Http {
        /// Where to connect.
        addr: SocketAddr,
        /// The request path (with its query).
        path: String,
    },
    /// `dns://HOST:PORT/NAME[?type=T]`: a UDP query answers with the
    /// expected RCODE.
    Dns {
        /// Where to send the query.
        addr: SocketAddr,
        /// The question name.
        name: String,
        /// The question type.
        qtype: RecordType,
    },
}

impl Probe {
    /// Parses a `check` URL. Hosts are addresses: a health check that
    /// needs DNS to find its target fails with it.
    pub fn parse(s: &str) -> Result<Probe, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or("expected tcp://, http:// or dns://")?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let addr = SocketAddr::from_str(host)
            .map_err(|_| format!("`{host}` is not ADDRESS:PORT (IPv6 as [::1]:PORT)"))?;
        match scheme {
            "tcp" if path.is_empty() || path == "/" => Ok(Probe::Tcp(addr)),
            "tcp" => Err("a tcp check has no path".into()),
            "http" => Ok(Probe::Http {
                addr,
                path: if path.is_empty() {
                    "/".into()
                } else {
                    path.into()
                },
            }),
            "dns" => {
                let p = path.trim_start_matches('/');
                let (name, query) = p.split_once('?').unwrap_or((p, ""));
                if name.is_empty() {
                    return Err("a dns check names the question: dns://HOST:PORT/NAME".into());
                }
                let mut qtype = RecordType::A;
                for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                    match kv.split_once('=') {
                        Some(("type", t)) => {
                            qtype = RecordType::from_str(&t.to_ascii_uppercase())
                                .map_err(|_| format!("unknown record type `{t}`"))?;
                        }
                        _ => return Err(format!("unknown parameter `{kv}` (only type=)")),
                    }
                }
                Name::from_ascii(name).map_err(|e| format!("bad name `{name}`: {e}"))?;
                Ok(Probe::Dns {
                    addr,
                    name: name.to_string(),
                    qtype,
                })
            }
            other => Err(format!("unknown scheme `{other}` (tcp, http or dns)")),
        }
    }

    /// Runs the probe once; `Err` says why it failed (for the log).
    pub async fn run(&self, pool: &Pool) -> Result<(), String> {
        let limit = Duration::from_secs_f64(pool.health.timeout);
        match tokio::time::timeout(limit, self.run_inner(pool)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer in {:?}", limit)),
        }
    }

    async fn run_inner(&self, pool: &Pool) -> Result<(), String> {
        match self {
            Probe::Tcp(a) => tokio::net::TcpStream::connect(a)
                .await
                .map(drop)
                .map_err(|e| format!("connect {a}: {e}")),
            Probe::Http { addr, path } => {
                let mut s = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect {addr}: {e}"))?;
                let req = format!(
                    "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: dnspolicy-health\r\nConnection: close\r\n\r\n"
                );
                s.write_all(req.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                // The status line is all a check needs.
                let mut buf = [0u8; 64];
                let mut n = 0;
                while n < 12 {
                    let k = s.read(&mut buf[n..]).await.map_err(|e| e.to_string())?;
                    if k == 0 {
                        break;
                    }
                    n += k;
                }
                let line = std::str::from_utf8(&buf[..n]).unwrap_or("");
                let status = line
                    .strip_prefix("HTTP/1.")
                    .and_then(|r| r.get(2..5))
                    .and_then(|c| c.parse::<u16>().ok())
                    .ok_or_else(|| "not an HTTP/1.x response".to_string())?;
                if status == pool.health.expect_status {
                    Ok(())
                } else {
                    Err(format!(
                        "HTTP {status}, expected {}",
                        pool.health.expect_status
                    ))
                }
            }
            Probe::Dns { addr, name, qtype } => {
                let bind: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let sock = tokio::net::UdpSocket::bind(bind)
                    .await
                    .map_err(|e| e.to_string())?;
                let id = super::pick::random_below(u64::from(u16::MAX)) as u16;
                let mut m = Message::query();
                m.metadata.id = id;
                let qname = Name::from_ascii(name).map_err(|e| e.to_string())?;
                m.add_query(Query::query(qname, *qtype));
                let bytes = m.to_vec().map_err(|e| e.to_string())?;
                sock.send_to(&bytes, addr)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut buf = [0u8; 4096];
                loop {
                    let (n, from) = sock.recv_from(&mut buf).await.map_err(|e| e.to_string())?;
                    if from != *addr {
                        continue;
                    }
                    let Ok(r) = Message::from_vec(&buf[..n]) else {
                        continue;
                    };
                    if r.metadata.id != id {
                        continue;
                    }
                    let want =
                        rcode_from_name(&pool.health.expect_rcode).unwrap_or(ResponseCode::NoError);
                    let got = r.metadata.response_code;
                    return if got == want {
                        Ok(())
                    } else {
                        Err(format!("RCODE {got}, expected {want}"))
                    };
                }
            }
        }
    }
}

/// `NOERROR`, `NXDOMAIN`, ... as a response code.
pub fn rcode_from_name(s: &str) -> Option<ResponseCode> {
    Some(match s.to_ascii_uppercase().as_str() {
        "NOERROR" => ResponseCode::NoError,
        "FORMERR" => ResponseCode::FormErr,
        "SERVFAIL" => ResponseCode::ServFail,
        "NXDOMAIN" => ResponseCode::NXDomain,
        "NOTIMP" => ResponseCode::NotImp,
        "REFUSED" => ResponseCode::Refused,
        _ => return None,
    })
}

/// The running checks; dropping it stops them.
pub struct Checks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Checks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Starts one probe task per checked member on the current tokio runtime.
pub fn start(pools: &Arc<Pools>) -> Checks {
    let mut tasks = Vec::new();
    for (p, pool) in pools.pools.iter().enumerate() {
        for (i, m) in pool.members.iter().enumerate() {
            if m.probe.is_some() {
                let pools = pools.clone();
                tasks.push(tokio::spawn(async move { watch(pools, p, i).await }));
            }
        }
    }
    Checks(tasks)
}

async fn watch(pools: Arc<Pools>, p: usize, i: usize) {
    let pool = &pools.pools[p];
    let m: &Member = &pool.members[i];
    let Some(probe) = &m.probe else { return };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(pool.health.interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut oks, mut fails) = (0u32, 0u32);
    loop {
        tick.tick().await;
        let result = probe.run(pool).await;
        let up = m.healthy.load(Relaxed);
        match result {
            Ok(()) => {
                m.checks_ok.fetch_add(1, Relaxed);
                (oks, fails) = (oks.saturating_add(1), 0);
                if !up && oks >= pool.health.rise {
                    m.healthy.store(true, Relaxed);
                    m.transitions.fetch_add(1, Relaxed);
                    tracing::info!(pool = %pool.name, member = %m.label, "pool member is healthy again");
                }
            }
            Err(why) => {
                m.checks_failed.fetch_add(1, Relaxed);
                (oks, fails) = (0, fails.saturating_add(1));
                if up && fails >= pool.health.fall {
                    m.healthy.store(false, Relaxed);
                    m.transitions.fetch_add(1, Relaxed);
                    tracing::warn!(pool = %pool.name, member = %m.label, reason = %why, "pool member is down");
                }
            }
        }
    }
}
