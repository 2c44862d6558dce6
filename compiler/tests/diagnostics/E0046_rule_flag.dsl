# expect: E0046
# A word after the priority that is not a rule flag.
rule block priority 1000 audit {
    if {query.name} == "ads.example.net" { then nxdomain }
}
