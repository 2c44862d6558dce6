# time.* fields: hour (UTC) and ISO weekday.
# eval: {"time": 0} => [0, 4]
# eval: {"time": 1795000000} => [11, 3]
then [{time.hour}, {time.weekday}]
