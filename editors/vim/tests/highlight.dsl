# Tricky cases for the Vim syntax file, checked token by token against
# the compiler's lexer by compiler/tests/editors_vim.rs.
const LIMIT = 18  // a trailing comment after a number
input user.age : int
input user.tiers : [string]
input user.tier : string
input user.x-tag : string
set mapped = [::ffff:192.0.2.1, ::ffff:10.0.0.0/104, 64:ff9b::192.0.2.33, 2001:db8::/32, ::1]
rule angle priority 10 {
    if <user.age> > LIMIT < then refuse >
    if <client.ip> in mapped && {user.tier} == "gold" { then answer AAAA ::ffff:192.0.2.7 ttl 60 }
    if hash({client.subnet}) % 100 < 5 || {query.type} == TYPE65 { then rewrite "a\u{2d}b.example" }
    let x = lower({user.tier}) + "."  # and here
    if x matches r"^a\.b$" and not false { then nodata }  // slash comment
    then pass
}
rule audited priority 5 log when {query.name} == "log.example" { then nxdomain }
# HTTP verdicts; path segments after the first may hold `-`.
rule http priority 3 when {http.header.x-user-tier} == "premium" && <http.header.X-Canary> != "" {
    then route "api-premium" set_header "X-Route" {http.query.region} remove_header "X-Debug"
    if <user.x-tag> == "y" || {http.cookie.ab-test} == "b" { then respond 403 }
    if {http.method} == "POST" { then respond 405 "no\n" }
    then redirect 308 "/v2/"
}
then route api
