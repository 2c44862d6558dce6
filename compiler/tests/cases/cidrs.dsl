# Prefix sets: an address is in a set when a prefix contains it, a subnet
# when a prefix covers it; IPv4 never matches IPv6 prefixes.
# eval: {"client.ip": "10.1.200.3"} => "bj"
# eval: {"client.ip": "10.2.0.1", "client.subnet": "10.1.3.0/24"} => "bj-subnet"
# eval: {"client.ip": "10.2.0.1", "client.subnet": "10.0.0.0/8"} => "ten"
# eval: {"client.ip": "2001:db8:100::1"} => "bj"
# eval: {"client.ip": "::ffff:10.1.0.1"} => null
# eval: {"client.ip": "192.0.2.1"} => "host"
set bj = [10.1.0.0/16, 2001:db8:100::/48]
rule a priority 5 { if {client.ip} in bj { then "bj" } }
rule b priority 4 { if {client.subnet} in bj { then "bj-subnet" } }
rule c priority 3 { if {client.subnet} in 10.0.0.0/8 { then "ten" } }
rule d priority 2 { if {client.ip} in [192.0.2.1, 198.51.100.0/24] { then "host" } }
