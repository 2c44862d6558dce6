# RPZ-style blocking with an allow-list that wins, and TCP for big answers.
set allow = ["good.ads.example.net"]
set block = ["ads.example.net", "*.ads.example.net", "*.tracker.example", "malware.test"]

rule allow priority 2000 {
    if {query.name} in allow { then pass }  # stop here: later rules never see it
}

# `log`: every block is in the decision log (serve --decision-log), sampled or not.
rule block priority 1000 log {
    if {query.name} in block {
        if {query.type} == "TXT" { then refuse }
        then nxdomain
    }
}

rule any_over_tcp priority 10 {
    if {query.type} == ANY && {query.transport} == "udp" { then truncate }
}
