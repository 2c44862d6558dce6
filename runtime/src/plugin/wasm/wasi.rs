//! The WASI allow-list: what each function of
//! [`dnspolicy_compiler::abi::WASI_IMPORTS`] does here (stdout and stderr
//! into the log, clocks, random, exit; files and directories unreachable).

use super::*;

/// What a WASI function of the allow-list does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wasi {
    /// Returns `errno` and does nothing else.
    Errno(i32),
    FdWrite,
    FdRead,
    FdFdstatGet,
    ClockTimeGet,
    ClockResGet,
    RandomGet,
    ProcExit,
    /// `args_sizes_get` / `environ_sizes_get`: zero entries, zero bytes.
    SizesEmpty,
}

pub(super) const ERRNO_BADF: i32 = 8;
pub(super) const ERRNO_INVAL: i32 = 28;
pub(super) const ERRNO_NOTSUP: i32 = 58;
pub(super) const ERRNO_SPIPE: i32 = 70;

/// What each function of the allow-list does here; `None` for a name
/// that is not on it.
pub(super) fn behaviour(name: &str) -> Option<Wasi> {
    Some(match name {
        "fd_write" => Wasi::FdWrite,
        "fd_read" => Wasi::FdRead,
        "fd_fdstat_get" => Wasi::FdFdstatGet,
        "fd_seek" | "fd_tell" => Wasi::Errno(ERRNO_SPIPE),
        "fd_close" | "fd_sync" | "fd_fdstat_set_flags" | "fd_filestat_get" | "fd_readdir" => {
            Wasi::Errno(ERRNO_BADF)
        }
        // No directory is preopened, so no path can be reached.
        "fd_prestat_get"
        | "fd_prestat_dir_name"
        | "path_open"
        | "path_filestat_get"
        | "path_create_directory"
        | "path_remove_directory"
        | "path_unlink_file"
        | "path_rename" => Wasi::Errno(ERRNO_BADF),
        "clock_time_get" => Wasi::ClockTimeGet,
        "clock_res_get" => Wasi::ClockResGet,
        "random_get" => Wasi::RandomGet,
        "proc_exit" => Wasi::ProcExit,
        "sched_yield" | "args_get" | "environ_get" => Wasi::Errno(0),
        "poll_oneoff" => Wasi::Errno(ERRNO_NOTSUP),
        "args_sizes_get" | "environ_sizes_get" => Wasi::SizesEmpty,
        _ => return None,
    })
}

pub(super) fn wasi_call(c: &mut Cx<'_>, what: Wasi, args: &[Val]) -> wasmtime::Result<Option<i32>> {
    let a = |i: usize| args.get(i).and_then(Val::i32).unwrap_or(0);
    Ok(Some(match what {
        Wasi::Errno(e) => e,
        Wasi::ProcExit => return Err(wasmtime::Error::new(Exit(a(0)))),
        Wasi::FdWrite => {
            let (fd, iovs, n, out) = (a(0), a(1), a(2), a(3));
            if fd != 1 && fd != 2 {
                return Ok(Some(ERRNO_BADF));
            }
            if !(0..=1024).contains(&n) {
                return Ok(Some(ERRNO_INVAL));
            }
            let table = read(c, iovs, n * 8)?;
            let mut total = 0u32;
            let mut budget = MAX_WRITE_BYTES;
            for iov in table.chunks_exact(8) {
                let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                // Reported as written either way; past the budget it is dropped.
                range(c, ptr, len)?;
                total = total.saturating_add(len as u32);
                let take = (len as u32 as usize).min(budget);
                if take > 0 {
                    let bytes = read(c, ptr, take as i32)?;
                    budget -= take;
                    c.data_mut().write_out(fd, &bytes);
                }
            }
            write(c, out, 4, &total.to_le_bytes())?;
            0
        }
        Wasi::FdRead => {
            if a(0) != 0 {
                return Ok(Some(ERRNO_BADF));
            }
            // stdin is empty.
            write(c, a(3), 4, &0u32.to_le_bytes())?;
            0
        }
        Wasi::FdFdstatGet => {
            if !(0..=2).contains(&a(0)) {
                return Ok(Some(ERRNO_BADF));
            }
            // A character device, no flags; rights: fd_read or fd_write.
            let mut stat = [0u8; 24];
            stat[0] = 2;
            let rights: u64 = if a(0) == 0 { 1 << 1 } else { 1 << 6 };
            stat[8..16].copy_from_slice(&rights.to_le_bytes());
            write(c, a(1), 24, &stat)?;
            0
        }
        Wasi::ClockTimeGet => {
            let ns: u64 = match a(0) {
                0 => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
                1..=3 => {
                    static START: OnceLock<std::time::Instant> = OnceLock::new();
                    START
                        .get_or_init(std::time::Instant::now)
                        .elapsed()
                        .as_nanos() as u64
                }
                _ => return Ok(Some(ERRNO_INVAL)),
            };
            write(c, a(2), 8, &ns.to_le_bytes())?;
            0
        }
        Wasi::ClockResGet => {
            write(c, a(1), 8, &1000u64.to_le_bytes())?;
            0
        }
        Wasi::RandomGet => {
            let (ptr, len) = (a(0), a(1));
            if len as u32 as usize > MAX_ARG_BYTES {
                return Ok(Some(ERRNO_INVAL));
            }
            let r = range(c, ptr, len)?;
            let mut bytes = vec![0u8; r.len()];
            for chunk in bytes.chunks_mut(8) {
                let v = c.data_mut().next_random().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            write(c, ptr, len, &bytes)?;
            0
        }
        Wasi::SizesEmpty => {
            write(c, a(0), 4, &0u32.to_le_bytes())?;
            write(c, a(1), 4, &0u32.to_le_bytes())?;
            0
        }
    }))
}

pub(super) fn define_wasi(linker: &mut Linker<Host>, engine: &Engine) -> wasmtime::Result<()> {
    for abi in WASI_IMPORTS {
        let Some(what) = behaviour(abi.name) else {
            return Err(wasmtime::Error::msg(format!(
                "the WASI allow-list names `{}`, which the host does not implement",
                abi.name
            )));
        };
        linker.func_new(
            abi.module,
            abi.name,
            func_type(engine, abi),
            move |mut c, args, results| {
                if let Some(errno) = wasi_call(&mut c, what, args)? {
                    if let Some(r) = results.first_mut() {
                        *r = Val::I32(errno);
                    }
                }
                Ok(())
            },
        )?;
    }
    Ok(())
}
