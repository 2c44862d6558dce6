# expect: E0010
if {query.name} = "www.example.com" { then nxdomain }
