# The policy `dnspolicy serve` runs when no --plugin-dir is given.
# Clients in CN-BJ (by ECS address, else source address; see
# examples/geo/regions.csv) get the Beijing CDN, everyone else the global one.
rule geo_redirect when {query.name} == "www.example.com" {
    if {client.region} == "CN-BJ" {
        then rewrite "cdn-bj.example.com" ttl 300
    } else {
        then rewrite "cdn-global.example.com" ttl 300
    }
}
