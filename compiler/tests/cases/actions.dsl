# Every action and its JSON; default TTL 300; a bare word after forward is
# a pool name.
# eval: {"user.k": 1} => {"action":"answer","type":"A","data":["192.0.2.1","192.0.2.2"],"ttl":300}
# eval: {"user.k": 2} => {"action":"answer","type":"AAAA","data":["2001:db8::1"],"ttl":30}
# eval: {"user.k": 3} => {"action":"answer","type":"TXT","data":["v=spf1 -all"],"ttl":300}
# eval: {"user.k": 4} => {"action":"answer","type":"CNAME","data":["edge.example.com"],"ttl":300}
# eval: {"user.k": 5} => {"action":"rewrite","target":"cdn-bj.example.com","ttl":300}
# eval: {"user.k": 6} => {"action":"forward","pool":"backup"}
# eval: {"user.k": 7} => {"action":"forward","pool":"primary"}
# eval: {"user.k": 8} => {"action":"nxdomain"}
# eval: {"user.k": 9} => {"action":"nodata"}
# eval: {"user.k": 10} => {"action":"refuse"}
# eval: {"user.k": 11} => {"action":"servfail"}
# eval: {"user.k": 12} => {"action":"drop"}
# eval: {"user.k": 13} => {"action":"truncate"}
# eval: {"user.k": 14} => {"action":"answer","type":"MX","data":["10 mail.example.com"],"ttl":300}
# eval: {"user.k": 15} => 15
# eval: {"user.k": 16} => true
const POOL = "primary"
if {user.k} == 1 { then answer A 192.0.2.1, "192.0.2.2" }
else if {user.k} == 2 { then answer AAAA 2001:db8::1 ttl 30 }
else if {user.k} == 3 { then answer TXT "v=spf1 -all" }
else if {user.k} == 4 { then answer CNAME "Edge.Example.com." }
else if {user.k} == 5 { then rewrite "CDN-BJ.example.com" }
else if {user.k} == 6 { then forward backup }
else if {user.k} == 7 { then forward POOL }
else if {user.k} == 8 { then nxdomain }
else if {user.k} == 9 { then nodata }
else if {user.k} == 10 { then refuse }
else if {user.k} == 11 { then servfail }
else if {user.k} == 12 { then drop }
else if {user.k} == 13 { then truncate }
else if {user.k} == 14 { then answer MX "10 mail.example.com" }
else if {user.k} == 15 { then {user.k} }
else { then {user.k} > 15 }
