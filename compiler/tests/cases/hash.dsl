# hash() is stable across runs, backends and machines (values pinned from an
# independent Python implementation of the documented algorithm).
# eval: {"client.subnet": "198.51.100.0/24"} => 9144554126064858898
# eval: {"client.subnet": "198.51.100.0/24", "user.percent": true} => 98
# eval: {"client.subnet": "203.0.113.0/24"} => 7670995054694555145
# eval: {"client.subnet": "203.0.113.0/24", "user.percent": true} => 45
input user.percent : bool
rule percent { if {user.percent} { then hash({client.subnet}) % 100 } }
rule whole { then hash({client.subnet}) }
