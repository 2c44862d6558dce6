# Integer arithmetic wraps; division and remainder by zero give 0;
# remainder takes the dividend's sign; unary minus. `user.op` picks the
# operation: 0 is /, 1 %, 2 +, 3 *, 4 unary minus.
# eval: {"user.a": 7, "user.b": 0, "user.op": 0} => 0
# eval: {"user.a": 7, "user.b": 0, "user.op": 1} => 0
# eval: {"user.a": 7, "user.b": 0, "user.op": 2} => 7
# eval: {"user.a": 7, "user.b": 0, "user.op": 3} => 0
# eval: {"user.a": 7, "user.b": 0, "user.op": 4} => -7
# eval: {"user.a": -7, "user.b": 2, "user.op": 0} => -3
# eval: {"user.a": -7, "user.b": 2, "user.op": 1} => -1
# eval: {"user.a": -7, "user.b": 2, "user.op": 2} => -5
# eval: {"user.a": -7, "user.b": 2, "user.op": 3} => -14
# eval: {"user.a": -7, "user.b": 2, "user.op": 4} => 7
# eval: {"user.a": 9223372036854775807, "user.b": 1, "user.op": 0} => 9223372036854775807
# eval: {"user.a": 9223372036854775807, "user.b": 1, "user.op": 1} => 0
# eval: {"user.a": 9223372036854775807, "user.b": 1, "user.op": 2} => -9223372036854775808
# eval: {"user.a": 9223372036854775807, "user.b": 1, "user.op": 3} => 9223372036854775807
# eval: {"user.a": 9223372036854775807, "user.b": 1, "user.op": 4} => -9223372036854775807
input user.op : int
rule div { if {user.op} == 0 { then {user.a} / {user.b} } }
rule rem { if {user.op} == 1 { then {user.a} % {user.b} } }
rule add { if {user.op} == 2 { then {user.a} + {user.b} } }
rule mul { if {user.op} == 3 { then {user.a} * {user.b} } }
rule neg { if {user.op} == 4 { then -{user.a} } }
