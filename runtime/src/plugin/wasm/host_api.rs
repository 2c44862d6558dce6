//! The host functions of module `dnspolicy` (the Lua `ctx` API, for WASM):
//! reading and writing the module's memory with bounds and size limits,
//! and each import of [`dnspolicy_compiler::abi::HOST_IMPORTS`].

use super::*;

pub(super) type Cx<'a> = Caller<'a, Host>;

pub(super) fn oob(ptr: i32, len: i32) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "out-of-bounds pointer passed to the host: {} bytes at {}",
        len as u32, ptr as u32
    ))
}

pub(super) fn range(c: &Cx<'_>, ptr: i32, len: i32) -> wasmtime::Result<std::ops::Range<usize>> {
    let mem = c.data().memory.ok_or_else(|| oob(ptr, len))?;
    let (start, n) = (ptr as u32 as usize, len as u32 as usize);
    let end = start.checked_add(n).ok_or_else(|| oob(ptr, len))?;
    if end > mem.data_size(c) {
        return Err(oob(ptr, len));
    }
    Ok(start..end)
}

/// Bytes of the module's memory; a bad pointer or an argument over
/// [`MAX_ARG_BYTES`] aborts the call.
pub(super) fn read(c: &mut Cx<'_>, ptr: i32, len: i32) -> wasmtime::Result<Arg> {
    read_max(c, ptr, len, MAX_ARG_BYTES)
}

pub(super) fn read_max(c: &mut Cx<'_>, ptr: i32, len: i32, max: usize) -> wasmtime::Result<Arg> {
    if len as u32 as usize > max {
        return Err(wasmtime::Error::msg(format!(
            "argument of {} bytes passed to the host; the limit is {max}",
            len as u32
        )));
    }
    let r = range(c, ptr, len)?;
    let mem = c.data().memory.ok_or_else(|| oob(ptr, len))?;
    Ok(Arg::from_slice(&mem.data(&*c)[r]))
}

/// An argument's bytes, copied out of the module's memory (the call may
/// change it); inline when short, as names and addresses are, so a call
/// allocates nothing for them.
pub(super) type Arg = smallvec::SmallVec<[u8; 64]>;

/// Text an argument holds (checked UTF-8).
pub(super) struct ArgText(Arg);

impl std::ops::Deref for ArgText {
    type Target = str;
    fn deref(&self) -> &str {
        // Checked when made: never the default.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Text from the module's memory; `None` when it is not UTF-8.
pub(super) fn read_str(c: &mut Cx<'_>, ptr: i32, len: i32) -> wasmtime::Result<Option<ArgText>> {
    let b = read(c, ptr, len)?;
    Ok(std::str::from_utf8(&b).is_ok().then_some(ArgText(b)))
}

/// Writes `bytes` at `ptr` when they fit in `cap`; returns their length
/// either way, so a module can retry with a larger buffer.
pub(super) fn write(c: &mut Cx<'_>, ptr: i32, cap: i32, bytes: &[u8]) -> wasmtime::Result<i32> {
    let r = range(c, ptr, cap)?;
    if bytes.len() <= r.len() {
        let mem = c.data().memory.ok_or_else(|| oob(ptr, cap))?;
        mem.data_mut(&mut *c)[r.start..r.start + bytes.len()].copy_from_slice(bytes);
    }
    Ok(bytes.len() as i32)
}

pub(super) fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The address argument of the geo calls: length 0 is the client.
pub(super) fn ip_arg(
    c: &mut Cx<'_>,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Option<Option<IpAddr>>> {
    Ok(match len {
        0 => Some(None),
        4 => {
            let b: [u8; 4] = read(c, ptr, 4)?[..].try_into().map_err(|_| oob(ptr, 4))?;
            Some(Some(IpAddr::from(b)))
        }
        16 => {
            let b: [u8; 16] = read(c, ptr, 16)?[..].try_into().map_err(|_| oob(ptr, 16))?;
            Some(Some(IpAddr::from(b)))
        }
        _ => None,
    })
}

pub(super) fn no_call() -> wasmtime::Error {
    wasmtime::Error::msg("host function called outside `process`")
}

/// Runs `f` on the current call; `None` outside `process` (in `init`).
pub(super) fn with_call<R>(c: &mut Cx<'_>, f: impl FnOnce(&mut Call) -> R) -> wasmtime::Result<R> {
    c.data_mut().call.as_mut().map(f).ok_or_else(no_call)
}

/// A host-side refusal of an argument: `-1`, and a note in the log.
pub(super) fn refused(c: &mut Cx<'_>, what: &str, e: impl std::fmt::Display) -> i32 {
    if let Some(call) = c.data_mut().call.as_mut() {
        call.note("wasm", "debug", &format!("{what}: {e}"));
    }
    -1
}

pub(super) fn geo_text(
    c: &mut Cx<'_>,
    ip: (i32, i32),
    buf: (i32, i32),
    pick: fn(&crate::geo::GeoInfo) -> &str,
) -> wasmtime::Result<i32> {
    let Some(ip) = ip_arg(c, ip.0, ip.1)? else {
        return Ok(-1);
    };
    match with_call(c, |call| call.geo_of(ip))? {
        Ok(info) => write(c, buf.0, buf.1, pick(&info).as_bytes()),
        Err(e) => Ok(refused(c, "geo", e)),
    }
}

pub(super) fn define_host(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    let m = IMPORT_MODULE;
    linker.func_wrap(m, "get_qname", |mut c: Cx<'_>, buf: i32, cap: i32| {
        let q = with_call(&mut c, |call| call.qname.clone())?;
        write(&mut c, buf, cap, q.as_bytes())
    })?;
    linker.func_wrap(m, "get_qtype", |mut c: Cx<'_>| {
        with_call(&mut c, |call| i32::from(call.qtype))
    })?;
    linker.func_wrap(m, "get_client_ip", |mut c: Cx<'_>, buf: i32, cap: i32| {
        let ip = with_call(&mut c, Call::client_ip)?;
        write(&mut c, buf, cap, &ip_bytes(ip))
    })?;
    linker.func_wrap(m, "get_source_ip", |mut c: Cx<'_>, buf: i32, cap: i32| {
        let ip = with_call(&mut c, |call| call.client)?;
        write(&mut c, buf, cap, &ip_bytes(ip))
    })?;
    linker.func_wrap(
        m,
        "get_ecs",
        |mut c: Cx<'_>, buf: i32, cap: i32| match with_call(&mut c, Call::ecs)? {
            Some((ip, len)) => {
                let mut b = ip_bytes(ip);
                b.push(len);
                write(&mut c, buf, cap, &b)
            }
            None => Ok(0),
        },
    )?;
    linker.func_wrap(
        m,
        "geo_region",
        |mut c: Cx<'_>, ip: i32, ip_len: i32, buf: i32, cap: i32| {
            geo_text(&mut c, (ip, ip_len), (buf, cap), |g| &g.region)
        },
    )?;
    linker.func_wrap(
        m,
        "geo_country",
        |mut c: Cx<'_>, ip: i32, ip_len: i32, buf: i32, cap: i32| {
            geo_text(&mut c, (ip, ip_len), (buf, cap), |g| &g.country)
        },
    )?;
    linker.func_wrap(
        m,
        "geo_city",
        |mut c: Cx<'_>, ip: i32, ip_len: i32, buf: i32, cap: i32| {
            geo_text(&mut c, (ip, ip_len), (buf, cap), |g| &g.city)
        },
    )?;
    linker.func_wrap(m, "geo_asn", |mut c: Cx<'_>, ip: i32, ip_len: i32| {
        let Some(ip) = ip_arg(&mut c, ip, ip_len)? else {
            return Ok(-1i64);
        };
        match with_call(&mut c, |call| call.geo_of(ip))? {
            Ok(info) => Ok(info.asn),
            Err(e) => Ok(i64::from(refused(&mut c, "geo_asn", e))),
        }
    })?;
    linker.func_wrap(
        m,
        "set_answer",
        |mut c: Cx<'_>, ptr: i32, len: i32, rtype: i32, ttl: i32| {
            let Some(target) = read_str(&mut c, ptr, len)? else {
                return Ok(refused(&mut c, "set_answer", "target is not UTF-8"));
            };
            let rtype = u16::try_from(rtype).ok().filter(|&t| t != 0);
            let Ok(ttl) = u32::try_from(ttl) else {
                return Ok(refused(
                    &mut c,
                    "set_answer",
                    format!("TTL {ttl} is negative"),
                ));
            };
            match with_call(&mut c, |call| call.set_answer(&target, rtype, ttl))? {
                Ok(()) => Ok(0),
                Err(e) => Ok(refused(&mut c, "set_answer", e)),
            }
        },
    )?;
    linker.func_wrap(
        m,
        "add_record",
        |mut c: Cx<'_>, np: i32, nl: i32, rtype: i32, dp: i32, dl: i32, ttl: i32| {
            let (Some(name), Some(data)) = (read_str(&mut c, np, nl)?, read_str(&mut c, dp, dl)?)
            else {
                return Ok(refused(&mut c, "add_record", "text is not UTF-8"));
            };
            let (Ok(rtype), Ok(ttl)) = (u16::try_from(rtype), u32::try_from(ttl)) else {
                return Ok(refused(
                    &mut c,
                    "add_record",
                    format!("bad type {rtype} or TTL {ttl}"),
                ));
            };
            match with_call(&mut c, |call| call.add_record(&name, rtype, &data, ttl))? {
                Ok(()) => Ok(0),
                Err(e) => Ok(refused(&mut c, "add_record", e)),
            }
        },
    )?;
    linker.func_wrap(m, "set_rcode", |mut c: Cx<'_>, rcode: i32| {
        let name = match rcode {
            0 => "NOERROR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            5 => "REFUSED",
            _ => return Ok(refused(&mut c, "set_rcode", format!("rcode {rcode}"))),
        };
        with_call(&mut c, |call| call.set_rcode(name).map_or(-1, |()| 0))
    })?;
    linker.func_wrap(m, "drop", |mut c: Cx<'_>| {
        with_call(&mut c, |call| {
            call.drop_query();
            0i32
        })
    })?;
    linker.func_wrap(m, "truncate", |mut c: Cx<'_>| {
        with_call(&mut c, |call| {
            call.truncate();
            0i32
        })
    })?;
    linker.func_wrap(m, "forward", |mut c: Cx<'_>, ptr: i32, len: i32| {
        let Some(pool) = read_str(&mut c, ptr, len)? else {
            return Ok(refused(&mut c, "forward", "pool is not UTF-8"));
        };
        match with_call(&mut c, |call| call.forward(&pool))? {
            Ok(()) => Ok(0i32),
            Err(e) => Ok(refused(&mut c, "forward", e)),
        }
    })?;
    linker.func_wrap(m, "log", |mut c: Cx<'_>, level: i32, ptr: i32, len: i32| {
        let msg = read(&mut c, ptr, len.min(4096))?;
        let msg = String::from_utf8_lossy(&msg);
        let level = match level {
            0 => "debug",
            2 => "warn",
            3 => "error",
            _ => "info",
        };
        match c.data_mut().call.as_mut() {
            Some(call) => {
                if let Err(e) = call.log("wasm", level, &msg) {
                    call.note("wasm", "debug", &format!("log: {e}"));
                }
            }
            None => {
                let gate = c.data().log.clone();
                gate.line(1, msg.as_bytes());
            }
        }
        Ok(())
    })?;
    linker.func_wrap(
        m,
        "get_var",
        |mut c: Cx<'_>, ptr: i32, len: i32, _buf: i32, _cap: i32| {
            // The pointer is still checked: a bad one is a bug to report.
            read(&mut c, ptr, len)?;
            // No injected variables reach the server yet: every one is missing.
            Ok(-1i32)
        },
    )?;
    linker.func_wrap(
        m,
        "set_verdict",
        |mut c: Cx<'_>, ptr: i32, len: i32, rule: i32| {
            let text = read(&mut c, ptr, len)?;
            // Compiled policies hand over the same few verdicts again and
            // again: parse each text once per instance.
            let cached = c.data().verdicts.get(text.as_slice()).cloned();
            let verdict = cached.or_else(|| {
                let v = serde_json::from_slice(&text)
                    .ok()
                    .and_then(|j| dnspolicy_compiler::Verdict::from_json(&j))?;
                let host = c.data_mut();
                if host.verdicts.len() >= 256 {
                    host.verdicts.clear();
                }
                host.verdicts.insert(text.to_vec(), v.clone());
                Some(v)
            });
            let Some(verdict) = verdict else {
                let shown: String = String::from_utf8_lossy(&text).chars().take(200).collect();
                return Ok(refused(
                    &mut c,
                    "set_verdict",
                    format!("not a verdict: {shown}"),
                ));
            };
            let rule = usize::try_from(rule).ok();
            with_call(&mut c, |call| {
                call.set_verdict(verdict, rule);
                0i32
            })
        },
    )?;
    linker.func_wrap(
        m,
        "get_field",
        |mut c: Cx<'_>, id: i32, buf: i32, cap: i32| {
            let Ok(id) = u32::try_from(id) else {
                return Ok(-1);
            };
            match with_call(&mut c, |call| call.field(id))? {
                Some(bytes) => write(&mut c, buf, cap, bytes.bytes()),
                None => Ok(-1),
            }
        },
    )?;
    linker.func_wrap(
        m,
        "set_value",
        |mut c: Cx<'_>, code: i32, ptr: i32, len: i32, rule: i32| {
            let bytes = read(&mut c, ptr, len)?;
            if code == dnspolicy_compiler::abi::POOL_KEY_CODE {
                let Ok(k) = <[u8; 8]>::try_from(&bytes[..]) else {
                    return Ok(refused(&mut c, "set_value", "a pool key is 8 bytes"));
                };
                let k = i64::from_le_bytes(k);
                return with_call(&mut c, |call| {
                    call.pool_key = Some(k);
                    0i32
                });
            }
            let Some(v) = dnspolicy_compiler::abi::decode_value(code, &bytes) else {
                return Ok(refused(
                    &mut c,
                    "set_value",
                    format!("not a value of type {code}"),
                ));
            };
            let rule = usize::try_from(rule).ok();
            with_call(&mut c, |call| {
                call.set_verdict(dnspolicy_compiler::Verdict::Value(v), rule);
                0i32
            })
        },
    )?;
    linker.func_wrap(
        m,
        "regex_match",
        |mut c: Cx<'_>, pp: i32, pl: i32, sp: i32, sl: i32| {
            let pattern = read_max(&mut c, pp, pl, MAX_PATTERN_BYTES)?;
            let subject = read(&mut c, sp, sl)?;
            let host = c.data_mut();
            if !host.regexes.contains_key(pattern.as_slice()) {
                if host.regexes.len() >= 64 {
                    host.regexes.clear();
                }
                let re = std::str::from_utf8(&pattern).ok().and_then(|p| {
                    regex::bytes::RegexBuilder::new(p)
                        .size_limit(1 << 20)
                        .dfa_size_limit(1 << 20)
                        .build()
                        .ok()
                });
                host.regexes.insert(pattern.to_vec(), re);
            }
            Ok(match host.regexes.get(pattern.as_slice()) {
                Some(Some(re)) => i32::from(re.is_match(&subject)),
                _ => -1,
            })
        },
    )?;
    Ok(())
}
