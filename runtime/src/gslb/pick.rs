//! Picking members of an answer pool: the five ways a policy can ask for
//! (`all`, `weighted`, `sticky`, `failover`, `nearest`), as pure functions
//! over the candidates (the healthy members of the query's family), so
//! their statistics are tested without a server.

use super::Member;
use dnspolicy_compiler::ir::value::Pick;
use smallvec::SmallVec;
use std::cell::Cell;

/// Indexes into the candidates, best first; on the stack for pools of up
/// to 16 members (the query path allocates nothing).
pub type Picks = SmallVec<[usize; 16]>;

/// Where the client is, for `nearest` (GeoIP of the ECS address or source).
#[derive(Clone, Debug, Default)]
pub struct ClientPlace<'a> {
    /// Latitude and longitude in degrees.
    pub location: Option<(f64, f64)>,
    /// ISO 3166-2 region (`US-CA`), `""` if unknown.
    pub region: &'a str,
    /// ISO 3166-1 country, `""` if unknown.
    pub country: &'a str,
}

/// Picks up to `count` of `cands` (0 = every one the pick orders) into
/// `out`, as indexes into `cands`, best first.
pub fn pick(
    how: Pick,
    cands: &[&Member],
    count: u32,
    key: Option<i64>,
    place: &ClientPlace<'_>,
    out: &mut Picks,
) {
    out.clear();
    let n = cands.len();
    let want = if count == 0 {
        n
    } else {
        (count as usize).min(n)
    };
    match how {
        Pick::All => out.extend(0..want),
        Pick::Weighted => weighted(cands, want, out),
        Pick::Sticky => {
            let key = key.unwrap_or(0) as u64;
            ranked(n, want, out, |i| rendezvous(key, cands[i]));
        }
        Pick::Failover => {
            out.extend(0..n);
            // Stable: members of one priority keep their configured order.
            out.sort_by_key(|&i| cands[i].priority);
            out.truncate(want);
        }
        Pick::Nearest => ranked(n, want, out, |i| -distance_km(cands[i], place)),
    }
}

/// The `want` best of `0..n` by `score` (highest first; ties keep order).
fn ranked(n: usize, want: usize, out: &mut Picks, score: impl Fn(usize) -> f64) {
    // Each score once (a logarithm or a great circle), not per comparison.
    let mut scored: SmallVec<[(f64, usize); 16]> = (0..n).map(|i| (score(i), i)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    out.extend(scored.iter().take(want).map(|&(_, i)| i));
}

/// Weighted draws without replacement. Members of weight 0 are drawn only
/// when every candidate has weight 0 (then uniformly).
fn weighted(cands: &[&Member], want: usize, out: &mut Picks) {
    let all_zero = cands.iter().all(|m| m.weight == 0);
    let w = |i: usize| {
        if all_zero {
            1
        } else {
            u64::from(cands[i].weight)
        }
    };
    let mut total: u64 = (0..cands.len()).map(w).sum();
    while out.len() < want && total > 0 {
        let mut r = random_below(total);
        for i in 0..cands.len() {
            if out.contains(&i) {
                continue;
            }
            let wi = w(i);
            if r < wi {
                out.push(i);
                total -= wi;
                break;
            }
            r -= wi;
        }
    }
}

/// Weighted rendezvous (highest random weight) score of `m` for `key`:
/// `weight / -ln(u)` with `u` uniform in (0, 1) from the key and the
/// member's own seed. Each member's score depends on nothing else, so
/// adding a member moves only the keys it now wins (about 1/N), and the
/// result is the same on every node and after every restart.
pub fn rendezvous(key: u64, m: &Member) -> f64 {
    let h = fmix64(key ^ m.seed);
    // 53 random bits, shifted into (0, 1).
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(m.weight.max(1)) / -u.ln()
}

/// MurmurHash3's 64-bit finaliser, the language's `hash` tail.
pub use dnspolicy_compiler::ir::hash::fmix64;

/// How far a member is from the client: great-circle kilometres when both
/// have coordinates; else 0 in the client's region, 500 in its country,
/// and half the Earth's circumference elsewhere (so a located member in
/// the same region still beats one known only by country).
pub fn distance_km(m: &Member, place: &ClientPlace<'_>) -> f64 {
    if let (Some(a), Some(b)) = (m.location, place.location) {
        return haversine_km(a, b);
    }
    match &m.region {
        Some(r) if !place.region.is_empty() && r.eq_ignore_ascii_case(place.region) => 0.0,
        Some(r)
            if !place.country.is_empty() && country_of(r).eq_ignore_ascii_case(place.country) =>
        {
            500.0
        }
        _ => 20_000.0,
    }
}

/// `US` of `US-CA`; a bare country stays as it is.
fn country_of(region: &str) -> &str {
    region.split('-').next().unwrap_or(region)
}

/// Great-circle distance between two (latitude, longitude) points.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process and differs per
    // thread's instance: enough for spreading load (not for secrets).
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish() | 1
}

/// A uniform draw in `0..n` (xorshift64*, per thread: no lock, no
/// allocation on the query path).
pub fn random_below(n: u64) -> u64 {
    RNG.with(|c| {
        let mut x = c.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        c.set(x);
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // Multiply-shift: unbiased enough for weights far below 2^32.
        ((u128::from(r) * u128::from(n)) >> 64) as u64
    })
}
