//! The dnstap file, written around the page cache (`O_DIRECT`) where the
//! file system allows it.
//!
//! A busy server logs tens of megabytes a second. Through the page cache,
//! every byte is copied into newly allocated cache pages on the server's
//! own core (on a virtual machine each new page can cost a fault in the
//! host too: the copy ran at 0.7 GB/s here, against 3.5 GB/s into pages
//! already in use), and the cache fills with a log nobody reads back.
//! Direct writes hand whole blocks to the disk from one reused buffer.
//! They need 4 KiB-aligned memory, offsets and lengths: frames are copied
//! into an aligned staging buffer, and the last partial block stays with
//! the caller until more frames complete it. A log that goes quiet gets its
//! partial block written through the page cache (a second descriptor)
//! within [`QUIET`], so a reader following the file sees every message; the
//! next direct write of that block replaces it. File systems without
//! `O_DIRECT` (tmpfs) get ordinary writes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// The alignment and length unit of direct writes.
const BLOCK: usize = 4096;
/// How long a partial block may wait before it is written anyway.
pub const QUIET: Duration = Duration::from_secs(1);

/// An open dnstap file.
pub struct TapFile {
    /// `O_DIRECT` when `staging` is set.
    file: File,
    /// The same file without `O_DIRECT`, for the partial last block, and
    /// the staging buffer (`pad` bytes in, the first aligned byte).
    direct: Option<Direct>,
    /// Where the next whole block goes.
    at: u64,
    /// Since when the partial block has waited unwritten.
    waiting: Option<Instant>,
}

struct Direct {
    plain: File,
    staging: Vec<u8>,
    pad: usize,
    size: usize,
}

impl TapFile {
    /// Creates (truncates) the file; `staging` is the largest direct write.
    pub fn create(path: &Path, staging: usize) -> std::io::Result<TapFile> {
        let direct = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(path);
        let (file, direct) = match direct {
            Ok(file) => {
                let plain = OpenOptions::new().write(true).open(path)?;
                let size = staging.div_ceil(BLOCK) * BLOCK;
                // Never grown, so the aligned offset found now stays aligned.
                let staging = vec![0u8; size + BLOCK];
                let pad = staging.as_ptr().align_offset(BLOCK);
                let d = Direct {
                    plain,
                    staging,
                    pad,
                    size,
                };
                (file, Some(d))
            }
            Err(_) => (File::create(path)?, None),
        };
        Ok(TapFile {
            file,
            direct,
            at: 0,
            waiting: None,
        })
    }

    /// Whether writes bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Writes the whole blocks of `out` and removes them from it; the
    /// partial block stays in `out` (written through the page cache too
    /// when it has waited [`QUIET`]). With `all`, everything is written and
    /// `out` is emptied: the end of the log.
    pub fn write(&mut self, out: &mut Vec<u8>, all: bool) -> std::io::Result<()> {
        let Some(d) = self.direct.as_mut() else {
            self.file.write_all(out)?;
            out.clear();
            return Ok(());
        };
        let whole = out.len() / BLOCK * BLOCK;
        let mut done = 0;
        while done < whole {
            let n = (whole - done).min(d.size);
            let block = &mut d.staging[d.pad..d.pad + n];
            block.copy_from_slice(&out[done..done + n]);
            self.file.write_all_at(block, self.at)?;
            self.at += n as u64;
            done += n;
        }
        out.drain(..done);
        if done > 0 {
            self.waiting = None;
        }
        if out.is_empty() {
            return Ok(());
        }
        let waited = *self.waiting.get_or_insert_with(Instant::now);
        if all || waited.elapsed() >= QUIET {
            d.plain.write_all_at(out, self.at)?;
            self.waiting = Some(Instant::now());
        }
        if all {
            self.at += out.len() as u64;
            out.clear();
            d.plain.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole blocks go direct, the rest waits; the end writes all of it,
    /// and the file holds exactly the bytes given, in order. The same on
    /// tmpfs, which has no `O_DIRECT` (ordinary writes).
    #[test]
    fn the_file_holds_every_byte_in_order() {
        let name = format!("tapfile-{}", std::process::id());
        holds_every_byte(&std::env::temp_dir().join(&name));
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            holds_every_byte(&shm.join(&name));
        }
    }

    fn holds_every_byte(dir: &Path) {
        std::fs::create_dir_all(dir).expect("dir");
        let path = dir.join("t.fstrm");
        let mut f = TapFile::create(&path, 8192).expect("create");
        let mut want = Vec::new();
        let mut out = Vec::new();
        for i in 0..5000u32 {
            let chunk: Vec<u8> = (0..(i % 97) as u8).map(|b| b ^ i as u8).collect();
            out.extend_from_slice(&chunk);
            want.extend_from_slice(&chunk);
            if i % 300 == 0 {
                f.write(&mut out, false).expect("write");
                if f.is_direct() {
                    assert!(out.len() < BLOCK, "whole blocks are written");
                }
            }
        }
        f.write(&mut out, true).expect("end");
        assert!(out.is_empty());
        drop(f);
        assert_eq!(std::fs::read(&path).expect("read"), want);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A quiet log's partial block reaches the file after `QUIET`, and a
    /// later direct write of that block does not lose it.
    #[test]
    fn a_quiet_log_is_readable() {
        let dir = std::env::temp_dir().join(format!("tapfile-q-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.fstrm");
        let mut f = TapFile::create(&path, 8192).expect("create");
        let mut out = b"first".to_vec();
        f.write(&mut out, false).expect("write");
        std::thread::sleep(QUIET + Duration::from_millis(50));
        f.write(&mut out, false).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        out.extend(std::iter::repeat_n(7u8, 3 * BLOCK));
        let mut want = out.clone();
        f.write(&mut out, false).expect("write");
        want.truncate(want.len() - out.len());
        let on_disk = std::fs::read(&path).expect("read");
        assert_eq!(&on_disk[..want.len()], &want[..]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
