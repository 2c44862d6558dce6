# expect: E0010
rule r { if {client.asn} == 1 { thn refuse } }
