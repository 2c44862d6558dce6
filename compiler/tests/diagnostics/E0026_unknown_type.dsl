# expect: E0026
input user.tier : strng
if {user.tier} == "gold" { then "GOLD" }
