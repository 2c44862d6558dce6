# SYNTAX TEST "source.dnspolicy" "every token class of the language"
const TTL = 300
# <----- keyword.declaration.dnspolicy
#     ^^^ entity.name.constant.dnspolicy
#         ^ keyword.operator.assignment.dnspolicy
#           ^^^ constant.numeric.integer.dnspolicy
set nets = [10.1.0.0/16, 192.0.2.1, 2001:db8:100::/48, ::1]
# <--- keyword.declaration.dnspolicy
#          ^ punctuation.section.brackets.begin.dnspolicy
#           ^^^^^^^^^^^ constant.numeric.cidr.dnspolicy
#                        ^^^^^^^^^ constant.numeric.ip.dnspolicy
#                                   ^^^^^^^^^^^^^^^^^ constant.numeric.cidr.dnspolicy
#                                                      ^^^ constant.numeric.ip.dnspolicy
#                      ^ punctuation.separator.comma.dnspolicy
input user.tier : [string]
# <----- keyword.declaration.dnspolicy
#     ^^^^^^^^^ variable.other.injected.dnspolicy
#               ^ punctuation.separator.colon.dnspolicy
#                  ^^^^^^ support.type.dnspolicy
rule geo priority 100 when {query.name} in ["*.example.com"] {
# <---- keyword.declaration.rule.dnspolicy
#    ^^^ entity.name.function.rule.dnspolicy
#        ^^^^^^^^ keyword.declaration.dnspolicy
#                 ^^^ constant.numeric.integer.dnspolicy
#                     ^^^^ keyword.control.dnspolicy
#                          ^ punctuation.definition.variable.begin.dnspolicy
#                           ^^^^^^^^^^ variable.language.context.dnspolicy
#                                     ^ punctuation.definition.variable.end.dnspolicy
#                                       ^^ keyword.operator.word.dnspolicy
#                                           ^^^^^^^^^^^^^^^ string.quoted.double.dnspolicy
#                                                            ^ punctuation.section.block.begin.dnspolicy
    if {client.region} == "CN-BJ" && hash({client.subnet}) % 100 < 5 {
#   ^^ keyword.control.dnspolicy
#       ^^^^^^^^^^^^^ variable.language.context.dnspolicy
#                      ^^ keyword.operator.comparison.dnspolicy
#                                 ^^ keyword.operator.logical.dnspolicy
#                                    ^^^^ support.function.builtin.dnspolicy
#                                        ^ punctuation.section.parens.begin.dnspolicy
#                                          ^^^^^^^^^^^^^ variable.language.context.dnspolicy
#                                                          ^ keyword.operator.arithmetic.dnspolicy
#                                                                ^ keyword.operator.comparison.dnspolicy
        then rewrite "cdn-bj.example.com" ttl TTL
#       ^^^^ keyword.control.dnspolicy
#            ^^^^^^^ keyword.other.action.dnspolicy
#                    ^ punctuation.definition.string.begin.dnspolicy
#                     ^^^^^^^^^^^^^^^^^^ string.quoted.double.dnspolicy
#                                         ^^^ keyword.other.action.dnspolicy
#                                             ^^^ variable.other.dnspolicy
    } else if {query.type} == AAAA || {query.type} in [A, TYPE65] {
#   ^ punctuation.section.block.end.dnspolicy
#     ^^^^ keyword.control.dnspolicy
#                             ^^^^ support.constant.qtype.dnspolicy
#                                  ^^ keyword.operator.logical.dnspolicy
#                                                      ^ support.constant.qtype.dnspolicy
#                                                         ^^^^^^ support.constant.qtype.dnspolicy
set mapped = [::ffff:192.0.2.1, ::ffff:10.0.0.0/104, 64:ff9b::192.0.2.33]
#             ^^^^^^^^^^^^^^^^ constant.numeric.ip.dnspolicy
#                               ^^^^^^^^^^^^^^^^^^^ constant.numeric.cidr.dnspolicy
#                                                    ^^^^^^^^^^^^^^^^^^^ constant.numeric.ip.dnspolicy
        then answer AAAA 2001:db8::1 ttl 60
#            ^^^^^^ keyword.other.action.dnspolicy
#                   ^^^^ support.constant.qtype.dnspolicy
#                        ^^^^^^^^^^^ constant.numeric.ip.dnspolicy
    } else {
#     ^^^^ keyword.control.dnspolicy
        let x = lower({user.name}) + "\t\u{41}\q"
#       ^^^ keyword.declaration.dnspolicy
#               ^^^^^ support.function.builtin.dnspolicy
#                      ^^^^^^^^^ variable.other.injected.dnspolicy
#                                  ^ keyword.operator.arithmetic.dnspolicy
#                                     ^^ constant.character.escape.dnspolicy
#                                       ^^^^^^ constant.character.escape.dnspolicy
#                                             ^^ invalid.illegal.escape.dnspolicy
        if x matches r"^a\.b$" and not true or false { then pass }
#            ^^^^^^^ keyword.operator.word.dnspolicy
#                    ^^^^^^^^^ string.quoted.raw.dnspolicy
#                              ^^^ keyword.operator.word.dnspolicy
#                                  ^^^ keyword.operator.word.dnspolicy
#                                      ^^^^ constant.language.boolean.dnspolicy
#                                           ^^ keyword.operator.word.dnspolicy
#                                              ^^^^^ constant.language.boolean.dnspolicy
#                                                           ^^^^ keyword.control.dnspolicy
        then forward backup   // a pool
#            ^^^^^^^ keyword.other.action.dnspolicy
#                    ^^^^^^ variable.other.dnspolicy
#                             ^^^^^^^^^ comment.line.double-slash.dnspolicy
    }
}
if <user.age> > 18 < then "VIP" >
#  ^ punctuation.definition.variable.begin.dnspolicy
#   ^^^^^^^^ variable.other.injected.dnspolicy
#           ^ punctuation.definition.variable.end.dnspolicy
#             ^ keyword.operator.comparison.dnspolicy
#                  ^ punctuation.section.block.begin.angle.dnspolicy
#                               ^ keyword.operator.comparison.dnspolicy
if <client.ip> in 10.0.0.0/8 < then nxdomain > # trailing
#   ^^^^^^^^^ variable.language.context.dnspolicy
#                 ^^^^^^^^^^ constant.numeric.cidr.dnspolicy
#                                   ^^^^^^^^ keyword.other.action.dnspolicy
#                                              ^^^^^^^^^^ comment.line.number-sign.dnspolicy
then nodata
#    ^^^^^^ keyword.other.action.dnspolicy
then refuse
#    ^^^^^^ keyword.other.action.dnspolicy
then servfail
#    ^^^^^^^^ keyword.other.action.dnspolicy
then drop
#    ^^^^ keyword.other.action.dnspolicy
then truncate
#    ^^^^^^^^ keyword.other.action.dnspolicy
then -42 / 7 - 1
#     ^^ constant.numeric.integer.dnspolicy
#        ^ keyword.operator.arithmetic.dnspolicy
rule canary when {http.header.x-canary} == "true" {
# <---- keyword.declaration.rule.dnspolicy
#                ^ punctuation.definition.variable.begin.dnspolicy
#                 ^^^^^^^^^^^^^^^^^^^^ variable.language.context.dnspolicy
#                                     ^ punctuation.definition.variable.end.dnspolicy
#                                       ^^ keyword.operator.comparison.dnspolicy
    then route "api-canary" set_header "X-Route" {user.x-tag} remove_header "X-Debug"
#        ^^^^^ keyword.other.action.dnspolicy
#              ^^^^^^^^^^^^ string.quoted.double.dnspolicy
#                           ^^^^^^^^^^ keyword.other.action.dnspolicy
#                                       ^^^^^^^ string.quoted.double.dnspolicy
#                                                 ^^^^^^^^^^ variable.other.injected.dnspolicy
#                                                             ^^^^^^^^^^^^^ keyword.other.action.dnspolicy
    if <http.header.X-Canary> == "no" < then respond 404 >
#      ^ punctuation.definition.variable.begin.dnspolicy
#       ^^^^^^^^^^^^^^^^^^^^ variable.language.context.dnspolicy
#                           ^ punctuation.definition.variable.end.dnspolicy
#                                            ^^^^^^^ keyword.other.action.dnspolicy
#                                                    ^^^ constant.numeric.integer.dnspolicy
    then respond 403 "forbidden\n"
#        ^^^^^^^ keyword.other.action.dnspolicy
#                ^^^ constant.numeric.integer.dnspolicy
#                              ^^ constant.character.escape.dnspolicy
}
then redirect 308 <user.next-url>
#    ^^^^^^^^ keyword.other.action.dnspolicy
#             ^^^ constant.numeric.integer.dnspolicy
#                  ^^^^^^^^^^^^^ variable.other.injected.dnspolicy
input user.x-tag : string
#     ^^^^^^^^^^ variable.other.injected.dnspolicy
