# expect: E0002 E0011
rule r { if {query.name} == "www.example.com { then nxdomain } }
