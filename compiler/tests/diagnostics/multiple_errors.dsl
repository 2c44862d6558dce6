# expect: E0020 E0030 E0040 E0042
rule a {
    if {client.regoin} == "CN-BJ" { then "bj" }
    if {client.asn} == "x" { then "asn" }
    then answer AAA 192.0.2.1
    then "unreachable"
}
