# expect: E0007
if <then> == 1 < then "x" >
