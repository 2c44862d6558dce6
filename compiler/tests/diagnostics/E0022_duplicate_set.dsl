# expect: E0022
set nets = [10.0.0.0/8]
set nets = [192.168.0.0/16]
if {client.ip} in nets { then refuse }
