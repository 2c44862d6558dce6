//! Bad input never kills the server: truncated packets, wrong counts,
//! compression loops, oversized names, random bytes, and mutated real
//! packets from the fuzz corpus. After 10 000 of them a good query is
//! answered.

use dnspolicy_e2e::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use std::time::Duration;
use tokio::net::UdpSocket;

fn header(id: u16, qd: u16) -> Vec<u8> {
    let mut h = vec![0u8; 12];
    h[0..2].copy_from_slice(&id.to_be_bytes());
    h[2] = 0x01; // RD
    h[4..6].copy_from_slice(&qd.to_be_bytes());
    h
}

/// Hand-made malformed packets, each with what it exercises.
fn crafted() -> Vec<(&'static str, Vec<u8>)> {
    let good = query("www.example.com.", RecordType::A)
        .to_vec()
        .expect("encode");
    let mut v = vec![
        ("empty", vec![]),
        ("runt header", vec![0x12, 0x34, 0x01]),
        ("truncated question", good[..good.len() - 3].to_vec()),
        ("header only, qdcount 1", header(1, 1)),
    ];
    let mut two = good.clone();
    two[5] = 2; // QDCOUNT 2 but one question
    v.push(("qdcount too high", two));
    let mut zero = good.clone();
    zero[5] = 0;
    v.push(("qdcount 0 with a question", zero));
    // A name that points at itself.
    let mut looped = header(2, 1);
    looped.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    v.push(("self-pointing name", looped));
    // Two pointers pointing at each other.
    let mut ping = header(3, 1);
    ping.extend_from_slice(&[0xC0, 14, 0xC0, 12, 0, 1, 0, 1]);
    v.push(("pointer ping-pong", ping));
    // A name over 255 octets (five 63-octet labels).
    let mut long = header(4, 1);
    for _ in 0..5 {
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    v.push(("oversized name", long));
    // A label length byte with the reserved 0b01/0b10 prefix.
    let mut reserved = header(5, 1);
    reserved.extend_from_slice(&[0x41, b'a', 0, 0, 1, 0, 1]);
    v.push(("reserved label type", reserved));
    // A response (QR=1) must never be answered.
    let mut resp = good.clone();
    resp[2] |= 0x80;
    v.push(("a response", resp));
    v
}

fn corpus() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let dir = shared_dir().join("fuzz-corpus");
    for sub in ["c-ares", "pdns"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            for e in rd.filter_map(Result::ok) {
                if let Ok(b) = std::fs::read(e.path()) {
                    if b.len() <= 4096 {
                        out.push(b);
                    }
                }
            }
        }
    }
    out
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bad_packets_then_a_good_query() {
    let s = start(config()).await;
    // Every crafted case: FORMERR or silence, never a crash.
    for (what, pkt) in crafted() {
        if let Some(r) = udp_raw(s.dns, &pkt, Duration::from_millis(200)).await {
            assert!(r.len() >= 12, "{what}: short reply");
            if let Ok(m) = Message::from_vec(&r) {
                assert!(
                    matches!(
                        m.metadata.response_code,
                        ResponseCode::FormErr | ResponseCode::NoError | ResponseCode::Refused
                    ),
                    "{what}: {:?}",
                    m.metadata.response_code
                );
            }
            assert_ne!(what, "a response", "responses must not be answered");
        }
    }
    // Then 10 000 random and mutated packets, fired without waiting.
    let seeds = corpus();
    let good = query("www.example.com.", RecordType::A)
        .to_vec()
        .expect("encode");
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut drain = vec![0u8; 65_535];
    for i in 0..10_000 {
        let mut pkt = match i % 3 {
            0 => (0..rng.below(600))
                .map(|_| rng.next() as u8)
                .collect::<Vec<u8>>(),
            1 if !seeds.is_empty() => seeds[rng.below(seeds.len())].clone(),
            _ => good.clone(),
        };
        for _ in 0..=rng.below(8) {
            if pkt.is_empty() {
                break;
            }
            let at = rng.below(pkt.len());
            match rng.below(4) {
                0 => pkt[at] = rng.next() as u8,
                1 => pkt.truncate(at),
                2 => pkt.insert(at, rng.next() as u8),
                _ => pkt[at] ^= 0xC0,
            }
        }
        let _ = sock.send_to(&pkt, s.dns).await;
        // Keep our receive queue from filling; replies are not checked here.
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_micros(1), sock.recv_from(&mut drain)).await
        {
        }
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = udp(s.dns, &query("www.example.com.", RecordType::A)).await;
    assert_eq!(
        answers(&r),
        vec!["CNAME cdn-global.example.com.", "192.0.2.20"]
    );
    let (_, metrics) = http_get(s.admin, "/metrics").await;
    let malformed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dnspolicy_malformed_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("malformed counter");
    assert!(
        malformed > 1000,
        "bad packets were seen and counted: {malformed}"
    );
}
