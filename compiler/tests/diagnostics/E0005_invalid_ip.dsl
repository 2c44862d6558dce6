# expect: E0005
if {client.ip} == 192.0.2.300 { then refuse }
