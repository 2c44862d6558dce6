# gslb.example.com A: every healthy member of pool `web` (../dnspolicy.toml).
rule gslb when {query.name} == "gslb.example.com" {
    then pool web ttl 30
}
