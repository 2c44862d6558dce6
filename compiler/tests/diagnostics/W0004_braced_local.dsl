# expect: W0004
let x = 1
if {x} == 2 { then "a" }
