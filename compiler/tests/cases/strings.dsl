# Strings: matches is an unanchored search; starts_with/ends_with are plain
# on strings; + joins strings; lower and len.
# wasm: not lowered: string concatenation
# eval: {"client.city": "Beijing"} => "beijing-8"
# eval: {"client.city": "Xian"} => "Xian!"
# eval: {"client.city": "NEW YORK"} => "matched"
rule re priority 3 { if {client.city} matches r"(?i)york" { then "matched" } }
rule b priority 2 { if {client.city} starts_with "Bei" { then lower({client.city}) + "-" + "8" } }
rule c priority 1 { if len({client.city}) == 4 { then {client.city} + "!" } }
