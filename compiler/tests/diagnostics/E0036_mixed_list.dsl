# expect: E0036
let ports = [53, "dns"]
then ports
