# A list is a value verdict too; its elements are evaluated in order.
# wasm: not lowered: a list verdict
# eval: {"time": 0, "user.a": 7, "user.b": 0} => [0, 4, 0, 7]
# eval: {"time": 1795000000, "user.a": -7, "user.b": 2} => [11, 3, -1, -5]
then [{time.hour}, {time.weekday}, {user.a} % {user.b}, {user.a} + {user.b}]
