# Integer arithmetic wraps; division and remainder by zero give 0;
# remainder takes the dividend's sign; unary minus.
# eval: {"user.a": 7, "user.b": 0} => [0, 0, 7, 0, -7]
# eval: {"user.a": -7, "user.b": 2} => [-3, -1, -5, -14, 7]
# eval: {"user.a": 9223372036854775807, "user.b": 1} => [9223372036854775807, 0, -9223372036854775808, 9223372036854775807, -9223372036854775807]
then [{user.a} / {user.b}, {user.a} % {user.b}, {user.a} + {user.b}, {user.a} * {user.b}, -{user.a}]
