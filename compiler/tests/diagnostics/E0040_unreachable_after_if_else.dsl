# expect: E0040
if {client.region} == "CN-BJ" { then "bj" } else { then "global" }
then "never"
