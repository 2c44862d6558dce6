//! The geo redirect of `examples/plugins/dns/geo_redirect.lua` in Rust:
//! clients whose GeoIP region is CN-BJ get cdn-bj.example.com, everyone
//! else cdn-global.example.com. Built by `build.sh` (see there).
#![no_std]

use dnspolicy_plugin::{export_plugin, Outcome, Plugin, Query, RecordType};

struct GeoRedirect;

impl Plugin for GeoRedirect {
    fn process(q: &mut Query) -> Outcome {
        let mut buf = [0u8; 64];
        let target = if q.geo_region(&mut buf) == Some("CN-BJ") {
            "cdn-bj.example.com"
        } else {
            "cdn-global.example.com"
        };
        match q.set_answer(target, RecordType::A, 300) {
            Ok(()) => Outcome::Decided,
            Err(_) => Outcome::Pass,
        }
    }
}

export_plugin!(GeoRedirect);
