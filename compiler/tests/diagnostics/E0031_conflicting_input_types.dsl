# expect: E0031
if {user.age} > 18 { then "adult" }
rule other { if {user.age} == "unknown" { then "?" } }
