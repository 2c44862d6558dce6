# hash() is stable across runs, backends and machines (values pinned from an
# independent Python implementation of the documented algorithm).
# eval: {"client.subnet": "198.51.100.0/24"} => [9144554126064858898, 98]
# eval: {"client.subnet": "203.0.113.0/24"} => [7670995054694555145, 45]
then [hash({client.subnet}), hash({client.subnet}) % 100]
