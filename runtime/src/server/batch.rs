//! Batched UDP I/O: `recvmmsg` and `sendmmsg` over buffers and message
//! headers allocated once per worker, so the hot loop allocates nothing.
//!
//! The only `unsafe` of the server: the kernel reads and writes the
//! headers, vectors and buffers this struct owns. Every pointer stored in a
//! header points into a boxed slice of the same `Batch`, allocated in
//! [`Batch::new`] and never resized, so the pointers stay valid for as long
//! as the `Batch` lives (moving the struct does not move the slices).
#![allow(unsafe_code)]

use socket2::{SockAddr, SockAddrStorage};
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Datagrams moved per system call. Batching is what makes a UDP server
/// fast: at one syscall per packet the kernel, not the policy, is where the
/// time goes.
pub const BATCH: usize = 64;
/// Largest query datagram read (queries are small; a longer one arrives
/// truncated and is answered FORMERR).
pub const MAX_QUERY: usize = 4096;

/// One worker's receive and send buffers and headers.
pub struct Batch {
    bufs: Box<[[u8; MAX_QUERY]]>,
    /// One reply buffer per received datagram; capacity is kept.
    out: Box<[Vec<u8>]>,
    from: Box<[SockAddrStorage]>,
    iov_in: Box<[libc::iovec]>,
    hdr_in: Box<[libc::mmsghdr]>,
    to: Box<[libc::sockaddr_storage]>,
    iov_out: Box<[libc::iovec]>,
    hdr_out: Box<[libc::mmsghdr]>,
    /// Datagrams in the buffers after the last [`Batch::recv`].
    received: usize,
    /// Replies queued for [`Batch::send`]: (buffer index, destination).
    queued: [(u8, SocketAddr); BATCH],
    n_queued: usize,
}

// SAFETY: the raw pointers in the headers point into the struct's own
// boxed slices; the struct is used by one thread at a time (moved to the
// worker thread that owns it).
unsafe impl Send for Batch {}

fn zeroed<T>() -> T {
    // SAFETY: used for libc's plain-data structs (sockaddr_storage, iovec,
    // mmsghdr), for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    /// Buffers for [`BATCH`] datagrams each way.
    pub fn new() -> Batch {
        let mut b = Batch {
            bufs: vec![[0u8; MAX_QUERY]; BATCH].into_boxed_slice(),
            out: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            from: (0..BATCH).map(|_| SockAddrStorage::zeroed()).collect(),
            iov_in: (0..BATCH).map(|_| zeroed()).collect(),
            hdr_in: (0..BATCH).map(|_| zeroed()).collect(),
            to: (0..BATCH).map(|_| zeroed()).collect(),
            iov_out: (0..BATCH).map(|_| zeroed()).collect(),
            hdr_out: (0..BATCH).map(|_| zeroed()).collect(),
            received: 0,
            queued: [(0, SocketAddr::from(([0, 0, 0, 0], 0))); BATCH],
            n_queued: 0,
        };
        for i in 0..BATCH {
            b.iov_in[i].iov_base = b.bufs[i].as_mut_ptr().cast();
            b.iov_in[i].iov_len = MAX_QUERY;
            let h = &mut b.hdr_in[i].msg_hdr;
            h.msg_iov = &raw mut b.iov_in[i];
            h.msg_iovlen = 1;
            h.msg_name = (&raw mut b.from[i]).cast();
            let h = &mut b.hdr_out[i].msg_hdr;
            h.msg_iov = &raw mut b.iov_out[i];
            h.msg_iovlen = 1;
            h.msg_name = (&raw mut b.to[i]).cast();
        }
        b
    }

    /// Waits for at least one datagram (on a blocking socket, up to its
    /// read timeout), then takes what else is queued, up to [`BATCH`].
    pub fn recv_wait(&mut self, fd: RawFd) -> std::io::Result<usize> {
        self.recv_flags(fd, libc::MSG_WAITFORONE)
    }

    fn recv_flags(&mut self, fd: RawFd, flags: libc::c_int) -> std::io::Result<usize> {
        for h in self.hdr_in.iter_mut() {
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            h.msg_len = 0;
        }
        // SAFETY: the headers point at BATCH valid buffers and address
        // slots owned by `self` (see the module doc).
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdr_in.as_mut_ptr(),
                BATCH as _,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.received = 0;
            return Err(std::io::Error::last_os_error());
        }
        self.received = n as usize;
        Ok(self.received)
    }

    /// Datagram `i` of the last receive and its sender, with reply buffer
    /// `i` (cleared) to answer into.
    pub fn datagram(&mut self, i: usize) -> (&[u8], Option<SocketAddr>, &mut Vec<u8>) {
        let len = (self.hdr_in[i].msg_len as usize).min(MAX_QUERY);
        let namelen = self.hdr_in[i].msg_hdr.msg_namelen;
        // SAFETY: the kernel wrote a socket address of `namelen` bytes into
        // `from[i]`, plain data that a bitwise copy duplicates.
        let from = unsafe { SockAddr::new(std::ptr::read(&self.from[i]), namelen) }.as_socket();
        let out = &mut self.out[i];
        out.clear();
        (&self.bufs[i][..len], from, out)
    }

    /// Datagram `i` as received.
    pub fn packet(&self, i: usize) -> &[u8] {
        let len = (self.hdr_in[i].msg_len as usize).min(MAX_QUERY);
        &self.bufs[i][..len]
    }

    /// Queues reply buffer `i` for `to`.
    pub fn queue(&mut self, i: usize, to: SocketAddr) {
        if self.n_queued < BATCH {
            self.queued[self.n_queued] = (i as u8, to);
            self.n_queued += 1;
        }
    }

    /// Sends the queued replies in one call; returns those the kernel did
    /// not take (to be sent one by one), as (buffer, destination).
    pub fn send(&mut self, fd: RawFd) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        let n = self.n_queued;
        for j in 0..n {
            let (i, to) = self.queued[j];
            let buf = &self.out[usize::from(i)];
            self.iov_out[j].iov_base = buf.as_ptr() as *mut libc::c_void;
            self.iov_out[j].iov_len = buf.len();
            let addr = SockAddr::from(to);
            // SAFETY: `addr` holds `addr.len()` valid bytes of a socket
            // address, which fit a sockaddr_storage.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    addr.as_ptr().cast::<u8>(),
                    (&raw mut self.to[j]).cast::<u8>(),
                    addr.len() as usize,
                );
            }
            self.hdr_out[j].msg_hdr.msg_namelen = addr.len();
            self.hdr_out[j].msg_len = 0;
        }
        let sent = if n == 0 {
            0
        } else {
            // SAFETY: the first `n` headers point at live reply buffers and
            // addresses owned by `self`.
            let r = unsafe {
                libc::sendmmsg(fd, self.hdr_out.as_mut_ptr(), n as _, libc::MSG_DONTWAIT)
            };
            usize::try_from(r).unwrap_or(0)
        };
        self.n_queued = 0;
        let out = &self.out;
        self.queued[sent.min(n)..n]
            .iter()
            .map(move |(i, to)| (out[usize::from(*i)].as_slice(), *to))
    }
}
