# expect: E0020
if {cleint.region} == "CN-BJ" { then rewrite "cdn-bj.example.com" }
