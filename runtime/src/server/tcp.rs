//! The TCP listener: length-prefixed queries per connection, bounded in
//! connections, idle time and write time.

use super::pipeline::{process, Step};
use super::*;

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
pub(super) async fn tcp_conn(
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
