# expect: E0037
if {query.name} matches r"^(www|api\.example\.com$" { then refuse }
