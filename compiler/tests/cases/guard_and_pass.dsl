# A false guard skips the rule; `pass` stops the whole policy undecided
# (reported as an explicit pass, not null).
# eval: {"query.name": "www.example.com"} => "guarded"
# eval: {"query.name": "ok.example.com"} => {"action":"pass"}
# eval: {"query.name": "other.test"} => null
# eval: {} => null
rule allow priority 50 when {query.name} == "ok.example.com" { then pass }
rule guarded priority 10 when {query.name} ends_with "example.com" { then "guarded" }
