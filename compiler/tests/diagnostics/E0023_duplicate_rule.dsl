# expect: E0023
rule geo { if {client.region} == "CN-BJ" { then "bj" } }
rule geo { if {client.region} == "US-CA" { then "us" } }
