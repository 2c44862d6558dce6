# Traffic steering from answer pools ([pools.NAME] in the server config,
# examples/gslb/dnspolicy.toml). The server picks among the members that
# are healthy when the query arrives.
# Try it:
#   dnspolicy eval examples/gslb.dsl --query www.example.com
#   dnspolicy eval examples/gslb.dsl --query api.example.com --client 192.0.2.7

# Every healthy member, in configured order.
rule all_members priority 100 when {query.name} == "www.example.com" {
    then pool web
}

# Two members at random, in proportion to their weights.
rule weighted priority 100 when {query.name} == "img.example.com" {
    then pool web weighted count 2
}

# The same member for the same client subnet (consistent hashing: adding a
# member moves only about 1/N of the subnets).
rule sticky priority 100 when {query.name} == "api.example.com" {
    then pool web sticky {client.subnet} ttl 60
}

# The first healthy member by priority; a backup name when the pool is down.
rule failover priority 100 when {query.name} == "db.example.com" {
    if {pool.db.healthy} == 0 { then rewrite "db-backup.example.com" ttl 30 }
    then pool db failover
}

# The member closest to the client (GeoIP coordinates, else region).
rule nearest priority 100 when {query.name} == "cdn.example.com" {
    then pool edge nearest
}
