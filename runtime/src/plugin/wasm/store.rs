//! What each instance's store holds: the current call, the memory and its
//! cap (the [`ResourceLimiter`]), the stdout/stderr line buffers that reach
//! the server log, and per-instance caches.

use super::*;

/// `proc_exit(code)`: ends the call that made it.
#[derive(Debug)]
pub(super) struct Exit(pub(super) i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proc_exit({})", self.0)
    }
}

impl std::error::Error for Exit {}

/// Where a plugin's stdout/stderr lines go: the server log, through the
/// plugin's rate limit.
pub(super) struct LogSink {
    pub(super) plugin: Arc<str>,
    pub(super) gate: Arc<LogGate>,
}

impl LogSink {
    pub(super) fn line(&self, fd: i32, text: &[u8]) {
        if !self.gate.allow() {
            return;
        }
        let text = String::from_utf8_lossy(&text[..text.len().min(512)]);
        let plugin = &*self.plugin;
        if fd == 2 {
            tracing::warn!(%plugin, "wasm stderr: {text}");
        } else {
            tracing::info!(%plugin, "wasm stdout: {text}");
        }
    }
}

/// The store's data: the current call, the memory, the limits.
pub(super) struct Host {
    pub(super) call: Option<Call>,
    pub(super) memory: Option<Memory>,
    pub(super) mem_cap: usize,
    /// The last call or step hit the memory cap.
    pub(super) over_cap: bool,
    pub(super) log: Arc<LogSink>,
    pub(super) out: [Vec<u8>; 2],
    pub(super) rng: u64,
    pub(super) regexes: HashMap<Vec<u8>, Option<regex::bytes::Regex>>,
    pub(super) verdicts: HashMap<Vec<u8>, dnspolicy_compiler::Verdict>,
}

impl ResourceLimiter for Host {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.mem_cap {
            self.over_cap = true;
            return Err(wasmtime::Error::msg(format!(
                "memory cap of {} bytes reached",
                self.mem_cap
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }
}

impl Host {
    pub(super) fn write_out(&mut self, fd: i32, bytes: &[u8]) {
        let buf = &mut self.out[usize::from(fd == 2)];
        buf.extend_from_slice(bytes);
        // One pass over the buffer, one drain: linear in what was written.
        let mut start = 0;
        while let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
            self.log.line(fd, &buf[start..start + i]);
            start += i + 1;
        }
        buf.drain(..start);
        // A line without an end is flushed once it is long.
        if buf.len() > 512 {
            let line = std::mem::take(buf);
            self.log.line(fd, &line);
        }
    }

    pub(super) fn next_random(&mut self) -> u64 {
        // splitmix64: WASI random_get is for hash seeds and jitter, not keys.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
