# expect: E0012
if <a.b> > 1 < then <a.b> == 2 >
