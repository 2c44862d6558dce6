# expect: E0035
if {query.name} > 3 { then refuse }
