# expect: E0001
if {client.asn} == 64496 @ { then refuse }
