# expect: E0020
if {client.regoin} == "CN-BJ" { then rewrite "cdn-bj.example.com" }
