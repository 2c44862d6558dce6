//! Seeing what the server does, off the query path: [`dnstap`] query logs
//! (Frame Streams + protobuf; files written by [`tapfile`]), the sampled [`decisions`] log (JSON lines)
//! and [`otel`] traces (OTLP/HTTP), each through a bounded queue that
//! drops rather than waits.
//!
//! Depends on nothing else in the runtime.

pub mod decisions;
pub mod dnstap;
pub mod otel;
pub mod tapfile;

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Ends a log's writer thread: queues `end` behind what is already queued
/// (retrying while the queue is full), then joins the thread. Gives up at
/// `wait`, so a stuck reader never holds shutdown.
fn end_writer<T>(
    tx: &SyncSender<T>,
    mut end: T,
    writer: &Mutex<Option<JoinHandle<()>>>,
    wait: Duration,
) {
    let Some(h) = writer.lock().ok().and_then(|mut w| w.take()) else {
        return;
    };
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match tx.try_send(end) {
            Err(TrySendError::Full(e)) => {
                end = e;
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => break,
        }
    }
    while !h.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if h.is_finished() {
        let _ = h.join();
    }
}
