# expect: E0032
if {client.asn} { then refuse }
