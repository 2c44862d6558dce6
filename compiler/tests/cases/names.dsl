# Names compare case-insensitively without the trailing dot; `*.` in a set
# means any strict subdomain; ends_with/starts_with on names are label-wise.
# eval: {"query.name": "WWW.Example.COM."} => "exact"
# eval: {"query.name": "a.b.tracker.example"} => "blocked"
# eval: {"query.name": "tracker.example"} => null
# eval: {"query.name": "mail.corp.example"} => "suffix"
# eval: {"query.name": "badcorp.example"} => null
# eval: {"query.name": "api.v2.test"} => "prefix"
# eval: {"query.name": "apiv2.test"} => null
set blocked = ["*.tracker.example", "ads.example.net"]
rule exact priority 5 { if {query.name} == "www.example.com." { then "exact" } }
rule block priority 4 { if {query.name} in blocked { then "blocked" } }
rule suffix priority 3 { if {query.name} ends_with "corp.example" { then "suffix" } }
rule prefix priority 2 { if {query.name} starts_with "api" { then "prefix" } }
