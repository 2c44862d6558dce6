# The HTTP strategy router's three routes (examples/http/README.md):
# canary first, then the user's tier, then the region; everyone else
# goes to the default pool `api`.

rule canary priority 300 when {http.header.x-canary} == "true" {
    then route "api-canary" set_header "X-Route" "canary"
}

rule premium priority 200 when {http.header.x-user-tier} == "premium" {
    then route "api-premium" set_header "X-Route" "premium"
}

rule shanghai priority 100 when {http.query.region} == "cn-sh" {
    then route "api-sh" set_header "X-Route" "cn-sh"
}

rule internal priority 50 when {http.path} starts_with "/internal/" {
    then respond 403 "forbidden\n"
}

rule old_api priority 40 when {http.path} starts_with "/v1/" {
    then redirect 308 "/v2/"
}

then route api remove_header "X-Debug"
