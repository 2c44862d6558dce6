//! Upstream pools of the HTTP front door: picking a member (round robin or
//! least requests) among those that are up, active health checks (an HTTP
//! GET, rise/fall) and passive ejection (connect errors, timeouts and 5xx
//! in a row take a member out for a while).

use super::config::{Balance, PoolConfig};
use super::Client;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One upstream server.
pub struct Member {
    /// Its address.
    pub addr: SocketAddr,
    /// The address as a URI authority (made once).
    pub authority: hyper::http::uri::Authority,
    /// What the active health check says (true without one).
    pub healthy: AtomicBool,
    /// Ejected until this many ms after the pool was made (0: not ejected).
    ejected_until: AtomicU64,
    /// Failures in a row (passive).
    failures: AtomicU32,
    /// Requests in flight.
    pub in_flight: AtomicUsize,
    /// Requests sent.
    pub requests: AtomicU64,
    /// Connect errors, timeouts and 5xx answers.
    pub errors: AtomicU64,
    /// Times it was ejected.
    pub ejections: AtomicU64,
}

/// A pool.
pub struct Pool {
    /// Its name.
    pub name: String,
    /// Its members, in configured order.
    pub members: Vec<Member>,
    config: PoolConfig,
    next: AtomicUsize,
    born: Instant,
    /// Requests that found no usable member (503).
    pub unavailable: AtomicU64,
    /// Upstream answers relayed, by status class 1xx..5xx.
    pub responses: [AtomicU64; 5],
}

/// A member picked for one request; the in-flight count drops with it.
pub struct Picked<'p> {
    /// The member.
    pub member: &'p Member,
    pool: &'p Pool,
}

impl Drop for Picked<'_> {
    fn drop(&mut self) {
        self.member.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Picked<'_> {
    /// The exchange worked (any answer below 500).
    pub fn ok(&self) {
        self.member.failures.store(0, Ordering::Relaxed);
    }

    /// The exchange failed: counts toward ejection.
    pub fn failed(&self) {
        self.member.errors.fetch_add(1, Ordering::Relaxed);
        let e = &self.pool.config.eject;
        if e.failures == 0 {
            return;
        }
        let n = self.member.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= e.failures {
            self.member.failures.store(0, Ordering::Relaxed);
            let until = self.pool.now_ms() + e.duration_ms.max(1);
            self.member.ejected_until.store(until, Ordering::Relaxed);
            self.member.ejections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(pool = %self.pool.name, member = %self.member.addr, failures = n, for_ms = e.duration_ms, "member ejected");
        }
    }
}

impl Pool {
    /// A pool from its config; every member starts healthy.
    pub fn new(name: &str, config: &PoolConfig) -> Result<Pool, String> {
        if config.members.is_empty() {
            return Err(format!("[http.pools.{name}] has no members"));
        }
        if let Some(h) = &config.health {
            if !h.path.starts_with('/') || h.rise == 0 || h.fall == 0 || h.interval_ms == 0 {
                return Err(format!(
                    "[http.pools.{name}.health]: path must start with `/`, rise, fall and interval_ms above 0"
                ));
            }
        }
        Ok(Pool {
            name: name.to_string(),
            members: config
                .members
                .iter()
                .map(|&addr| Member {
                    addr,
                    authority: addr
                        .to_string()
                        .parse()
                        .unwrap_or_else(|_| hyper::http::uri::Authority::from_static("invalid")),
                    healthy: AtomicBool::new(true),
                    ejected_until: AtomicU64::new(0),
                    failures: AtomicU32::new(0),
                    in_flight: AtomicUsize::new(0),
                    requests: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    ejections: AtomicU64::new(0),
                })
                .collect(),
            config: config.clone(),
            next: AtomicUsize::new(0),
            born: Instant::now(),
            unavailable: AtomicU64::new(0),
            responses: Default::default(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// Whether a member may get requests now.
    pub fn usable(&self, m: &Member) -> bool {
        m.healthy.load(Ordering::Relaxed)
            && m.ejected_until.load(Ordering::Relaxed) <= self.now_ms()
    }

    /// How many members are usable now.
    pub fn usable_count(&self) -> usize {
        self.members.iter().filter(|m| self.usable(m)).count()
    }

    /// Picks a usable member, or `None` (the caller answers 503).
    pub fn pick(&self) -> Option<Picked<'_>> {
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let chosen = match self.config.balance {
            Balance::RoundRobin => (0..n)
                .map(|i| &self.members[(start + i) % n])
                .find(|m| self.usable(m)),
            Balance::LeastRequests => (0..n)
                .map(|i| &self.members[(start + i) % n])
                .filter(|m| self.usable(m))
                .min_by_key(|m| m.in_flight.load(Ordering::Relaxed)),
        };
        let Some(member) = chosen else {
            self.unavailable.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        member.in_flight.fetch_add(1, Ordering::Relaxed);
        member.requests.fetch_add(1, Ordering::Relaxed);
        Some(Picked { member, pool: self })
    }

    /// Starts one health-check task per member (none without `health`);
    /// they stop when the returned handles are dropped.
    pub fn start_checks(self: &Arc<Self>, client: &Client) -> Vec<AbortOnDrop> {
        let Some(h) = self.config.health.clone() else {
            return Vec::new();
        };
        (0..self.members.len())
            .map(|i| {
                let (pool, client, h) = (self.clone(), client.clone(), h.clone());
                AbortOnDrop(tokio::spawn(async move {
                    let m = &pool.members[i];
                    let (mut ups, mut downs) = (0u32, 0u32);
                    let mut tick = tokio::time::interval(Duration::from_millis(h.interval_ms));
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let ok = probe(&client, m.addr, &h.path, Duration::from_millis(h.timeout_ms)).await;
                        let (now_up, was_up) = if ok {
                            (ups, downs) = (ups + 1, 0);
                            (ups >= h.rise, m.healthy.load(Ordering::Relaxed))
                        } else {
                            (ups, downs) = (0, downs + 1);
                            (downs < h.fall, m.healthy.load(Ordering::Relaxed))
                        };
                        if ok && now_up && !was_up {
                            m.healthy.store(true, Ordering::Relaxed);
                            tracing::info!(pool = %pool.name, member = %m.addr, "member healthy again");
                        } else if !ok && !now_up && was_up {
                            m.healthy.store(false, Ordering::Relaxed);
                            tracing::warn!(pool = %pool.name, member = %m.addr, path = %h.path, "member failed its health check");
                        }
                    }
                }))
            })
            .collect()
    }
}

/// A task aborted when its handle goes.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One health check: GET `path`; a 2xx or 3xx answer within `timeout` passes.
async fn probe(client: &Client, addr: SocketAddr, path: &str, timeout: Duration) -> bool {
    let req = hyper::Request::get(format!("http://{addr}{path}"))
        .header(hyper::header::USER_AGENT, "dnspolicy-health-check")
        .body(
            Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        );
    let Ok(req) = req else { return false };
    let exchange = async {
        let resp = client.request(req).await.ok()?;
        let ok = resp.status().is_success() || resp.status().is_redirection();
        // Read the body so the connection can be reused.
        let _ = resp.into_body().collect().await;
        Some(ok)
    };
    matches!(
        tokio::time::timeout(timeout, exchange).await,
        Ok(Some(true))
    )
}
