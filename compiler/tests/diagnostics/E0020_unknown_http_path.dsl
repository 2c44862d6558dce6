# expect: E0020
rule a when {http.headers.x-canary} == "true" { then route "api-canary" }
