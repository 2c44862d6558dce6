# time.* fields: hour (UTC) and ISO weekday.
# eval: {"time": 0, "user.part": "hour"} => 0
# eval: {"time": 0} => 4
# eval: {"time": 1795000000, "user.part": "hour"} => 11
# eval: {"time": 1795000000} => 3
input user.part : string
rule hour { if {user.part} == "hour" { then {time.hour} } }
rule weekday { then {time.weekday} }
