# expect: E0041
rule static { if {query.name} == "www.example.com" { then answer A 2001:db8::1 } }
