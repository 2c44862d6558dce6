# expect: E0030
if {client.asn} == {client.city} { then refuse }
