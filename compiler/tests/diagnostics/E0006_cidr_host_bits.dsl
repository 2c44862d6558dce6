# expect: E0006
set nets = [10.1.0.1/16]
if {client.ip} in nets { then refuse }
