# expect: E0041
rule static { if {query.name} == "www.example.com" { then answer A "not-an-ip" ttl 60 } }
