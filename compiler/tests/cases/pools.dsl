# `then pool`: the verdict names the pool and the pick; a sticky key is
# hash(KEY) computed per query; {pool.NAME.healthy} is an int the server
# supplies (missing here unless given, so the comparison is false).
# eval: {"query.name": "a.example"} => {"action":"pool","pool":"web","pick":"all","count":0,"ttl":300}
# eval: {"query.name": "w.example"} => {"action":"pool","pool":"web","pick":"weighted","count":2,"ttl":300}
# eval: {"query.name": "s.example", "client.ip": "192.0.2.7"} => {"action":"pool","pool":"web","pick":"sticky","count":1,"ttl":20,"key":8436856834107603862}
# eval: {"query.name": "s.example"} => null
# eval: {"query.name": "f.example", "pool.db.healthy": 1} => {"action":"pool","pool":"db","pick":"failover","count":1,"ttl":300}
# eval: {"query.name": "f.example", "pool.db.healthy": 0} => {"action":"rewrite","target":"backup.example","ttl":30}
# eval: {"query.name": "n.example"} => {"action":"pool","pool":"edge","pick":"nearest","count":3,"ttl":60}
const TTL = 60
if {query.name} == "a.example" { then pool web }
if {query.name} == "w.example" { then pool web weighted count 2 }
if {query.name} == "s.example" { then pool "web" sticky {client.subnet} ttl 20 }
if {query.name} == "f.example" {
    if {pool.db.healthy} == 0 { then rewrite "backup.example" ttl 30 }
    then pool db failover
}
if {query.name} == "n.example" { then pool edge nearest count 3 ttl TTL }
