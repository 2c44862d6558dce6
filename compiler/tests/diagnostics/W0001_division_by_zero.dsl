# expect: W0001
if {client.asn} / 0 == 1 { then refuse }
