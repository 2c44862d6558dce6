# expect: E0024
if hsh({client.subnet}) % 100 < 5 { then forward canary }
