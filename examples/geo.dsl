# Geo steering for the CDN front names, with a blocklist and a canary.
# Try it:
#   dnspolicy eval examples/geo.dsl --query www.example.com --region CN-BJ
#   dnspolicy eval examples/geo.dsl --query www.example.com --ecs 10.1.2.0/24 --explain

const TTL = 300

set cdn_names = ["www.example.com", "img.example.com"]
set bj_nets = [10.1.0.0/16, 198.51.100.0/24, 2001:db8:100::/48]  # operator's own Beijing networks
set blocklist = ["ads.example.net", "*.tracker.example"]         # "*." = any subdomain

input user.canary_percent : int  # injected by the operator; missing means no canary

rule block priority 1000 {
    if {query.name} in blocklist { then nxdomain }
}

rule canary priority 500 {
    if {query.name} == "api.example.com" && hash({client.subnet}) % 100 < {user.canary_percent} {
        then answer A 192.0.2.50 ttl 60
    }
}

rule geo_redirect priority 100 when {query.name} in cdn_names {
    if {client.region} == "CN-BJ" || {client.subnet} in bj_nets {
        then rewrite "cdn-bj.example.com" ttl TTL
    } else {
        then rewrite "cdn-global.example.com" ttl TTL
    }
}
