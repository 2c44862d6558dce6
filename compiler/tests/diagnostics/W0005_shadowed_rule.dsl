# expect: W0005
# The blocklist decides every name of the set first: the special rule is dead.
set ads = ["ads.example.net", "*.ads.example.net"]
rule block priority 100 when {query.name} in ads { then nxdomain }
rule special priority 50 when {query.name} == "x.ads.example.net" { then answer A 192.0.2.1 }
