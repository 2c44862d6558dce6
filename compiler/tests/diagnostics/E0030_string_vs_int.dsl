# expect: E0030
if {client.asn} == "64496" { then refuse }
