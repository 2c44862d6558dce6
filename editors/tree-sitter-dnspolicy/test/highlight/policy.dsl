rule geo priority 10 when {client.region} == "CN-BJ" { then answer A 192.0.2.1 ttl 60 }
# <- keyword
#    ^ function
#        ^ keyword
#                 ^ number
#                    ^ keyword.conditional
#                          ^ variable.builtin
#                                         ^ operator
#                                            ^ string
#                                                      ^ keyword.conditional
#                                                           ^ keyword
#                                                                  ^ constant
#                                                                    ^ number
#                                                                              ^ keyword
set ads = ["ads.example", "*.tracker.example"]
# <- keyword
#   ^ variable
input user.tier : [string]
# <- keyword
#     ^ variable
#                  ^ type
if <user.age> > 18 < then nxdomain >
# <- keyword.conditional
#   ^ variable
#             ^ operator
#                         ^ keyword
if hash({client.subnet}) % 100 < 5 and not {user.off} { then pool web weighted }
#  ^ function.builtin
#                        ^ operator
#                              ^ operator
#                                  ^ keyword.operator
#                                      ^ keyword.operator
#                                           ^ variable
#                                                            ^ keyword
#                                                                 ^ label
then "a\tb" + r"^x$"  // done
#      ^ string.escape
#             ^ string
#                     ^ comment
rule audited priority 5 log { then nxdomain }
#                       ^ attribute
rule canary when {http.header.x-canary} == "true" { then route "api" set_header "X-Route" "canary" remove_header "X-Debug" }
#                 ^ variable.builtin
#                              ^ variable.builtin
#                                                        ^ keyword
#                                                                    ^ keyword
#                                                                                                  ^ keyword
#                                                                               ^ string
if <http.header.X-Canary> == "no" < then respond 404 "gone" >
#   ^ variable.builtin
#                ^ variable.builtin
#                                        ^ keyword
#                                                ^ number
then redirect 308 {user.next-url}
#    ^ keyword
#             ^ number
#                  ^ variable
#                           ^ variable
