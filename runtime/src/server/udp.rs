//! The UDP workers: one SO_REUSEPORT socket per worker, each on its own
//! thread and single-threaded runtime, moving datagrams in batches with
//! recvmmsg/sendmmsg; upstream work is spawned off the hot loop.

use super::pipeline::{process, Step};
use super::*;

/// Datagrams moved per system call. Batching with recvmmsg/sendmmsg is what
/// makes a UDP server fast: at one syscall per packet the kernel, not the
/// policy, is where the time goes.
pub(super) const BATCH: usize = 32;
/// Largest query datagram read (queries are small; a longer one arrives
/// truncated and is answered FORMERR).
pub(super) const MAX_QUERY: usize = 4096;

pub(super) async fn udp_worker(sock: Arc<UdpSocket>, shared: Arc<Shared>, stop: CancellationToken) {
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

pub(super) fn to_std(a: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}
