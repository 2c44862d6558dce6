//! The UDP workers: one SO_REUSEPORT socket per worker, each on its own
//! thread and single-threaded runtime, moving datagrams in batches
//! ([`Batch`]: recvmmsg/sendmmsg over buffers made once) through the
//! worker's own [`Worker`] state; upstream work is spawned off the hot loop.
//! In steady state a query costs no allocation here.

use super::batch::{Batch, BATCH};
use super::pipeline::{process, Step, Worker};
use super::*;

pub(super) async fn udp_worker(
    id: usize,
    sock: Arc<UdpSocket>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;

    let listener = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut worker = Worker::new(Some(id), listener.into());
    let fd = sock.as_raw_fd();
    let mut batch = Batch::new();
    let metrics = shared.metrics.shard(Some(id));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            r = sock.readable() => if r.is_err() { continue },
        }
        // Drain what is queued, a batch per syscall; yield now and then so
        // upstream tasks get a turn.
        for _ in 0..64 {
            let got = match sock.try_io(Interest::READABLE, || batch.recv(fd)) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "recv failed");
                    continue;
                }
            };
            if got == 0 {
                break;
            }
            for k in 0..got {
                let (packet, from, out) = batch.datagram(k);
                let Some(from) = from else { continue };
                let start = Instant::now();
                metrics.queries_udp.fetch_add(1, Relaxed);
                match process(&mut worker, &shared, packet, from, false, out) {
                    Step::Done(true) => {
                        // Observed before sending, so a scrape never lags a reply.
                        metrics.observe(start.elapsed());
                        batch.queue(k, from);
                    }
                    Step::Done(false) => {}
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
                                    shared.metrics.shard(Some(id)).observe(start.elapsed());
                                    if let Some(bytes) = out {
                                        let _ = sock.send_to(&bytes, from).await;
                                    }
                                });
                            }
                            Err(_) => {
                                metrics.upstream_failed.fetch_add(1, Relaxed);
                                if let Some(bytes) = job.servfail(&shared, false) {
                                    let (_, _, out) = batch.datagram(k);
                                    out.extend_from_slice(&bytes);
                                    batch.queue(k, from);
                                }
                            }
                        }
                    }
                }
            }
            // Whatever the kernel did not take in the batch goes one by one
            // (a full send buffer: rare, so copying those is fine).
            let rest: Vec<(Vec<u8>, SocketAddr)> =
                batch.send(fd).map(|(b, t)| (b.to_vec(), t)).collect();
            for (bytes, to) in rest {
                let _ = sock.send_to(&bytes, to).await;
            }
            if got < BATCH {
                break;
            }
        }
        tokio::task::yield_now().await;
    }
}
