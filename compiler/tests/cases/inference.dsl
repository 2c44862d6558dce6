# Types of undeclared injected variables are inferred from use: a list of
# record types makes a qtype, a wildcard member makes a name; the most
# negative integer can be written as a literal.
# eval: {"user.t": "aaaa", "user.host": "x.example.com"} => "qtype"
# eval: {"user.t": "TXT", "user.host": "a.b.example.com"} => "wild"
# eval: {"user.t": "TXT", "user.host": "example.com"} => -9223372036854775808
rule q priority 3 { if {user.t} in [A, AAAA] { then "qtype" } }
rule w priority 2 { if {user.host} in ["*.example.com"] { then "wild" } }
rule m priority 1 { then -9223372036854775808 }
