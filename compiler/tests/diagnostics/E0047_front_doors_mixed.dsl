# expect: E0047
rule block when {query.name} == "ads.example.com" { then nxdomain }
rule canary when {http.header.x-canary} == "true" { then route "api-canary" }
