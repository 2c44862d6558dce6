# expect: E0004
if {client.asn} == 99999999999999999999 { then refuse }
