//! The TCP listener: length-prefixed queries per connection, bounded in
//! connections, idle time and write time.

use super::pipeline::{process, Step, Worker};
use super::*;
use crate::observe::dnstap::Kind;

pub(super) async fn tcp_accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
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
        // Past either limit, new connections are closed at once: one
        // source may not hold every slot the server has.
        let Some(per_source) = shared.conns.admit(from.ip()) else {
            shared.access.tcp_source_limit.fetch_add(1, Relaxed);
            drop(stream);
            continue;
        };
        let Ok(permit) = shared.tcp_slots.clone().try_acquire_owned() else {
            shared.access.tcp_server_limit.fetch_add(1, Relaxed);
            drop(stream);
            continue;
        };
        let (shared, stop, name) = (shared.clone(), stop.clone(), name.clone());
        tokio::spawn(async move {
            let _ = tcp_conn(stream, from, shared, stop, name).await;
            drop(permit);
            drop(per_source);
        });
    }
}

/// Queries of one connection answered at once at most: upstream work is
/// concurrent (RFC 7766 §6.2.1.1: pipelined queries may be answered out of
/// order), and past this many the connection waits.
pub const MAX_TCP_IN_FLIGHT: usize = 32;

/// One TCP connection: length-prefixed queries until EOF, 10 s idle, or
/// shutdown. Answers the pipeline has at once go out in order; those that
/// need an upstream are answered when they are ready.
pub(super) async fn tcp_conn(
    stream: TcpStream,
    from: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    listener: Arc<str>,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let local = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(MAX_TCP_IN_FLIGHT);
    let writer = tokio::spawn(write_replies(wr, rx));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_IN_FLIGHT));
    let mut worker = Worker::new(None, listener);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let result = loop {
        let len = tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            r = tokio::time::timeout(Duration::from_secs(10), rd.read_u16()) => match r {
                Ok(Ok(l)) => usize::from(l),
                _ => break Ok(()),
            },
        };
        buf.resize(len, 0);
        match tokio::time::timeout(Duration::from_secs(10), rd.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => break Err(e),
            Err(e) => break Err(e.into()),
        }
        let start = Instant::now();
        shared.metrics.queries_tcp.fetch_add(1, Relaxed);
        let step = process(&mut worker, &shared, &buf, from, true, &mut out);
        if let Some(t) = &shared.dnstap {
            match &step {
                Step::Done(true) => t.log_exchange(true, from, local, &buf, &out),
                _ => t.log(Kind::ClientQuery, true, from, local, &buf),
            }
        }
        match step {
            Step::Done(true) => {
                shared.metrics.observe(start.elapsed());
                if tx.send(framed(&out)).await.is_err() {
                    break Ok(());
                }
            }
            Step::Done(false) => {}
            Step::Upstream(job) => {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break Ok(());
                };
                let (shared, tx) = (shared.clone(), tx.clone());
                tokio::spawn(async move {
                    let out = match shared.upstream_slots.clone().try_acquire_owned() {
                        Ok(_slot) => job.run(&shared, true).await,
                        Err(_) => job.servfail(&shared, true),
                    };
                    if let Some(bytes) = out {
                        shared.metrics.observe(start.elapsed());
                        if let Some(t) = &shared.dnstap {
                            t.log(Kind::ClientResponse, true, from, local, &bytes);
                        }
                        let _ = tx.send(framed(&bytes)).await;
                    }
                    drop(permit);
                });
            }
        }
    };
    // Answers still being worked on are sent before the connection closes.
    drop(tx);
    let _ = writer.await;
    result
}

/// A reply with its two-byte length (RFC 1035 §4.2.2).
fn framed(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    let mut f = Vec::with_capacity(bytes.len() + 2);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&bytes[..usize::from(len)]);
    f
}

/// Writes replies as they come; a client that never reads must not hold
/// the connection for ever.
async fn write_replies(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
) {
    while let Some(reply) = rx.recv().await {
        match tokio::time::timeout(Duration::from_secs(10), wr.write_all(&reply)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
    let _ = wr.shutdown().await;
}
