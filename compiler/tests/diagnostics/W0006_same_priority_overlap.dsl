# expect: W0006
# Same priority, overlapping names: file order decides www.example.com for CN-BJ.
rule cdn when {query.name} ends_with "example.com" {
    if {client.region} == "CN-BJ" { then rewrite "cdn-bj.example.com" }
}
rule www when {query.name} == "www.example.com" { then answer A 192.0.2.1 }
