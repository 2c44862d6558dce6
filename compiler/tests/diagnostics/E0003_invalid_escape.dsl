# expect: E0003
if {client.city} == "Bei\jing" { then "cn" }
