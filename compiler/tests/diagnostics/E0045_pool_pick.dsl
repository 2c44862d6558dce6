# expect: E0045
# A pool pick that does not exist, and a key on a pick that takes none.
rule gslb when {query.name} == "gslb.example.com" {
    then pool web weigthed count 2
}
rule api when {query.name} == "api.example.com" {
    then pool web failover {client.subnet}
}
