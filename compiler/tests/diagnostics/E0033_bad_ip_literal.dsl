# expect: E0033
if {client.ip} == "not-an-ip" { then refuse }
