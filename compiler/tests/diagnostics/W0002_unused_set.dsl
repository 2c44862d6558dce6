# expect: W0002
set unused = ["a.example"]
if {query.name} == "b.example" { then refuse }
