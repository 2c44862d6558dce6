//! The DNS server: UDP workers (one SO_REUSEPORT socket each), a TCP
//! listener, the query pipeline, and graceful shutdown.

use crate::answer::{self, Built};
use crate::config::{Config, DEFAULT_POLICY, DEFAULT_REGIONS, DEFAULT_ZONE};
use crate::geo::Geo;
use crate::metrics::{verdict_index, Metrics};
use crate::plugin::{Chain, Decision, DslPlugin, Plugin};
use crate::query::{QueryCtx, QueryFacts};
use crate::upstream;
use crate::zone::Zone;
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
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

/// Starting the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A socket could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// Configuration, zone, GeoIP or plugin directory problem.
    #[error("{0}")]
    Setup(String),
}

/// What every worker shares.
pub struct Shared {
    /// The plugin chain; swapped whole on reload.
    pub chain: ArcSwap<Chain>,
    /// The local zone.
    pub zone: Zone,
    /// GeoIP sources.
    pub geo: Arc<Geo>,
    /// Upstream pools.
    pub upstreams: BTreeMap<String, Vec<SocketAddr>>,
    /// Counters.
    pub metrics: Metrics,
    /// `server.node`.
    pub node: String,
    /// Upstream timeout per try.
    pub timeout: Duration,
    /// Where plugins come from (`None`: the embedded example).
    pub plugin_dir: Option<std::path::PathBuf>,
    /// Upstream exchanges allowed in flight at once.
    pub upstream_slots: Arc<tokio::sync::Semaphore>,
    /// TCP connections allowed at once.
    pub tcp_slots: Arc<tokio::sync::Semaphore>,
    /// Reload counters and the last error.
    pub reloads: crate::reload::ReloadStats,
}

/// Upstream exchanges in flight at most (each holds a task and a socket).
pub const MAX_UPSTREAM_IN_FLIGHT: usize = 1024;
/// TCP connections at most.
pub const MAX_TCP_CONNECTIONS: usize = 512;

impl Shared {
    /// Builds the shared state from a config: zone, GeoIP and plugins (the
    /// embedded examples where the config names none).
    pub fn from_config(config: &Config) -> Result<Shared, ServeError> {
        let zone = match &config.zone {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    ServeError::Setup(format!("cannot read zone {}: {e}", p.display()))
                })?;
                Zone::parse(&text, &p.display().to_string())
                    .map_err(|e| ServeError::Setup(e.to_string()))?
            }
            None => Zone::parse(DEFAULT_ZONE, "embedded example.zone")
                .map_err(|e| ServeError::Setup(e.to_string()))?,
        };
        let geo = if config.geoip.is_empty() {
            let mut g = Geo::empty();
            g.add_csv_text(
                DEFAULT_REGIONS,
                Path::new("embedded examples/geo/regions.csv"),
            )
            .map_err(|e| ServeError::Setup(e.to_string()))?;
            g
        } else {
            Geo::open(&config.geoip).map_err(|e| ServeError::Setup(e.to_string()))?
        };
        let chain = load_chain(config.plugin_dir.as_deref())?;
        Ok(Shared {
            chain: ArcSwap::from_pointee(chain),
            zone,
            geo: Arc::new(geo),
            upstreams: config.upstreams.clone(),
            metrics: Metrics::default(),
            node: config.node.clone(),
            timeout: Duration::from_millis(config.upstream_timeout_ms),
            plugin_dir: config.plugin_dir.clone(),
            upstream_slots: Arc::new(tokio::sync::Semaphore::new(MAX_UPSTREAM_IN_FLIGHT)),
            tcp_slots: Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS)),
            reloads: crate::reload::ReloadStats::default(),
        })
    }
}

/// Loads the plugin chain from a directory, or the embedded example.
pub fn load_chain(dir: Option<&Path>) -> Result<Chain, ServeError> {
    match dir {
        Some(d) => Chain::load_dir(d).map_err(|e| {
            ServeError::Setup(format!("cannot read plugin directory {}: {e}", d.display()))
        }),
        None => {
            let p = DslPlugin::compile(
                "geo_redirect",
                DEFAULT_POLICY,
                Path::new("embedded geo_redirect.dsl"),
            )
            .map_err(|e| ServeError::Setup(e.to_string()))?;
            let plugins: Vec<(Box<dyn Plugin>, i64, std::path::PathBuf)> =
                vec![(Box::new(p), 0, "embedded/geo_redirect.dsl".into())];
            Ok(Chain::from_plugins(plugins))
        }
    }
}

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    udp: Vec<std::net::UdpSocket>,
    tcp: Vec<std::net::TcpListener>,
    admin: Option<std::net::TcpListener>,
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
        let admin = match config.admin {
            Some(a) => {
                let l = std::net::TcpListener::bind(a).map_err(|e| ServeError::Bind(a, e))?;
                l.set_nonblocking(true)
                    .map_err(|e| ServeError::Bind(a, e))?;
                Some(l)
            }
            None => None,
        };
        Ok(Server {
            shared: Arc::new(shared),
            udp,
            tcp,
            admin,
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

    /// The shared state (for reload and admin).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` is cancelled. Queries being processed when it
    /// is cancelled finish; upstream exchanges still waiting for an answer
    /// and idle TCP connections are abandoned.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServeError> {
        let mut tasks = tokio::task::JoinSet::new();
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
        // Each UDP socket gets its own thread and single-threaded runtime:
        // no work stealing between cores on the hot path, and the batch
        // buffers stay on their thread.
        let mut threads = Vec::new();
        for (i, s) in self.udp.into_iter().enumerate() {
            let shared = self.shared.clone();
            let stop = shutdown.clone();
            let t = std::thread::Builder::new()
                .name(format!("dnspolicy-udp-{i}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start a UDP worker runtime");
                            return;
                        }
                    };
                    rt.block_on(async move {
                        match UdpSocket::from_std(s) {
                            Ok(sock) => udp_worker(Arc::new(sock), shared, stop).await,
                            Err(e) => tracing::error!(error = %e, "cannot register a UDP socket"),
                        }
                    });
                })
                .map_err(|e| ServeError::Setup(format!("cannot start a UDP worker: {e}")))?;
            threads.push(t);
        }
        for l in self.tcp {
            let listener =
                TcpListener::from_std(l).map_err(|e| ServeError::Setup(e.to_string()))?;
            tasks.spawn(tcp_accept(listener, self.shared.clone(), shutdown.clone()));
        }
        if let Some(a) = self.admin {
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
        Ok(())
    }
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

/// Datagrams moved per system call. Batching with recvmmsg/sendmmsg is what
/// makes a UDP server fast: at one syscall per packet the kernel, not the
/// policy, is where the time goes.
const BATCH: usize = 32;
/// Largest query datagram read (queries are small; a longer one arrives
/// truncated and is answered FORMERR).
const MAX_QUERY: usize = 4096;

async fn udp_worker(sock: Arc<UdpSocket>, shared: Arc<Shared>, stop: CancellationToken) {
    use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
    use std::io::{IoSlice, IoSliceMut};
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;

    let listener = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let listener: Arc<str> = listener.into();
    let fd = sock.as_raw_fd();
    let mut bufs = vec![[0u8; MAX_QUERY]; BATCH];
    let mut recv_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut received: Vec<(usize, Option<SocketAddr>)> = Vec::with_capacity(BATCH);
    let mut replies: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            r = sock.readable() => if r.is_err() { continue },
        }
        // Drain what is queued, a batch per syscall; yield now and then so
        // TCP and upstream tasks get a turn.
        for _ in 0..64 {
            received.clear();
            let got = sock.try_io(Interest::READABLE, || {
                let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                    .iter_mut()
                    .map(|b| [IoSliceMut::new(&mut b[..])])
                    .collect();
                let res = recvmmsg(
                    fd,
                    &mut recv_hdrs,
                    iovs.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                )
                .map_err(std::io::Error::from)?;
                for m in res {
                    received.push((m.bytes, m.address.and_then(|a| to_std(&a))));
                }
                Ok(())
            });
            match got {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "recv failed");
                    continue;
                }
            }
            if received.is_empty() {
                break;
            }
            for (k, &(n, from)) in received.iter().enumerate() {
                let Some(from) = from else { continue };
                let start = Instant::now();
                shared.metrics.queries_udp.fetch_add(1, Relaxed);
                match process(
                    &shared,
                    &bufs[k][..n.min(MAX_QUERY)],
                    from,
                    false,
                    &listener,
                ) {
                    Step::Done(Some(bytes)) => {
                        // Observed before sending, so a scrape never lags a reply.
                        shared.metrics.observe(start.elapsed());
                        replies.push((bytes, from));
                    }
                    Step::Done(None) => {}
                    Step::Upstream(job) => {
                        // Upstream work must not stall this socket's other
                        // queries, and is bounded: past the limit the query
                        // gets SERVFAIL at once instead of a task and sockets.
                        match shared.upstream_slots.clone().try_acquire_owned() {
                            Ok(permit) => {
                                let (sock, shared) = (sock.clone(), shared.clone());
                                tokio::spawn(async move {
                                    let out = job.run(&shared, false).await;
                                    drop(permit);
                                    shared.metrics.observe(start.elapsed());
                                    if let Some(bytes) = out {
                                        let _ = sock.send_to(&bytes, from).await;
                                    }
                                });
                            }
                            Err(_) => {
                                shared.metrics.upstream_failed.fetch_add(1, Relaxed);
                                if let Some(bytes) = job.servfail(&shared, false) {
                                    replies.push((bytes, from));
                                }
                            }
                        }
                    }
                }
            }
            if !replies.is_empty() {
                let sent = {
                    let slices: Vec<[IoSlice<'_>; 1]> =
                        replies.iter().map(|(b, _)| [IoSlice::new(b)]).collect();
                    let addrs: Vec<Option<SockaddrStorage>> = replies
                        .iter()
                        .map(|(_, a)| Some(SockaddrStorage::from(*a)))
                        .collect();
                    sock.try_io(Interest::WRITABLE, || {
                        sendmmsg(
                            fd,
                            &mut send_hdrs,
                            slices.iter(),
                            &addrs,
                            [],
                            MsgFlags::MSG_DONTWAIT,
                        )
                        .map(|r| r.count())
                        .map_err(std::io::Error::from)
                    })
                    .unwrap_or(0)
                };
                // Whatever the kernel did not take in the batch goes one by one.
                for (bytes, to) in replies.iter().skip(sent) {
                    let _ = sock.send_to(bytes, *to).await;
                }
                replies.clear();
            }
            if received.len() < BATCH {
                break;
            }
        }
        tokio::task::yield_now().await;
    }
}

fn to_std(a: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

async fn tcp_accept(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let name: Arc<str> = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
        .into();
    loop {
        let (stream, from) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors (EMFILE) fails every accept at
                    // once: back off instead of spinning.
                    tracing::warn!(error = %e, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Past the limit, new connections are closed at once.
        let Ok(permit) = shared.tcp_slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (shared, stop, name) = (shared.clone(), stop.clone(), name.clone());
        tokio::spawn(async move {
            let _ = tcp_conn(stream, from, shared, stop, name).await;
            drop(permit);
        });
    }
}

/// One TCP connection: length-prefixed queries until EOF, 10 s idle, or shutdown.
async fn tcp_conn(
    mut stream: TcpStream,
    from: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    listener: Arc<str>,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    loop {
        let len = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = tokio::time::timeout(Duration::from_secs(10), stream.read_u16()) => match r {
                Ok(Ok(l)) => usize::from(l),
                _ => return Ok(()),
            },
        };
        let mut buf = vec![0u8; len];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buf)).await??;
        let start = Instant::now();
        shared.metrics.queries_tcp.fetch_add(1, Relaxed);
        let out = match process(&shared, &buf, from, true, &listener) {
            Step::Done(o) => o,
            Step::Upstream(job) => match shared.upstream_slots.clone().try_acquire_owned() {
                Ok(_permit) => job.run(&shared, true).await,
                Err(_) => job.servfail(&shared, true),
            },
        };
        let Some(bytes) = out else { continue };
        let Ok(len) = u16::try_from(bytes.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        shared.metrics.observe(start.elapsed());
        // A client that never reads must not hold the connection for ever.
        tokio::time::timeout(Duration::from_secs(10), stream.write_all(&framed)).await??;
    }
}

/// The outcome of the synchronous part of the pipeline.
enum Step {
    /// Send these bytes (or nothing).
    Done(Option<Vec<u8>>),
    /// Needs an upstream exchange first (boxed: rare, and large).
    Upstream(Box<Job>),
}

/// Upstream work for one query.
struct Job {
    req: Message,
    kind: JobKind,
}

enum JobKind {
    /// Relay the pool's answer; the ECS echo says what our own decision
    /// (to forward) depended on.
    Forward(String, Option<(std::net::IpAddr, u8, u8)>),
    /// Complete a rewrite: append the target's records from the default pool.
    Resolve {
        partial: Box<Message>,
        target: Name,
        ecs: Option<(std::net::IpAddr, u8, u8)>,
    },
}

impl Job {
    /// SERVFAIL for this query without any upstream work.
    fn servfail(&self, shared: &Shared, tcp: bool) -> Option<Vec<u8>> {
        let r = answer::error(&self.req, ResponseCode::ServFail);
        reply(shared, r, &self.req, None, tcp)
    }

    async fn run(self, shared: &Shared, tcp: bool) -> Option<Vec<u8>> {
        let m = &shared.metrics;
        match self.kind {
            JobKind::Forward(pool, ecs) => {
                let Some(servers) = shared.upstreams.get(&pool) else {
                    tracing::warn!(%pool, "forward to an unknown upstream pool");
                    return reply(
                        shared,
                        answer::error(&self.req, ResponseCode::ServFail),
                        &self.req,
                        None,
                        tcp,
                    );
                };
                match upstream::exchange(servers, &self.req, shared.timeout).await {
                    Ok(mut resp) => {
                        m.upstream_ok.fetch_add(1, Relaxed);
                        m.rcode(u16::from(resp.metadata.response_code));
                        answer::merge_ecs_scope(&mut resp, ecs);
                        let bytes = resp.to_vec().ok()?;
                        let limit = if tcp {
                            usize::from(u16::MAX)
                        } else {
                            answer::udp_limit(&self.req)
                        };
                        if bytes.len() <= limit {
                            Some(bytes)
                        } else {
                            resp.truncate().to_vec().ok()
                        }
                    }
                    Err(e) => {
                        m.upstream_failed.fetch_add(1, Relaxed);
                        tracing::debug!(%pool, error = %e, "upstream failed");
                        reply(
                            shared,
                            answer::error(&self.req, ResponseCode::ServFail),
                            &self.req,
                            None,
                            tcp,
                        )
                    }
                }
            }
            JobKind::Resolve {
                mut partial,
                target,
                ecs,
            } => {
                if let Some(servers) = shared.upstreams.get("default") {
                    let mut q = Message::query();
                    q.metadata.recursion_desired = true;
                    let qtype = self.req.queries.first().map(|q| q.query_type)?;
                    q.add_query(hickory_proto::op::Query::query(target, qtype));
                    match upstream::exchange(servers, &q, shared.timeout).await {
                        Ok(resp) => {
                            m.upstream_ok.fetch_add(1, Relaxed);
                            // Data from elsewhere: not authoritative, and the
                            // chain's last name decides the RCODE (RFC 6604).
                            partial.metadata.authoritative = false;
                            if resp.metadata.response_code == ResponseCode::NXDomain {
                                partial.metadata.response_code = ResponseCode::NXDomain;
                            }
                            partial.answers.extend(resp.answers);
                        }
                        Err(_) => {
                            m.upstream_failed.fetch_add(1, Relaxed);
                        }
                    }
                }
                reply(shared, *partial, &self.req, ecs, tcp)
            }
        }
    }
}

fn reply(
    shared: &Shared,
    r: Message,
    req: &Message,
    ecs: Option<(std::net::IpAddr, u8, u8)>,
    tcp: bool,
) -> Option<Vec<u8>> {
    shared.metrics.rcode(u16::from(r.metadata.response_code));
    answer::finish(r, req, ecs, tcp, shared.upstreams.contains_key("default"))
}

/// The synchronous pipeline: parse, check, decide, build.
fn process(shared: &Shared, packet: &[u8], from: SocketAddr, tcp: bool, listener: &str) -> Step {
    let m = &shared.metrics;
    // Never answer a response (reflection loops) or a runt.
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        m.malformed.fetch_add(1, Relaxed);
        return Step::Done(None);
    }
    // Exactly one question: checked on the raw header first, so a packet
    // claiming 65 535 questions costs nothing to refuse.
    if packet[4..6] != [0, 1] {
        m.malformed.fetch_add(1, Relaxed);
        m.rcode(u16::from(ResponseCode::FormErr.low()));
        return Step::Done(answer::formerr_raw(packet));
    }
    let req = match Message::from_vec(packet) {
        Ok(r) => r,
        Err(_) => {
            m.malformed.fetch_add(1, Relaxed);
            m.rcode(u16::from(ResponseCode::FormErr.low()));
            return Step::Done(answer::formerr_raw(packet));
        }
    };
    if req.metadata.message_type != MessageType::Query {
        return Step::Done(None);
    }
    if let Err(rcode) = answer::precheck(&req) {
        return Step::Done(reply(shared, answer::error(&req, rcode), &req, None, tcp));
    }
    // ECS lives in the OPT record: without one there is nothing to walk.
    let ecs_option = if req.edns.is_some() {
        crate::ecs::query_ecs(packet)
    } else {
        Ok(None)
    };
    let ecs = match ecs_option {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!(client = %from, error = %e, "malformed client subnet");
            m.malformed.fetch_add(1, Relaxed);
            return Step::Done(reply(
                shared,
                answer::error(&req, ResponseCode::FormErr),
                &req,
                None,
                tcp,
            ));
        }
    };
    let Some(q) = req.queries.first() else {
        return Step::Done(None);
    };
    let ascii = q.name.to_lowercase().to_ascii();
    let qname = ascii.strip_suffix('.').unwrap_or(&ascii);
    let facts = QueryFacts {
        client: from.ip(),
        ecs,
        qname: qname.into(),
        qtype: u16::from(q.query_type),
        qclass: class_name(u16::from(q.query_class)),
        transport: if tcp { "tcp" } else { "udp" },
        dnssec_ok: req.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
        recursion_desired: req.metadata.recursion_desired,
    };
    let chain = shared.chain.load();
    let mut ctx = QueryCtx::new(&facts, &shared.geo, listener, &shared.node);
    let pools = |p: &str| shared.upstreams.contains_key(p);
    let mut start = 0;
    let built = loop {
        match chain.decide_from(start, &mut ctx) {
            Some((_, Decision::Records(records))) => {
                m.verdicts[verdict_index("answer")].fetch_add(1, Relaxed);
                break Built::Reply(answer::records(&req, records));
            }
            Some((i, Decision::Decide { verdict, .. })) => {
                let built = answer::build(&req, &verdict, &shared.zone, tcp, &pools);
                if matches!(built, Built::Skip) {
                    start = i + 1;
                    continue;
                }
                m.verdicts[verdict_index(verdict.action())].fetch_add(1, Relaxed);
                break built;
            }
            _ => {
                // No plugin decided: the zone answers its own names, then
                // the default pool, else REFUSED.
                if let Some(b) = answer::from_zone(&req, &shared.zone) {
                    m.verdicts[verdict_index("default_zone")].fetch_add(1, Relaxed);
                    break b;
                }
                if shared.upstreams.contains_key("default") {
                    m.verdicts[verdict_index("default_forward")].fetch_add(1, Relaxed);
                    break Built::Forward("default".into());
                }
                m.verdicts[verdict_index("default_refuse")].fetch_add(1, Relaxed);
                break Built::Reply(answer::error(&req, ResponseCode::Refused));
            }
        }
    };
    m.missing_reads.fetch_add(u64::from(ctx.missing()), Relaxed);
    let ecs_echo = facts.ecs.map(|e| (e.addr, e.source, ctx.ecs_scope()));
    match built {
        Built::Reply(r) => Step::Done(reply(shared, r, &req, ecs_echo, tcp)),
        Built::Drop => {
            m.dropped.fetch_add(1, Relaxed);
            Step::Done(None)
        }
        Built::Forward(pool) => Step::Upstream(Box::new(Job {
            req,
            kind: JobKind::Forward(pool, ecs_echo),
        })),
        Built::ResolveOutside { partial, target } => {
            if shared.upstreams.contains_key("default") {
                Step::Upstream(Box::new(Job {
                    req,
                    kind: JobKind::Resolve {
                        partial: Box::new(partial),
                        target,
                        ecs: ecs_echo,
                    },
                }))
            } else {
                Step::Done(reply(shared, partial, &req, ecs_echo, tcp))
            }
        }
        Built::Skip => Step::Done(None),
    }
}

fn class_name(c: u16) -> &'static str {
    match c {
        1 => "IN",
        3 => "CH",
        4 => "HS",
        254 => "NONE",
        255 => "ANY",
        _ => "OTHER",
    }
}
