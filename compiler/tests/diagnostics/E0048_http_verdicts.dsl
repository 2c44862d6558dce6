# expect: E0048
rule a when {http.path} == "/a" { then respond 700 "no such status" }
rule b when {http.path} == "/b" { then redirect 200 "/elsewhere" }
rule c when {http.path} == "/c" { then route api set_header "Bad Name" "x" }
rule d when {http.path} == "/d" { then route api set_header "Connection" "close" }
rule e when {http.path} == "/e" { then route {http.header.x-pool} }
rule f when {http.path} == "/f" { then respond 101 }
rule g when {http.path} == "/g" { then route api set_header "Content-Length" "0" }
