# expect: E0039
if {query.name} == "*.example.com" { then rewrite "cdn.example.com" }
