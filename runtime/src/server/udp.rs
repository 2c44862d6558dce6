//! The UDP workers: one SO_REUSEPORT socket per worker, each on its own
//! thread blocking in `recvmmsg` (like a bare responder: no event loop on
//! the hot path), moving datagrams in batches ([`Batch`]: recvmmsg/sendmmsg
//! over buffers made once) through the worker's own [`Worker`] state. Work
//! that needs an upstream is spawned onto the server's runtime. In steady
//! state a query costs no allocation here.

use super::batch::Batch;
use super::pipeline::{process, Step, Worker};
use super::*;
use crate::observe::dnstap::Kind;

/// How often a blocked worker looks at the shutdown token.
const STOP_CHECK: Duration = Duration::from_millis(100);

pub(super) fn udp_worker(
    id: usize,
    sock: std::net::UdpSocket,
    shared: Arc<Shared>,
    stop: CancellationToken,
    rt: tokio::runtime::Handle,
) {
    use std::os::fd::AsRawFd;

    let local = sock
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let listener = local.to_string();
    // Blocking reads with a timeout: the kernel wakes the thread when a
    // datagram comes, and the timeout lets it notice shutdown.
    if let Err(e) = sock
        .set_nonblocking(false)
        .and_then(|()| sock.set_read_timeout(Some(STOP_CHECK)))
    {
        tracing::error!(error = %e, "cannot set up a UDP worker socket");
        return;
    }
    // Upstream answers are sent from tasks through a second handle on the
    // same socket (a UDP send never waits for long).
    let reply_sock = match sock.try_clone() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot share a UDP worker socket");
            return;
        }
    };
    // This thread alone writes its shard of the plugins' decision counters.
    crate::plugin::stats::own_shard(id);
    let mut worker = Worker::new(Some(id), listener.into());
    let fd = sock.as_raw_fd();
    let mut batch = Batch::new();
    // Question names of the batch, for the prefetch steps (kept: no
    // allocation once each has held a name).
    let mut names: Vec<String> = (0..super::batch::BATCH).map(|_| String::new()).collect();
    let mut rules = [None; super::batch::BATCH];
    let metrics = shared.metrics.shard(Some(id));
    // This worker's dnstap messages, handed to the writer once per batch.
    let mut tap = shared.dnstap.as_ref().map(|t| t.batch());
    while !stop.is_cancelled() {
        let got = match batch.recv_wait(fd) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::debug!(error = %e, "recv failed");
                continue;
            }
        };
        // One clock read per batch: every query of it waited for the same
        // system calls, and is answered by the same send.
        let start = Instant::now();
        if let Some(t) = tap.as_mut() {
            t.stamp();
        }
        prefetch(&shared, &batch, got, &mut names, &mut rules);
        let mut answered = 0;
        for k in 0..got {
            let (packet, from, out) = batch.datagram(k);
            let Some(from) = from else { continue };
            metrics.queries_udp.fetch_add(1, Relaxed);
            let step = process(&mut worker, &shared, packet, from, false, out);
            if let Some(t) = tap.as_mut() {
                match &step {
                    Step::Done(true) => t.exchange(false, from, local, packet, out),
                    _ => t.message(Kind::ClientQuery, false, from, local, packet),
                }
            }
            match step {
                Step::Done(true) => {
                    answered += 1;
                    batch.queue(k, from);
                }
                Step::Done(false) => {}
                Step::Upstream(job) => {
                    // Upstream work must not stall this socket's other
                    // queries, and is bounded: past the limit the query
                    // gets SERVFAIL at once instead of a task and sockets.
                    match shared.upstream_slots.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let (sock, shared) = (reply_sock.clone(), shared.clone());
                            rt.spawn(async move {
                                let out = job.run(&shared, false).await;
                                drop(permit);
                                shared.metrics.shard(Some(id)).observe(start.elapsed());
                                if let Some(bytes) = out {
                                    if let Some(t) = &shared.dnstap {
                                        t.log(Kind::ClientResponse, false, from, local, &bytes);
                                    }
                                    let _ = sock.send_to(&bytes, from);
                                }
                            });
                        }
                        Err(_) => {
                            metrics.upstream_failed.fetch_add(1, Relaxed);
                            if let Some(bytes) = job.servfail(&shared, false) {
                                if let Some(t) = tap.as_mut() {
                                    t.message(Kind::ClientResponse, false, from, local, &bytes);
                                }
                                let (_, _, out) = batch.datagram(k);
                                out.extend_from_slice(&bytes);
                                answered += 1;
                                batch.queue(k, from);
                            }
                        }
                    }
                }
            }
        }
        // Observed before sending, so a scrape never lags a reply.
        metrics.observe_n(start.elapsed(), answered);
        if let (Some(t), Some(b)) = (&shared.dnstap, tap.as_mut()) {
            t.send_batch(b);
        }
        // Whatever the kernel did not take at once (a full send buffer)
        // goes one by one, waiting.
        for (bytes, to) in batch.send(fd) {
            let _ = reply_sock.send_to(bytes, to);
        }
    }
}

/// Before a batch is decided: the question names are read, then each
/// prefetch step runs over all of them (see [`crate::plugin::Chain::prefetch`]),
/// so the cache misses of looking up one query overlap those of the others
/// instead of each query waiting for its own, one after another (measured
/// with the 100 000-rule suffix policy: its index, constants and verdicts
/// are far bigger than the caches). A lone query gains nothing from it.
fn prefetch(
    shared: &Shared,
    batch: &Batch,
    got: usize,
    names: &mut [String],
    rules: &mut [Option<u32>],
) {
    if got < 2 {
        return;
    }
    let chain = shared.chain.load();
    if !chain.prefetch {
        return;
    }
    let mut read = 0;
    for k in 0..got.min(names.len()) {
        if crate::dns::wire::question_name(batch.packet(k), &mut names[read]).is_some() {
            read += 1;
        }
    }
    chain.prefetch(&names[..read], rules);
}
