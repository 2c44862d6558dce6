# expect: E0011
rule geo priority 10 {
    if {client.region} == "CN-BJ" { then rewrite "cdn-bj.example.com" }
