# Record types compare as types: bare mnemonics, strings, and TYPEnnn.
# eval: {"query.type": "AAAA"} => "v6"
# eval: {"query.type": "a"} => "v4"
# eval: {"query.type": "TYPE65"} => "https"
# eval: {"query.type": "TXT"} => null
if {query.type} == AAAA { then "v6" }
else if {query.type} in ["A", "TYPE1"] { then "v4" }
else if {query.type} == "HTTPS" { then "https" }
