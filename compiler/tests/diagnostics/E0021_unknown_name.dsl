# expect: E0021
set blocklist = ["ads.example.net"]
rule block { if {query.name} in blocklst { then nxdomain } }
