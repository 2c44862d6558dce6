//! Forwarding to upstream servers: each server of the pool in turn over
//! UDP with a timeout; an answer with TC set is fetched again over TCP from
//! the same server.

use crate::observe::dnstap::{Dnstap, Kind};
use hickory_proto::op::{Message, MessageType};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The EDNS payload size advertised upstream: large replies come over TCP
/// rather than as fragmented UDP (DNS flag day 2020).
const UPSTREAM_PAYLOAD: u16 = 1232;

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Every server of the pool timed out or failed.
    #[error("no upstream of the pool answered")]
    Exhausted,
}

/// Sends `query` to the servers in order and returns the first valid
/// response, its ID restored to the query's. The query's EDNS options (ECS
/// among them) go along unchanged; its advertised payload is capped.
pub async fn exchange(
    servers: &[SocketAddr],
    query: &Message,
    timeout: Duration,
) -> Result<Message, UpstreamError> {
    exchange_logged(servers, query, timeout, None).await
}

/// [`exchange`], logging FORWARDER_QUERY and FORWARDER_RESPONSE to `tap`
/// (the query side is this server, its address unspecified: each exchange
/// has a fresh socket).
pub async fn exchange_logged(
    servers: &[SocketAddr],
    query: &Message,
    timeout: Duration,
    tap: Option<&Dnstap>,
) -> Result<Message, UpstreamError> {
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    let client_id = query.metadata.id;
    for server in servers {
        let mut q = query.clone();
        q.metadata.id = rand_id();
        if let Some(e) = q.edns.as_mut() {
            let size = e.max_payload().clamp(512, UPSTREAM_PAYLOAD);
            e.set_max_payload(size);
        }
        let Ok(bytes) = q.to_vec() else {
            return Err(UpstreamError::Exhausted);
        };
        if let Some(t) = tap {
            t.log(Kind::ForwarderQuery, false, unspecified, *server, &bytes);
        }
        let Some(resp) = try_udp(*server, &bytes, &q, timeout).await else {
            tracing::debug!(%server, "upstream did not answer over UDP; next server");
            continue;
        };
        let mut resp = if resp.metadata.truncation {
            try_tcp(*server, &bytes, &q, timeout).await.unwrap_or(resp)
        } else {
            resp
        };
        if let Some(t) = tap {
            if let Ok(wire) = resp.to_vec() {
                t.log(Kind::ForwarderResponse, false, unspecified, *server, &wire);
            }
        }
        resp.metadata.id = client_id;
        return Ok(resp);
    }
    Err(UpstreamError::Exhausted)
}

fn rand_id() -> u16 {
    // Unpredictable IDs (with a fresh random source port per exchange)
    // protect forwarded queries from spoofed answers.
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    RandomState::new().hash_one(std::time::Instant::now()) as u16
}

fn matches(q: &Message, r: &Message) -> bool {
    r.metadata.message_type == MessageType::Response
        && r.metadata.id == q.metadata.id
        && r.queries == q.queries
}

async fn try_udp(
    server: SocketAddr,
    bytes: &[u8],
    q: &Message,
    timeout: Duration,
) -> Option<Message> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(bind).await.ok()?;
    sock.connect(server).await.ok()?;
    sock.send(bytes).await.ok()?;
    // Replies are at most UPSTREAM_PAYLOAD bytes (we said so); a longer one
    // arrives cut short, fails to parse, and the wait goes on to the timeout.
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        if let Ok(r) = Message::from_vec(&buf[..n]) {
            if matches(q, &r) {
                return Some(r);
            }
        }
    }
}

async fn try_tcp(
    server: SocketAddr,
    bytes: &[u8],
    q: &Message,
    timeout: Duration,
) -> Option<Message> {
    let fut = async {
        let mut s = TcpStream::connect(server).await.ok()?;
        let len = u16::try_from(bytes.len()).ok()?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(bytes);
        s.write_all(&framed).await.ok()?;
        let n = usize::from(s.read_u16().await.ok()?);
        let mut buf = vec![0u8; n];
        s.read_exact(&mut buf).await.ok()?;
        let r = Message::from_vec(&buf).ok()?;
        matches(q, &r).then_some(r)
    };
    tokio::time::timeout(timeout, fut).await.ok().flatten()
}
