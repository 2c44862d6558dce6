# expect: E0010
let x = 1
x = 2
