# expect: E0025
if hash({client.subnet}, 7) % 100 < 5 { then forward canary }
