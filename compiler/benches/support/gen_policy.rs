// Shared by the `frontend` bench and the `scale` example (included with
// `include!`): a policy of `n` rules with distinct names and suffixes, CIDR
// sets, and the three rule shapes a CDN operator writes most.

/// Generates a policy with `n` rules (and `n / 1000 + 1` CIDR sets).
pub fn generate_policy(n: usize) -> String {
    let mut s = String::with_capacity(n * 160);
    s.push_str("# generated: dnspolicy front-end scale test\nconst TTL = 300\n");
    let sets = n / 1000 + 1;
    for k in 0..sets {
        s.push_str(&format!("set nets_{k} = ["));
        for j in 0..10 {
            let v = k * 10 + j;
            s.push_str(&format!("10.{}.{}.0/24, ", (v / 256) % 256, v % 256));
        }
        s.push_str(&format!("2001:db8:{:x}::/48]\n", k % 65536));
    }
    for i in 0..n {
        let prio = (i * 7919) % 1000;
        match i % 3 {
            0 => s.push_str(&format!(
                "rule geo_{i} priority {prio} when {{query.name}} in [\"s{i}.example.com\", \"*.s{i}.example.com\"] {{\n    \
                 if {{client.region}} == \"CN-BJ\" {{ then rewrite \"cdn-bj.s{i}.example.com\" ttl TTL }}\n    \
                 else {{ then rewrite \"cdn-global.s{i}.example.com\" ttl TTL }}\n}}\n"
            )),
            1 => s.push_str(&format!(
                "rule static_{i} priority {prio} {{\n    if {{query.name}} == \"name{i}.example.org\" && {{query.type}} == A {{ then answer A 192.0.2.{} ttl 60 }}\n}}\n",
                i % 250 + 1
            )),
            _ => s.push_str(&format!(
                "rule block_{i} priority {prio} {{\n    if {{client.subnet}} in nets_{} && {{query.name}} ends_with \"b{i}.example.net\" {{ then nxdomain }}\n}}\n",
                i % sets
            )),
        }
    }
    s
}
