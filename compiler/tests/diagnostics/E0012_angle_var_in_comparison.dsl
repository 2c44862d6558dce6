# expect: E0012
if {user.a} <user.b> 3 { then "x" }
