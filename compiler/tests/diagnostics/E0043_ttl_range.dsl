# expect: E0043
then rewrite "cdn.example.com" ttl 4294967296
