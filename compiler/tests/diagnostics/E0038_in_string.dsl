# expect: E0038
if {query.name} in "example.com" { then refuse }
