# Higher priority first, ties in source order, the first then decides,
# a body that ends without one passes to the next rule; bare statements are
# the implicit rule `main` at priority 0.
# eval: {} => "low"
# eval: {"user.x": 1} => "high"
# eval: {"user.x": 2} => "first-tie"
# eval: {"user.x": 3} => {"action":"pass"}
# eval: {"user.x": 4} => "main"
# eval: {"user.x": 5} => "second-tie"
input user.x : int
rule low priority -5 { then "low" }
rule tie_a priority 10 { if {user.x} == 3 { then pass } if {user.x} == 2 { then "first-tie" } }
rule tie_b priority 10 { if {user.x} == 2 || {user.x} == 5 { then "second-tie" } }
rule high priority 100 { if {user.x} == 1 { then "high" } }
if {user.x} == 4 { then "main" }
