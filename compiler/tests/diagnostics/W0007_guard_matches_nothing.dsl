# expect: W0007
# A name cannot be two names at once: the rule never runs.
rule geo when {query.name} == "www.example.com" && {client.region} == "CN-BJ" && {query.name} == "cdn.example.com" {
    then rewrite "cdn-bj.example.com"
}
