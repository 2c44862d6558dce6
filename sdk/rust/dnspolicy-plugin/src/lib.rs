//! Write dnspolicy WASM plugins in Rust.
//!
//! A plugin is a `cdylib` for `wasm32-wasi` (or `wasm32-unknown-unknown`)
//! that implements [`Plugin`] and calls [`export_plugin!`]: the macro
//! exports the five functions the host calls (`dnspolicy_abi_version`,
//! `alloc`, `init`, `process`, `destroy`), and [`Query`] wraps the host's
//! imports (module `dnspolicy`) in safe calls. The contract is
//! `grammar/WASM-ABI.md`; [`sys`] is its import table, checked against the
//! compiler's (`compiler/src/abi.rs`) by the repository's tests, so a
//! change of the ABI breaks this crate's build, not production.
//!
//! No dependencies, `no_std` (the `std` feature only drops the panic
//! handler this crate provides on wasm), and it builds with Rust 1.63
//! (Debian's `rustc` + `libstd-rust-dev-wasm32`) as with newer toolchains.
//!
//! ```ignore
//! use dnspolicy_plugin::{export_plugin, Outcome, Plugin, Query, RecordType};
//!
//! struct Geo;
//! impl Plugin for Geo {
//!     fn process(q: &mut Query) -> Outcome {
//!         let mut buf = [0u8; 64];
//!         let target = if q.geo_region(&mut buf) == Some("CN-BJ") {
//!             "cdn-bj.example.com"
//!         } else {
//!             "cdn-global.example.com"
//!         };
//!         match q.set_answer(target, RecordType::A, 300) {
//!             Ok(()) => Outcome::Decided,
//!             Err(_) => Outcome::Pass,
//!         }
//!     }
//! }
//! export_plugin!(Geo);
//! ```
#![no_std]
#![warn(missing_docs)]

/// The ABI version this crate speaks (`dnspolicy_abi_version`).
pub const ABI_VERSION: i32 = 1;

/// The raw imports of module `dnspolicy`, one per row of the ABI table.
/// Pointers are offsets into the module's memory; lengths are bytes.
#[allow(missing_docs)]
pub mod sys {
    #[link(wasm_import_module = "dnspolicy")]
    extern "C" {
        pub fn get_qname(buf: *mut u8, cap: i32) -> i32;
        pub fn get_qtype() -> i32;
        pub fn get_client_ip(buf: *mut u8, cap: i32) -> i32;
        pub fn get_source_ip(buf: *mut u8, cap: i32) -> i32;
        pub fn get_ecs(buf: *mut u8, cap: i32) -> i32;
        pub fn geo_region(ip: *const u8, ip_len: i32, buf: *mut u8, cap: i32) -> i32;
        pub fn geo_country(ip: *const u8, ip_len: i32, buf: *mut u8, cap: i32) -> i32;
        pub fn geo_city(ip: *const u8, ip_len: i32, buf: *mut u8, cap: i32) -> i32;
        pub fn geo_asn(ip: *const u8, ip_len: i32) -> i64;
        pub fn set_answer(target: *const u8, len: i32, rtype: i32, ttl: i32) -> i32;
        pub fn add_record(
            name: *const u8,
            name_len: i32,
            rtype: i32,
            rdata: *const u8,
            rdata_len: i32,
            ttl: i32,
        ) -> i32;
        pub fn set_rcode(rcode: i32) -> i32;
        pub fn drop() -> i32;
        pub fn truncate() -> i32;
        pub fn forward(pool: *const u8, len: i32) -> i32;
        pub fn log(level: i32, msg: *const u8, len: i32);
        pub fn get_var(path: *const u8, len: i32, buf: *mut u8, cap: i32) -> i32;
        pub fn set_verdict(json: *const u8, len: i32, rule: i32) -> i32;
        pub fn regex_match(pattern: *const u8, plen: i32, s: *const u8, slen: i32) -> i32;
        pub fn get_field(id: i32, buf: *mut u8, cap: i32) -> i32;
        pub fn set_value(ty: i32, value: *const u8, len: i32, rule: i32) -> i32;
    }
}

/// What `process` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No decision: the next plugin gets the query.
    Pass = 0,
    /// Decided through the calls on [`Query`].
    Decided = 1,
}

/// Record types the decision calls take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    /// `set_answer`: the type follows the target (address or name).
    Any = 0,
    /// IPv4 address.
    A = 1,
    /// Alias.
    Cname = 5,
    /// Text.
    Txt = 16,
    /// IPv6 address.
    Aaaa = 28,
}

/// Response codes `set_rcode` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rcode {
    /// NOERROR with no data (NODATA).
    NoError = 0,
    /// SERVFAIL.
    ServFail = 2,
    /// NXDOMAIN.
    NxDomain = 3,
    /// REFUSED.
    Refused = 5,
}

/// Log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Debug.
    Debug = 0,
    /// Info.
    Info = 1,
    /// Warning.
    Warn = 2,
    /// Error.
    Error = 3,
}

/// The host refused an argument (a bad name, TTL or type; see the log),
/// or the plugin lacks the capability (`capabilities:` in its NAME.yaml).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused;

fn status(r: i32) -> Result<(), Refused> {
    if r == 0 {
        Ok(())
    } else {
        Err(Refused)
    }
}

/// The query header the host writes before each `process` (16 bytes, then
/// the name): see `grammar/WASM-ABI.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// Question type.
    pub qtype: u16,
    /// Question class (1 = IN).
    pub qclass: u16,
    /// Over TCP.
    pub tcp: bool,
    /// RD flag.
    pub recursion_desired: bool,
    /// EDNS DO bit.
    pub dnssec_ok: bool,
    /// The query carries EDNS Client Subnet.
    pub has_ecs: bool,
    /// The question name: canonical (lowercase, no trailing dot).
    pub qname: &'a str,
}

impl<'a> Header<'a> {
    /// Bytes before the name.
    pub const LEN: usize = 16;

    /// Reads a header; `None` when the bytes are not one of version
    /// [`ABI_VERSION`].
    pub fn parse(b: &'a [u8]) -> Option<Header<'a>> {
        if b.len() < Self::LEN {
            return None;
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let version = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if version != ABI_VERSION as u32 {
            return None;
        }
        let n = usize::from(u16_at(10));
        let name = b.get(Self::LEN..Self::LEN + n)?;
        Some(Header {
            qtype: u16_at(4),
            qclass: u16_at(6),
            tcp: b[8] == 1,
            recursion_desired: b[9] & 1 != 0,
            dnssec_ok: b[9] & 2 != 0,
            has_ecs: b[9] & 4 != 0,
            qname: core::str::from_utf8(name).ok()?,
        })
    }
}

/// The text a buffer-filling import wrote, when it fit.
fn text(buf: &[u8], n: i32) -> Option<&str> {
    let n = usize::try_from(n).ok()?;
    core::str::from_utf8(buf.get(..n)?).ok()
}

fn len(b: &[u8]) -> i32 {
    i32::try_from(b.len()).unwrap_or(i32::MAX)
}

/// One query, and the host calls that read and decide it.
pub struct Query<'a> {
    /// The header the host wrote.
    pub header: Header<'a>,
}

impl<'a> Query<'a> {
    /// The question name (canonical).
    pub fn qname(&self) -> &'a str {
        self.header.qname
    }

    /// The question type.
    pub fn qtype(&self) -> u16 {
        self.header.qtype
    }

    /// The client's address (the ECS address when the query has one) as
    /// 4 or 16 bytes.
    pub fn client_ip<'b>(&self, buf: &'b mut [u8; 16]) -> &'b [u8] {
        // SAFETY: the host writes at most `cap` bytes into `buf`.
        let n = unsafe { sys::get_client_ip(buf.as_mut_ptr(), 16) };
        &buf[..usize::try_from(n).unwrap_or(0).min(16)]
    }

    fn geo(
        &self,
        f: unsafe extern "C" fn(*const u8, i32, *mut u8, i32) -> i32,
        ip: &[u8],
        buf: &'a mut [u8],
    ) -> Option<&'a str> {
        // SAFETY: the host reads `ip` and writes at most `cap` bytes.
        let n = unsafe { f(ip.as_ptr(), len(ip), buf.as_mut_ptr(), len(buf)) };
        text(buf, n)
    }

    /// The client's GeoIP region (ISO 3166-2, e.g. `CN-BJ`); `None` when
    /// it does not fit in `buf` or the `geo` capability is not granted.
    pub fn geo_region(&self, buf: &'a mut [u8]) -> Option<&'a str> {
        self.geo(sys::geo_region, &[], buf)
    }

    /// The client's GeoIP country (ISO 3166-1 alpha-2).
    pub fn geo_country(&self, buf: &'a mut [u8]) -> Option<&'a str> {
        self.geo(sys::geo_country, &[], buf)
    }

    /// The GeoIP region of another address (4 or 16 bytes).
    pub fn geo_region_of(&self, ip: &[u8], buf: &'a mut [u8]) -> Option<&'a str> {
        self.geo(sys::geo_region, ip, buf)
    }

    /// The client's autonomous system number (0 if unknown).
    pub fn geo_asn(&self) -> i64 {
        // SAFETY: no memory is passed.
        unsafe { sys::geo_asn(core::ptr::null(), 0) }
    }

    /// Answers with `target`: an address answers directly, a name is a
    /// rewrite (CNAME plus the target's records).
    pub fn set_answer(&mut self, target: &str, rtype: RecordType, ttl: u32) -> Result<(), Refused> {
        let ttl = i32::try_from(ttl).map_err(|_| Refused)?;
        // SAFETY: the host reads `target`.
        status(unsafe {
            sys::set_answer(target.as_ptr(), len(target.as_bytes()), rtype as i32, ttl)
        })
    }

    /// Adds a record (master-file `rdata`); the query is answered with the
    /// records added.
    pub fn add_record(
        &mut self,
        name: &str,
        rtype: RecordType,
        rdata: &str,
        ttl: u32,
    ) -> Result<(), Refused> {
        let ttl = i32::try_from(ttl).map_err(|_| Refused)?;
        // SAFETY: the host reads both strings.
        status(unsafe {
            sys::add_record(
                name.as_ptr(),
                len(name.as_bytes()),
                rtype as i32,
                rdata.as_ptr(),
                len(rdata.as_bytes()),
                ttl,
            )
        })
    }

    /// Answers with an rcode and no records.
    pub fn set_rcode(&mut self, rcode: Rcode) -> Result<(), Refused> {
        // SAFETY: no memory is passed.
        status(unsafe { sys::set_rcode(rcode as i32) })
    }

    /// No response at all.
    pub fn drop_query(&mut self) -> Result<(), Refused> {
        // SAFETY: no memory is passed.
        status(unsafe { sys::drop() })
    }

    /// An empty response with TC set.
    pub fn truncate(&mut self) -> Result<(), Refused> {
        // SAFETY: no memory is passed.
        status(unsafe { sys::truncate() })
    }

    /// Forwards to an upstream pool (capability `forward`).
    pub fn forward(&mut self, pool: &str) -> Result<(), Refused> {
        // SAFETY: the host reads `pool`.
        status(unsafe { sys::forward(pool.as_ptr(), len(pool.as_bytes())) })
    }

    /// Writes a line to the server log (capability `log`; rate limited).
    pub fn log(&self, level: Level, msg: &str) {
        // SAFETY: the host reads `msg`.
        unsafe { sys::log(level as i32, msg.as_ptr(), len(msg.as_bytes())) }
    }

    /// An injected variable as text; `None` when missing or too long.
    pub fn var(&self, path: &str, buf: &'a mut [u8]) -> Option<&'a str> {
        // SAFETY: the host reads `path` and writes at most `cap` bytes.
        let n = unsafe {
            sys::get_var(
                path.as_ptr(),
                len(path.as_bytes()),
                buf.as_mut_ptr(),
                len(buf),
            )
        };
        text(buf, n)
    }
}

/// A plugin: what `init` and `process` do. Export it with [`export_plugin!`].
pub trait Plugin {
    /// Called once per instance with the metadata's `config` as JSON;
    /// `Err` refuses to load.
    fn init(_config: &[u8]) -> Result<(), ()> {
        Ok(())
    }

    /// Decides one query.
    fn process(query: &mut Query) -> Outcome;
}

/// The bump allocator behind the `alloc` export: the host allocates twice
/// per instance (the config, then the query buffer) and never frees.
pub mod heap {
    /// Bytes available to the host's allocations.
    pub const SIZE: usize = 64 * 1024;

    #[repr(align(8))]
    struct Heap([u8; SIZE]);

    static mut HEAP: Heap = Heap([0; SIZE]);
    static mut TOP: usize = 0;

    /// `len` bytes, 8-aligned, as a memory offset; 0 when they do not fit.
    pub fn alloc(len: i32) -> i32 {
        // No `let else`: the crate builds with Rust 1.63.
        let len = match usize::try_from(len) {
            Ok(l) => l,
            Err(_) => return 0,
        };
        let need = (len + 7) & !7;
        // SAFETY: wasm instances are single-threaded; `HEAP` and `TOP` are
        // only touched here.
        unsafe {
            let top = TOP;
            if need > SIZE - top {
                return 0;
            }
            TOP = top + need;
            let base = core::ptr::addr_of_mut!(HEAP.0) as *mut u8;
            base.add(top) as usize as i32
        }
    }
}

/// Exports `T` ([`Plugin`]) as the module's plugin: `dnspolicy_abi_version`,
/// `alloc`, `init`, `process` and `destroy`.
#[macro_export]
macro_rules! export_plugin {
    ($t:ty) => {
        #[export_name = "dnspolicy_abi_version"]
        pub extern "C" fn __dnspolicy_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        #[export_name = "alloc"]
        pub extern "C" fn __dnspolicy_alloc(len: i32) -> i32 {
            $crate::heap::alloc(len)
        }

        #[export_name = "init"]
        pub extern "C" fn __dnspolicy_init(ptr: i32, len: i32) -> i32 {
            // SAFETY: the host wrote `len` bytes at `ptr`, memory it got
            // from `alloc`.
            let config = unsafe { $crate::__slice(ptr, len) };
            match <$t as $crate::Plugin>::init(config) {
                Ok(()) => 0,
                Err(()) => 1,
            }
        }

        #[export_name = "process"]
        pub extern "C" fn __dnspolicy_process(ptr: i32, len: i32) -> i32 {
            // SAFETY: as for `init`.
            let bytes = unsafe { $crate::__slice(ptr, len) };
            match $crate::Header::parse(bytes) {
                Some(header) => {
                    let mut q = $crate::Query { header };
                    <$t as $crate::Plugin>::process(&mut q) as i32
                }
                None => -1,
            }
        }

        #[export_name = "destroy"]
        pub extern "C" fn __dnspolicy_destroy() {}
    };
}

/// The bytes the host wrote at `ptr` (for [`export_plugin!`]).
///
/// # Safety
/// `ptr..ptr + len` must be memory of this instance that nothing else
/// borrows mutably while the slice lives.
#[doc(hidden)]
pub unsafe fn __slice<'a>(ptr: i32, len: i32) -> &'a [u8] {
    match usize::try_from(len) {
        Ok(n) if ptr != 0 && n > 0 => core::slice::from_raw_parts(ptr as usize as *const u8, n),
        _ => &[],
    }
}

#[cfg(all(target_arch = "wasm32", not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_header() {
        let mut b = [0u8; 16 + 15];
        b[..4].copy_from_slice(&1u32.to_le_bytes());
        b[4..6].copy_from_slice(&28u16.to_le_bytes());
        b[6..8].copy_from_slice(&1u16.to_le_bytes());
        b[8] = 1;
        b[9] = 1 | 4;
        b[10..12].copy_from_slice(&15u16.to_le_bytes());
        b[16..].copy_from_slice(b"www.example.com");
        let h = Header::parse(&b).expect("header");
        assert_eq!(h.qtype, 28);
        assert!(h.tcp && h.recursion_desired && h.has_ecs && !h.dnssec_ok);
        assert_eq!(h.qname, "www.example.com");
        b[0] = 2;
        assert_eq!(Header::parse(&b), None, "another ABI version");
        assert_eq!(Header::parse(&b[..10]), None);
    }

    #[test]
    fn bump_allocator_aligns_and_refuses_what_does_not_fit() {
        let a = heap::alloc(3);
        let b = heap::alloc(8);
        assert_ne!(a, 0);
        assert_eq!(b - a, 8);
        assert_eq!(heap::alloc(i32::MAX), 0);
        assert_eq!(heap::alloc(-1), 0);
    }
}
