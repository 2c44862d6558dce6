# Injected variables: declared list types, dynamic lists, inferred types,
# and values of the wrong type count as missing.
# wasm: not lowered: `in` over a run-time list
# eval: {"user.groups": ["ops", "admin"], "user.tier": "gold"} => "admin"
# eval: {"user.groups": ["ops"], "user.tier": "gold", "user.alt": "gold"} => "dyn"
# eval: {"user.groups": [], "user.target": "alt.example.com"} => {"action":"rewrite","target":"alt.example.com","ttl":60}
# eval: {"user.groups": []} => null
input user.groups : [string]
input user.target : name
input user.alt : string
rule a priority 3 { if "admin" in {user.groups} { then "admin" } }
rule b priority 2 { if {user.tier} in [{user.alt}, "platinum"] { then "dyn" } }
rule c priority 1 { then rewrite {user.target} ttl 60 }
