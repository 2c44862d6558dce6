//! The DNS server: binding (UDP sockets per worker with SO_REUSEPORT, TCP,
//! admin), running until shutdown, and the shared state. Files:
//! `shared` (what workers share), `udp` (batched workers over `batch`, the
//! recvmmsg/sendmmsg buffers), `tcp` (connections, pipelined), `pipeline`
//! (one query: the wire fast path or hickory's, decide, build; a
//! [`Worker`]'s reusable state), `upstream_job` (forwarding, rewrites
//! completed upstream).
//!
//! Depends on every other part of the runtime: it is where they meet.

mod batch;
mod pipeline;
pub mod sampled;
mod shared;
mod tcp;
mod udp;
mod upstream_job;

pub use pipeline::Worker;
pub use shared::{load_chain, ServeError, Shared, MAX_TCP_CONNECTIONS, MAX_UPSTREAM_IN_FLIGHT};

use crate::admin::metrics::{verdict_index, Metrics};
use crate::config::{Config, DEFAULT_POLICY, DEFAULT_REGIONS, DEFAULT_ZONE};
use crate::dns::answer::{self, Built};
use crate::dns::query::{QueryCtx, QueryFacts};
use crate::dns::upstream;
use crate::dns::zone::Zone;
use crate::geo::Geo;
use crate::plugin::{Chain, Decision, DslPlugin, Plugin};
use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::Name;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    udp: Vec<std::net::UdpSocket>,
    tcp: Vec<std::net::TcpListener>,
    admin: Option<std::net::TcpListener>,
    http: Option<std::net::TcpListener>,
    workers: usize,
    hot_reload: bool,
}

fn reuseport_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Bursts of queries must not overflow the receive queue.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

fn reuseport_tcp(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

impl Server {
    /// Binds every socket. Port 0 picks a free port (the same one for UDP
    /// and TCP), so tests can run servers side by side.
    pub fn bind(config: &Config, shared: Shared) -> Result<Server, ServeError> {
        let workers = config.worker_count();
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for want in &config.listen {
            let mut last_err = None;
            // A free UDP port may be taken for TCP: try a few ephemeral ports.
            for _ in 0..16 {
                match bind_pair(*want, workers) {
                    Ok((u, t)) => {
                        udp.extend(u);
                        tcp.push(t);
                        last_err = None;
                        break;
                    }
                    Err(e) => {
                        last_err = Some(e);
                        if want.port() != 0 {
                            break;
                        }
                    }
                }
            }
            if let Some(e) = last_err {
                return Err(ServeError::Bind(*want, e));
            }
        }
        // Not SO_REUSEPORT: a second server on either port is an error.
        let admin = config.admin.listen.map(bind_tcp).transpose()?;
        let http = config.http.listen.map(bind_tcp).transpose()?;
        Ok(Server {
            shared: Arc::new(shared),
            udp,
            tcp,
            admin,
            http,
            workers,
            hot_reload: config.hot_reload,
        })
    }

    /// The DNS addresses actually bound (UDP and TCP share them).
    pub fn dns_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|t| t.local_addr().ok())
            .collect()
    }

    /// The admin address actually bound.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|a| a.local_addr().ok())
    }

    /// The HTTP front door's address actually bound.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|a| a.local_addr().ok())
    }

    /// The shared state (for reload and admin).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` is cancelled. Queries being processed when it
    /// is cancelled finish; upstream exchanges in flight get up to
    /// `[limits] drain_ms` to finish and be answered; idle TCP connections
    /// are closed.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServeError> {
        let mut tasks = tokio::task::JoinSet::new();
        // Stopped when dropped, at the end of `run`.
        let _checks = crate::gslb::health::start(&self.shared.pools);
        // Kept alive for as long as the server runs.
        let _watcher = if self.hot_reload {
            match crate::reload::watch(self.shared.clone()) {
                Ok(w) => {
                    tracing::info!("watching the plugin directory for changes");
                    Some(w)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch the plugin directory; reload with SIGHUP or POST /reload");
                    None
                }
            }
        } else {
            None
        };
        tracing::info!(
            workers = self.workers,
            udp_sockets = self.udp.len(),
            "serving"
        );
        // Each UDP socket gets its own thread, blocking in recvmmsg like a
        // bare responder: no event loop on the hot path, no work stealing
        // between cores, and the batch buffers stay on their thread.
        // Upstream work is spawned onto the server's runtime.
        let mut threads = Vec::new();
        let rt = tokio::runtime::Handle::current();
        for (i, s) in self.udp.into_iter().enumerate() {
            let (shared, stop, rt) = (self.shared.clone(), shutdown.clone(), rt.clone());
            let t = std::thread::Builder::new()
                .name(format!("dnspolicy-udp-{i}"))
                .spawn(move || udp::udp_worker(i, s, shared, stop, rt))
                .map_err(|e| ServeError::Setup(format!("cannot start a UDP worker: {e}")))?;
            threads.push(t);
        }
        for l in self.tcp {
            let listener =
                TcpListener::from_std(l).map_err(|e| ServeError::Setup(e.to_string()))?;
            tasks.spawn(tcp::tcp_accept(
                listener,
                self.shared.clone(),
                shutdown.clone(),
            ));
        }
        if let (Some(l), Some(state)) = (self.http, self.shared.http.clone()) {
            let threads = state.threads(self.workers);
            let (shared, stop) = (self.shared.clone(), shutdown.clone());
            tasks.spawn(async move {
                if let Err(e) = crate::http::proxy::run(l, threads, shared, state, stop).await {
                    tracing::error!(error = %e, "the HTTP front door did not start");
                }
            });
        }
        if let Some(a) = self.admin {
            tasks.spawn(crate::admin::status::sample(
                self.shared.clone(),
                shutdown.clone(),
            ));
            let listener =
                TcpListener::from_std(a).map_err(|e| ServeError::Setup(e.to_string()))?;
            tasks.spawn(crate::admin::serve(
                listener,
                self.shared.clone(),
                shutdown.clone(),
            ));
        }
        while tasks.join_next().await.is_some() {}
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        self.shared.drain_upstreams().await;
        if self.shared.dnstap.is_some() || self.shared.decisions.is_some() {
            let shared = self.shared.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(t) = &shared.dnstap {
                    t.close(Duration::from_secs(2));
                }
                if let Some(d) = &shared.decisions {
                    d.close(Duration::from_secs(2));
                }
            })
            .await;
        }
        Ok(())
    }
}

/// A plain (not SO_REUSEPORT) non-blocking TCP listener.
fn bind_tcp(a: SocketAddr) -> Result<std::net::TcpListener, ServeError> {
    let l = std::net::TcpListener::bind(a).map_err(|e| ServeError::Bind(a, e))?;
    l.set_nonblocking(true)
        .map_err(|e| ServeError::Bind(a, e))?;
    Ok(l)
}

fn bind_pair(
    want: SocketAddr,
    workers: usize,
) -> std::io::Result<(Vec<std::net::UdpSocket>, std::net::TcpListener)> {
    let first = reuseport_udp(want)?;
    let addr = first.local_addr()?;
    let mut socks = vec![first];
    for _ in 1..workers {
        socks.push(reuseport_udp(addr)?);
    }
    let tcp = reuseport_tcp(addr)?;
    Ok((socks, tcp))
}
