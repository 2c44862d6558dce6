# Missing values: every comparison reading one is false (== and != alike),
# a negated comparison is true, a bool reads false, arithmetic of a missing
# value is missing, and a then whose value is missing ends its rule only.
# eval: {} => "not-eq"
# eval: {"user.age": 30, "user.flag": true} => "ne"
# eval: {"user.age": 18, "user.flag": false, "user.name": "bob"} => "bob"
input user.flag : bool
input user.name : string
rule ne priority 90 { if {user.age} != 18 { then "ne" } }
rule flag priority 80 { if {user.flag} { then "flag" } }
rule arith priority 70 { if {user.age} + 1 > 0 || {user.age} + 1 <= 0 { then {user.name} } }
rule neg priority 60 { if !({user.age} == 18) { then "not-eq" } }
