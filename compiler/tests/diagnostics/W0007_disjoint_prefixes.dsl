# expect: W0007
# Two prefixes are nested or disjoint: these are disjoint.
rule office when {client.ip} in 10.1.0.0/16 && {client.ip} in 192.168.0.0/16 { then refuse }
